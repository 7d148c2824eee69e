"""Figures across a sweep's runs (seaborn): each score per value of a swept setting, a heatmap of
mean FD over two settings, loss and quality curves per configuration, and the classes each
configuration generates. Every seed is drawn as a point, beside the mean and the same 95 %
Student t-interval as the tables (``analysis.stats.t_interval``, cut to the score's range):
never seaborn's default bootstrap, which over a handful of seeds covers far less than it claims
(at 3 seeds about 74 % for a nominal 95 %; Cumming et al. 2007).

Inputs are the per-run table of ``index.sweep_table`` (one row per run, with ``configuration``,
``seed`` and one column per swept setting) and what the runs logged; each function returns a
closed Figure (shown once by a notebook), or None when there is nothing to draw.
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Callable

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..analysis.comparison import BOUNDS
from ..analysis.stats import t_interval
from .tables import label as column_label

INTERVAL = "mean and 95 % t-interval over seeds, each seed a point"


def t_errorbar(score: str = "") -> Callable[[pd.Series], tuple[float, float]]:
    """seaborn's ``errorbar`` as the tables' interval: Student's t over the seeds, cut to the
    range of ``score`` (none for one seed)."""
    bounds = BOUNDS.get(score, (-math.inf, math.inf))

    def interval(values: pd.Series) -> tuple[float, float]:
        mean, _, low, high = t_interval(values, bounds=bounds)
        return (mean, mean) if math.isnan(low) else (low, high)
    return interval


def _closed(fig: Figure) -> Figure:
    plt.close(fig)
    return fig


def _seeds_note(runs: pd.DataFrame) -> str:
    counts = runs.groupby("configuration")["run"].count()
    n = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    return f"{n} seed{'s' if counts.max() > 1 else ''} per configuration"


def scores_by_setting(runs: pd.DataFrame, setting: str | list[str],
                      scores: tuple[str, ...] = ("fd", "precision", "recall", "coverage")) -> Figure | None:
    """One panel per score: every seed as a point for each value of ``setting`` (or of settings
    that change together, ``index.setting_groups``: their values joined by " / "), the mean and
    its 95 % t-interval beside them."""
    ok = runs[runs["status"] == "ok"]
    scores = tuple(s for s in scores if s in ok and ok[s].notna().any())
    if not scores or ok.empty:
        return None
    group = [setting] if isinstance(setting, str) else list(setting)
    setting = " / ".join(group)  # several: the full keys (optim_d.lr / optim_g.lr, not lr / lr)
    ok = ok.assign(**{setting: ok[group].map(_value).agg(" / ".join, axis=1)})
    shown = setting if len(group) > 1 else column_label(setting)
    fig, axes = plt.subplots(1, len(scores), figsize=(3.2 * len(scores), 3.4), layout="constrained", squeeze=False)
    order = sorted(ok[setting].unique(), key=_natural)
    for ax, score in zip(axes[0], scores):
        sns.stripplot(data=ok, x=setting, y=score, order=order, ax=ax, color="0.45", size=4, jitter=0.08, alpha=0.8)
        sns.pointplot(data=ok, x=setting, y=score, order=order, errorbar=t_errorbar(score), capsize=0.15, ax=ax,
                      color="C3", linestyle="none", markers="D")
        ax.set_xticks(range(len(order)), [_tick(value) for value in order])
        ax.set_xlabel(shown if len(group) == 1 else "")  # a group's names are in the title, its values stacked
        ax.set_ylabel(column_label(score) + (" (lower is better)" if score == "fd" else ""))
    fig.suptitle(f"Scores by {shown}: {INTERVAL} ({_seeds_note(ok)})")
    return _closed(fig)


def _value(value: object) -> str:
    """A setting's value as text; "-" where a run's family has no such setting."""
    missing = value is None or value == "" or (isinstance(value, float) and math.isnan(value))
    return "-" if missing else str(value)


def _tick(value: str) -> str:
    """A tick label: a group's values one per line, long ones (lists of widths) wrapped."""
    return "\n".join(textwrap.fill(part, 14) for part in value.split(" / "))


def heatmap(configurations: pd.DataFrame, rows: str, columns: str, score: str = "fd") -> Figure | None:
    """Mean ``score`` over seeds for each pair of values of two swept settings."""
    if f"{score}_mean" not in configurations:
        return None
    table = configurations.pivot_table(index=rows, columns=columns, values=f"{score}_mean", aggfunc="mean")
    table = table.reindex(index=sorted(table.index, key=_natural), columns=sorted(table.columns, key=_natural))
    fig, ax = plt.subplots(figsize=(1.6 * len(table.columns) + 2.5, 0.6 * len(table.index) + 1.8),
                           layout="constrained")
    sns.heatmap(table, annot=True, fmt=".3g", cmap="rocket_r", cbar_kws={"label": f"mean {column_label(score)}"},
                ax=ax)
    ax.set_title(f"Mean {column_label(score)} over seeds by {column_label(rows)} and {column_label(columns)}")
    return _closed(fig)


def curves_with_seeds(long: pd.DataFrame, y: str, ylabel: str, title: str) -> Figure | None:
    """``long``: rows of (configuration, seed, epoch, ``y``); per configuration a line through the
    means, a band of their 95 % t-interval over seeds, and each seed's values as points."""
    if long.empty or y not in long or long[y].isna().all():
        return None
    fig, ax = plt.subplots(figsize=(10, 3.8), layout="constrained")
    sns.lineplot(data=long, x="epoch", y=y, hue="configuration", errorbar=t_errorbar(y), marker="o", ax=ax)
    sns.scatterplot(data=long, x="epoch", y=y, hue="configuration", ax=ax, s=12, alpha=0.5, legend=False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}: {INTERVAL}")
    return _closed(fig)


def class_shares(long: pd.DataFrame) -> Figure | None:
    """``long``: rows of (configuration, seed, class, share): the share of each configuration's
    samples the evaluator puts in each class, each seed a point, the mean and its t-interval."""
    if long.empty:
        return None
    fig, ax = plt.subplots(figsize=(10, 3.8), layout="constrained")
    sns.barplot(data=long, x="class", y="share", hue="configuration", errorbar=t_errorbar("precision"), ax=ax,
                alpha=0.6, capsize=0.1)
    dark = ["0.2"] * long["configuration"].nunique()  # every seed's point dark grey (seaborn: not color= with hue)
    sns.stripplot(data=long, x="class", y="share", hue="configuration", dodge=True, ax=ax, size=3, palette=dark,
                  legend=False, jitter=0.05)
    ax.set_xlabel("class (as the evaluator classifies the samples)")
    ax.set_ylabel("share of generated samples")
    ax.tick_params(axis="x", rotation=30)
    ax.set_title(f"Classes of the generated samples per configuration: {INTERVAL}")
    return _closed(fig)


def _natural(value: object) -> tuple:
    """Numbers in numeric order, then text."""
    try:
        return (0, float(str(value)), "")
    except ValueError:
        return (1, 0.0, str(value))
