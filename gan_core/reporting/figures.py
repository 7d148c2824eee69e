"""Figures of a run drawn from its files, without torch: losses, the family's further log panels,
progression strips of the saved grids, classes and scores. Figures of tensors (image grids,
latent space) are ``reporting.images``.

Every function returns a matplotlib Figure and never calls ``plt.show``. Figures are closed in
pyplot before they are returned, so a notebook shows each once (as the cell's value or through
``display``) and a sweep summary does not pile up open figures. Which log columns are losses
and how they are named comes from the model family's ``LogSchema``.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..analysis.losses import epoch_knots, epoch_of_step, interp, per_epoch, smoothed
from ..families import LogSchema, Panel
from ..rundir import epoch_of

WIDE = (10, 4)  # inches: a full-width figure in an HTML report
MAX_EPOCH_LINES = 30  # beyond this many epochs, boundaries are only on the top axis


def blank(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = WIDE) -> tuple[Figure, Axes]:
    """A new figure and its axes, already closed in pyplot (a notebook shows it once, as a value)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, layout="constrained")
    plt.close(fig)  # returned, not shown a second time by pyplot
    return fig, axes


def _raw_and_smoothed(ax: Axes, log: pd.DataFrame, key: str, smooth: int | float, label: str,
                      color: str) -> None:
    ax.plot(log["step"], log[key], color=color, lw=0.7, alpha=0.3, label="_raw " + key)
    ax.plot(log["step"], smoothed(log[key], smooth), color=color, lw=2, label=label)


def _mark_epochs(ax: Axes, log: pd.DataFrame) -> None:
    """Epoch boundaries as faint vertical lines (when few) and as a top axis in epochs."""
    steps, epochs = epoch_knots(log)
    if len(steps) - 1 <= MAX_EPOCH_LINES:
        for end in steps[1:-1]:
            ax.axvline(end, color="0.8", lw=0.8, ls=":", zorder=0, label="_epoch")
    top = ax.secondary_xaxis("top", functions=(lambda s: interp(np.asarray(s, float), steps, epochs),
                                               lambda e: interp(np.asarray(e, float), epochs, steps)))
    top.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=12))
    top.set_xlabel("epoch")


def _clip_spikes(ax: Axes, values: np.ndarray) -> None:
    """Keep rare spikes from flattening the curves: cut the y axis above the 99th percentile."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return
    lo, hi, top = v.min(), np.quantile(v, 0.99), v.max()
    if top > hi + 2 * (hi - lo):
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.3 * (hi - lo))
        above = int((v > hi + 0.3 * (hi - lo)).sum())
        ax.text(0.99, 0.97, f"{above} values above the axis", transform=ax.transAxes, ha="right",
                va="top", fontsize=8, color="0.4")


def loss_curves(log: pd.DataFrame, schema: LogSchema, smooth: int | float = 0.05) -> Figure:
    """The losses per logged step: thin, faint raw values and a thick EMA; epochs on the top axis.

    Args:
        log: a run's log (``analysis.losses.load_log``).
        schema: the family's log columns (``RunDir.schema``): which are losses, their names.
        smooth: EMA span, see ``smoothed``.
    """
    fig, ax = blank()
    for i, key in enumerate(schema.losses):
        _raw_and_smoothed(ax, log, key, smooth, schema.label(key), f"C{i}")
    _mark_epochs(ax, log)
    _clip_spikes(ax, log[list(schema.losses)].to_numpy(float).ravel())
    ax.set(xlabel="step", ylabel="loss", title="Losses (faint: logged values; bold: smoothed)")
    ax.legend(loc="best")
    return fig


def epoch_losses(log: pd.DataFrame, schema: LogSchema) -> Figure:
    """Mean of each loss per epoch (rows weighted by the steps they average)."""
    epochs = per_epoch(log)
    fig, ax = blank()
    for i, key in enumerate(schema.losses):
        ax.plot(epochs.index, epochs[key], "o-", color=f"C{i}", label=schema.label(key), ms=4)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="mean loss", title="Mean loss per epoch")
    ax.legend(loc="best")
    return fig


def panels(log: pd.DataFrame, schema: LogSchema, smooth: int | float = 0.05) -> Figure | None:
    """The family's further log panels side by side (a GAN's D outputs and accuracies), raw and
    smoothed over steps; None when the family logs nothing but losses."""
    if not schema.panels:
        return None
    fig, axes = blank(1, len(schema.panels))
    for ax, panel in zip(np.atleast_1d(axes), schema.panels):
        _panel(ax, log, panel, schema, smooth)
    return fig


def _panel(ax: Axes, log: pd.DataFrame, panel: Panel, schema: LogSchema, smooth: int | float) -> None:
    for i, key in enumerate(panel.columns):
        _raw_and_smoothed(ax, log, key, smooth, schema.label(key), f"C{i + 2}")
    if panel.probability:
        ax.axhline(0.5, color="0.5", lw=0.8, ls="--", label="_chance")
        ax.set_ylim(-0.03, 1.03)
    _mark_epochs(ax, log)
    ax.set(xlabel="step", ylabel=panel.ylabel, title=panel.title)
    ax.legend(loc="best", fontsize=8)


def overlay_losses(logs: dict[str, pd.DataFrame], key: str, label: str, smooth: int | float = 0.05,
                   x: str = "step") -> Figure:
    """Several runs' smoothed ``key`` on one axis, for sweep summaries (runs without ``key``,
    e.g. diffusion models for ``loss_g``, are left out).

    Args:
        logs: run name -> log.
        key: a log column, e.g. ``loss_g``, ``loss_d`` or ``d_real``.
        label: its name on the axis.
        smooth: EMA span, see ``smoothed``.
        x: ``step``, or ``epoch`` to compare runs whose batch sizes (steps per epoch) differ.
    """
    if x not in ("step", "epoch"):
        raise ValueError(f"overlay_losses: x must be 'step' or 'epoch' (got {x!r})")
    logs = {name: log for name, log in logs.items() if key in log.columns}
    fig, ax = blank()
    colors = plt.get_cmap("tab10" if len(logs) <= 10 else "tab20").colors
    for (name, log), color in zip(logs.items(), colors * (len(logs) // len(colors) + 1)):
        xs = log["step"] if x == "step" else epoch_of_step(log, log["step"])
        ax.plot(xs, smoothed(log[key], smooth), color=color, lw=1.6, label=name)
    ax.set(xlabel=x, ylabel=label, title=f"{label} by run (smoothed)")
    if len(logs) > 6:  # a long legend goes beside the axes, not over the curves
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    else:
        ax.legend(loc="best", fontsize=9)
    return fig


def progression(paths: list[Path], labels: list[str] | None = None, max_panels: int = 8) -> Figure:
    """Saved sample grids (PNG) side by side, e.g. a run's ``RunDir.sample_grids()``.

    Args:
        paths: the PNGs, oldest first.
        labels: panel titles (default: ``epoch N`` from names like ``epoch_007.png``).
        max_panels: show at most this many, evenly spaced, always the first and last.
    """
    if not paths:
        raise ValueError("no sample grids to show: the run has not saved samples/epoch_XXX.png yet")
    labels = labels or [_epoch_label(Path(p)) for p in paths]
    if len(labels) != len(paths):
        raise ValueError(f"progression got {len(paths)} images but {len(labels)} labels")
    keep = np.unique(np.linspace(0, len(paths) - 1, min(len(paths), max_panels)).round().astype(int))
    width = min(10.0, 3.3 * len(keep))
    fig, axes = blank(1, len(keep), figsize=(width, width / len(keep) + 0.5))
    for ax, i in zip(np.atleast_1d(axes), keep):
        ax.imshow(mpimg.imread(paths[i]), interpolation="nearest")
        ax.set_title(labels[i], fontsize=10)
        ax.set_axis_off()
    return fig


def _epoch_label(path: Path) -> str:
    epoch = epoch_of(path)
    return path.stem if epoch is None else f"epoch {epoch}"


# --- quality scores ----------------------------------------------------------------------------
def class_histogram(generated: dict[str, float], data: dict[str, float], outside: float = 0.0) -> Figure:
    """Share of generated samples per predicted class (the trained classes, then ``outside``:
    the share put in classes not trained on), beside the data's class shares."""
    names = list(data) + (["not trained on"] if outside > 0 else [])
    x = np.arange(len(names))
    fig, ax = blank(figsize=(10, 3.8))
    ax.bar(x - 0.2, [data.get(n, 0.0) for n in names], 0.4, label="real (test split or held-out tenth)", color="C0")
    ax.bar(x + 0.2, [generated.get(n, outside) for n in names], 0.4, label="generated", color="C3")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("share of samples")
    ax.set_title("Classes of generated samples, as the evaluator classifies them")
    ax.legend()
    return fig


def quality_over_training(rows: list[dict], name: str) -> Figure:
    """FD per saved checkpoint with the real floor, and precision/recall/coverage beside it."""
    floor = next(r for r in rows if r["floor"])
    runs = [r for r in rows if not r["floor"]]
    epochs = [r["epoch"] for r in runs]
    fig, (left, right) = blank(1, 2, figsize=(10, 3.8))
    left.plot(epochs, [r["fd"] for r in runs], "o-", color="C3", label="generator")
    left.axhline(floor["fd"], color="C2", linestyle="--", label="real train vs test (floor)")
    left.set_xlabel("epoch")
    left.set_ylabel(name)
    left.set_title(f"{name} over training ({runs[0]['samples'] if runs else 0} samples)")
    left.legend()
    for key, color in (("precision", "C0"), ("recall", "C1"), ("coverage", "C4")):
        right.plot(epochs, [r[key] for r in runs], "o-", color=color, label=key)
        right.axhline(floor[key], color=color, linestyle=":", alpha=0.7)
    right.set_xlabel("epoch")
    right.set_ylabel("share (0 to 1)")
    right.set_ylim(0, 1.05)
    right.set_title("Precision, recall, coverage (dotted: floor)")
    right.legend()
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig
