"""Figures across a sweep's runs (seaborn): each score per value of a swept setting with its
95 % interval over seeds, a heatmap of mean FD over two settings, loss and quality curves per
configuration with seed bands, and the classes each configuration generates.

Inputs are the per-run table of ``index.sweep_table`` (one row per run, with ``configuration``,
``seed`` and one column per swept setting) and what the runs logged; each function returns a
closed Figure (shown once by a notebook), or None when there is nothing to draw.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..evaluation.scores import SCORES

CI = ("ci", 95)  # seaborn's bootstrap 95 % interval of the mean over seeds


def _closed(fig: Figure) -> Figure:
    plt.close(fig)
    return fig


def _seeds_note(runs: pd.DataFrame) -> str:
    counts = runs.groupby("configuration")["run"].count()
    n = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    return f"{n} seed{'s' if counts.max() > 1 else ''} per configuration"


def scores_by_setting(runs: pd.DataFrame, setting: str,
                      scores: tuple[str, ...] = ("fd", "precision", "recall", "coverage")) -> Figure | None:
    """One panel per score: its mean over seeds and 95 % interval for each value of ``setting``."""
    ok = runs[runs["status"] == "ok"]
    scores = tuple(s for s in scores if s in ok and ok[s].notna().any())
    if not scores or ok.empty:
        return None
    fig, axes = plt.subplots(1, len(scores), figsize=(3.2 * len(scores), 3.4), layout="constrained", squeeze=False)
    order = sorted(ok[setting].unique(), key=_natural)
    for ax, score in zip(axes[0], scores):
        sns.pointplot(data=ok, x=setting, y=score, order=order, errorbar=CI, capsize=0.15, ax=ax, color="C3")
        ax.set_xlabel(setting)
        ax.set_ylabel(SCORES.get(score, score) + (" (lower is better)" if score == "fd" else ""))
    fig.suptitle(f"Scores by {setting}: mean and 95 % interval over seeds ({_seeds_note(ok)})")
    return _closed(fig)


def heatmap(configurations: pd.DataFrame, rows: str, columns: str, score: str = "fd") -> Figure | None:
    """Mean ``score`` over seeds for each pair of values of two swept settings."""
    if f"{score}_mean" not in configurations:
        return None
    table = configurations.pivot_table(index=rows, columns=columns, values=f"{score}_mean", aggfunc="mean")
    table = table.reindex(index=sorted(table.index, key=_natural), columns=sorted(table.columns, key=_natural))
    fig, ax = plt.subplots(figsize=(1.6 * len(table.columns) + 2.5, 0.6 * len(table.index) + 1.8),
                           layout="constrained")
    sns.heatmap(table, annot=True, fmt=".3g", cmap="rocket_r", cbar_kws={"label": f"mean {SCORES.get(score, score)}"},
                ax=ax)
    ax.set_title(f"Mean {SCORES.get(score, score)} over seeds by {rows} and {columns}")
    return _closed(fig)


def curves_with_seeds(long: pd.DataFrame, y: str, ylabel: str, title: str) -> Figure | None:
    """``long``: rows of (configuration, seed, epoch, ``y``); a line per configuration, the band
    its 95 % interval over seeds."""
    if long.empty or long[y].isna().all():
        return None
    fig, ax = plt.subplots(figsize=(10, 3.8), layout="constrained")
    sns.lineplot(data=long, x="epoch", y=y, hue="configuration", errorbar=CI, marker="o", ax=ax)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _closed(fig)


def class_shares(long: pd.DataFrame) -> Figure | None:
    """``long``: rows of (configuration, seed, class, share): the share of each configuration's
    samples the evaluator puts in each class, mean and 95 % interval over seeds."""
    if long.empty:
        return None
    fig, ax = plt.subplots(figsize=(10, 3.8), layout="constrained")
    sns.barplot(data=long, x="class", y="share", hue="configuration", errorbar=CI, ax=ax)
    ax.set_xlabel("class (as the evaluator classifies the samples)")
    ax.set_ylabel("share of generated samples")
    ax.tick_params(axis="x", rotation=30)
    ax.set_title("Classes of the generated samples per configuration (mean and 95 % interval over seeds)")
    return _closed(fig)


def _natural(value: object) -> tuple:
    """Numbers in numeric order, then text."""
    try:
        return (0, float(str(value)), "")
    except ValueError:
        return (1, 0.0, str(value))
