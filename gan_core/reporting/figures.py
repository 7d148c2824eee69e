"""Figures of a run: losses, the family's further log panels, image grids, progression strips,
latent and score figures.

Every function returns a matplotlib Figure and never calls ``plt.show``. Figures are closed in
pyplot before they are returned, so a notebook shows each once (as the cell's value or through
``display``) and a sweep summary does not pile up open figures. Which log columns are losses
and how they are named comes from the model family's ``LogSchema``.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torchvision.utils import make_grid

from ..analysis.latent import pca
from ..analysis.losses import epoch_knots, epoch_of_step, interp, per_epoch, smoothed
from ..models import LogSchema, Panel
from ..rundir import epoch_of

WIDE = (10, 4)  # inches: a full-width figure in an HTML report
MAX_EPOCH_LINES = 30  # beyond this many epochs, boundaries are only on the top axis


def _figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = WIDE) -> tuple[Figure, Axes]:
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
        schema: the family's log columns (``models.log_schema``): which are losses, their names.
        smooth: EMA span, see ``smoothed``.
    """
    fig, ax = _figure()
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
    fig, ax = _figure()
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
    fig, axes = _figure(1, len(schema.panels))
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
    fig, ax = _figure()
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


# --- images ----------------------------------------------------------------------------------
def image_grid(images: torch.Tensor, nrow: int | None = None, ax: Axes | None = None,
               title: str | None = None, width: float = 5.0) -> Figure:
    """Images (N, C, H, W) in [-1, 1] as one grid; 1 channel in gray with the range fixed to [-1, 1].

    Args:
        images: the batch (values outside [-1, 1] are clipped).
        nrow: images per row (default: a square grid).
        ax: draw into this axes instead of a new figure.
        title: axes title.
        width: figure width in inches, when a new figure is made.
    """
    if images.dim() != 4:
        raise ValueError(f"image_grid wants (N, C, H, W) images, got shape {tuple(images.shape)}")
    images = images.detach().float().cpu().clamp(-1, 1)
    nrow = nrow or math.ceil(math.sqrt(len(images)))
    grid = make_grid((images + 1) / 2, nrow=nrow, padding=2, pad_value=1.0)  # (3, H', W') in [0, 1]
    if ax is None:
        _, ax = _figure(figsize=(width, width * grid.shape[1] / grid.shape[2] + (0.4 if title else 0)))
    if images.shape[1] == 1:  # make_grid repeats one channel to three: show one with a fixed range
        ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure


def class_rows(images: torch.Tensor, names: list[str], title: str | None = None, width: float = 8.0) -> Figure:
    """Samples of a conditional G, one row per class (``len(images)`` a multiple of ``len(names)``),
    each row named on the left."""
    if len(images) % len(names):
        raise ValueError(f"class_rows: {len(images)} images do not fill {len(names)} rows evenly")
    fig = image_grid(images, nrow=len(images) // len(names), title=title, width=width)
    ax, size = fig.axes[0], images.shape[-2]
    ax.set_axis_on()
    ax.set_xticks([])
    ax.set_yticks([2 + i * (size + 2) + size / 2 for i in range(len(names))], names)  # make_grid pads by 2
    ax.tick_params(left=False)
    for spine in ax.spines.values():
        spine.set_visible(False)
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
    fig, axes = _figure(1, len(keep), figsize=(width, width / len(keep) + 0.5))
    for ax, i in zip(np.atleast_1d(axes), keep):
        ax.imshow(mpimg.imread(paths[i]), interpolation="nearest")
        ax.set_title(labels[i], fontsize=10)
        ax.set_axis_off()
    return fig


def _epoch_label(path: Path) -> str:
    epoch = epoch_of(path)
    return path.stem if epoch is None else f"epoch {epoch}"


def real_vs_fake(real: torch.Tensor, fake: torch.Tensor, nrow: int | None = None) -> Figure:
    """Real and generated images (N, C, H, W) in [-1, 1] in two panels, side by side."""
    fig, (left, right) = _figure(1, 2, figsize=(10, 5.4))
    image_grid(real, nrow, ax=left, title="real")
    image_grid(fake, nrow, ax=right, title="generated")
    return fig


# --- latent space ----------------------------------------------------------------------------
def latent_pca(projected: torch.Tensor, ratio: torch.Tensor, chosen: torch.Tensor,
               images: torch.Tensor) -> Figure:
    """Latent vectors on two principal components (N, 2), chosen ones marked, their images beside.

    Args:
        projected: (N, 2) coordinates; ratio: (2,) explained variance ratios.
        chosen: (K,) indices of the marked vectors; images: (K, C, H, W) they generate.
    """
    k = len(chosen)
    fig = plt.figure(figsize=(10, 4.6), layout="constrained")
    plt.close(fig)
    grid = fig.add_gridspec(k, 2, width_ratios=[2.2, 1])
    ax = fig.add_subplot(grid[:, 0])
    ax.scatter(projected[:, 0], projected[:, 1], s=6, alpha=0.35, color="C7", label="sampled z")
    for i, index in enumerate(chosen.tolist()):
        x, y = projected[index].tolist()
        ax.scatter([x], [y], s=90, color=f"C{i}", edgecolor="black", zorder=3)
        ax.annotate(f"z{i + 1}", (x, y), xytext=(6, 6), textcoords="offset points", fontweight="bold")
        image_grid(images[i:i + 1], ax=fig.add_subplot(grid[i, 1]), title=f"G(z{i + 1})")
    ax.set_xlabel(f"PC1 ({ratio[0]:.1%} of variance)")
    ax.set_ylabel(f"PC2 ({ratio[1]:.1%} of variance)")
    ax.set_title(f"{len(projected)} latent vectors, PCA")
    return fig


def feature_pca(real: torch.Tensor, fake: torch.Tensor) -> Figure:
    """Real and generated image features (N, F) on the two principal components of both together.

    Fakes that cover the real cloud suggest diversity; a tight fake cluster suggests collapse.
    """
    projected, _, _, ratio = pca(torch.cat([real, fake]).float(), k=2)
    fig, ax = _figure(figsize=(6.5, 5))
    for part, label, color in ((projected[:len(real)], "real", "C0"), (projected[len(real):], "generated", "C3")):
        ax.scatter(part[:, 0], part[:, 1], s=7, alpha=0.45, color=color, label=f"{label} ({len(part)})")
    ax.set_xlabel(f"PC1 ({ratio[0]:.1%})")
    ax.set_ylabel(f"PC2 ({ratio[1]:.1%})")
    ax.set_title("Images in feature space: real and generated")
    ax.legend()
    return fig


def nearest_neighbours(fake: torch.Tensor, neighbours: torch.Tensor, distances: torch.Tensor) -> Figure:
    """Each generated image (Q, C, H, W) followed by its k nearest real images (Q, k, C, H, W)."""
    q, k = distances.shape
    fig, axes = _figure(q, k + 1, figsize=(1.3 * (k + 1), 1.35 * q))
    axes = np.atleast_2d(axes)
    for row in range(q):
        image_grid(fake[row:row + 1], ax=axes[row, 0], title="generated" if row == 0 else None)
        for col in range(k):
            image_grid(neighbours[row, col:col + 1], ax=axes[row, col + 1])
            axes[row, col + 1].set_title(f"d={distances[row, col]:.1f}", fontsize=8)
    return fig


# --- quality scores ----------------------------------------------------------------------------
def class_histogram(generated: dict[str, float], data: dict[str, float], outside: float = 0.0) -> Figure:
    """Share of generated samples per predicted class (the trained classes, then ``outside``:
    the share put in classes not trained on), beside the data's class shares."""
    names = list(data) + (["not trained on"] if outside > 0 else [])
    x = np.arange(len(names))
    fig, ax = _figure(figsize=(10, 3.8))
    ax.bar(x - 0.2, [data.get(n, 0.0) for n in names], 0.4, label="real test split", color="C0")
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
    fig, (left, right) = _figure(1, 2, figsize=(10, 3.8))
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
