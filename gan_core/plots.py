"""Figures of a run: losses, D's outputs, image grids, progression strips; and the losses in words.

Every function returns a matplotlib Figure and never calls ``plt.show``. Figures are closed in
pyplot before they are returned, so a notebook shows each once (as the cell's value or through
``display``) and a sweep summary does not pile up open figures. Logs are DataFrames of a
run's log.csv (``load_log``), one row per ``train.log_every`` steps, each the mean over them.
"""
from __future__ import annotations

import math
import re
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

from .rundir import LOG_COLUMNS, RunDir

WIDE = (10, 4)  # inches: a full-width figure in an HTML report
MAX_EPOCH_LINES = 30  # beyond this many epochs, boundaries are only on the top axis
LABELS = {"loss_d": "D loss", "loss_g": "G loss", "d_real": "D(x), real", "d_fake": "D(G(z)), D step",
          "d_fake_g": "D(G(z)), G step", "acc_real": "real accuracy", "acc_fake": "fake accuracy"}
COLORS = {"loss_d": "C1", "loss_g": "C0", "d_real": "C2", "d_fake": "C3", "d_fake_g": "C4",
          "acc_real": "C2", "acc_fake": "C3"}

# Thresholds of ``reading``, for losses on logits as in gan_core.losses (BCE, least squares, hinge);
# D's outputs are probabilities for every loss.
MIN_ROWS = 20  # fewer log rows than this: too short to speak of trends
D_WINS_LOSS = 0.1  # mean D loss below this (BCE at chance is 2 ln 2 = 1.39): D classifies all but perfectly
D_WINS_PROB = 0.1  # D(x) > 1 - this and D(G(z)) < this: D separates real from fake
G_FOOLS_PROB = 0.9  # D(G(z)) in the G step above this: D no longer tells fakes apart
CHANCE_PROB = 0.1  # D(x) and D(G(z)) both within this of 0.5: D at chance
RISE_REL, RISE_NOISE = 0.2, 1.0  # a steady rise: fitted rise > 20 % of the level and > 1 std of the residuals
SWING_REL = 0.15  # smoothed loss wandering by more than 15 % of its level: oscillation
SPIKE_K = 6.0  # a spike: farther than this many robust std (1.4826 MAD) from the rolling median


# --- reading logs ----------------------------------------------------------------------------
def load_log(path: str | Path | RunDir) -> pd.DataFrame:
    """A run's log.csv as a DataFrame (``path`` is the file, the run folder or a RunDir).

    Raises:
        FileNotFoundError: there is no log yet.
        ValueError: the file lacks columns of ``rundir.LOG_COLUMNS`` or has no rows.
    """
    path = path.log if isinstance(path, RunDir) else Path(path)
    path = RunDir(path).log if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train the run first (python -m gan_core train ...)")
    log = pd.read_csv(path)
    missing = [c for c in LOG_COLUMNS if c not in log.columns]
    if missing or log.empty:
        raise ValueError(f"{path} is not a gan_core log.csv with rows (missing columns: {missing or 'none'}, "
                         f"{len(log)} rows)")
    return log


def smoothed(values: pd.Series, smooth: int | float = 0.05) -> pd.Series:
    """Exponential moving average (bias-corrected at the start, so the curve starts at the data).

    Args:
        values: one log column.
        smooth: the EMA span: in rows if >= 1, as a fraction of the rows if < 1; 0 or 1: no smoothing.
    """
    span = smooth * len(values) if smooth < 1 else smooth
    values = values.astype(float)
    return values if span <= 1 else values.ewm(span=span, adjust=True).mean()


def per_epoch(log: pd.DataFrame) -> pd.DataFrame:
    """Mean of each logged value per epoch (index), each row weighted by the steps it averages.

    Rows average ``train.log_every`` steps, except an epoch's last row, which may average fewer.
    """
    steps = log["step"].diff().fillna(log["step"].iloc[0]).clip(lower=1)
    columns = [c for c in log.columns if c not in ("epoch", "step", "time_s")]
    sums = log[columns].mul(steps, axis=0).groupby(log["epoch"]).sum()
    out = sums.div(steps.groupby(log["epoch"]).sum(), axis=0)
    out["steps"] = steps.groupby(log["epoch"]).sum()
    return out


def epoch_of_step(log: pd.DataFrame, steps: np.ndarray | pd.Series) -> np.ndarray:
    """Fractional epochs of ``steps``: epoch e spans (last step of e-1, last step of e]."""
    ends = log.groupby("epoch")["step"].max()
    epochs = np.r_[ends.index[0] - 1, ends.index.to_numpy(float)]
    return _interp(np.asarray(steps, float), np.r_[0.0, ends.to_numpy(float)], epochs)


def _interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp`` extrapolated linearly past both ends (a secondary axis must stay monotonic)."""
    y = np.interp(x, xp, fp)
    lo, hi = (fp[1] - fp[0]) / (xp[1] - xp[0]), (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    y = np.where(x < xp[0], fp[0] + (x - xp[0]) * lo, y)
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * hi, y)


# --- figures of the log ----------------------------------------------------------------------
def _figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = WIDE) -> tuple[Figure, Axes]:
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, layout="constrained")
    plt.close(fig)  # returned, not shown a second time by pyplot
    return fig, axes


def _raw_and_smoothed(ax: Axes, log: pd.DataFrame, key: str, smooth: int | float) -> None:
    ax.plot(log["step"], log[key], color=COLORS[key], lw=0.7, alpha=0.3, label="_raw " + key)
    ax.plot(log["step"], smoothed(log[key], smooth), color=COLORS[key], lw=2, label=LABELS[key])


def _mark_epochs(ax: Axes, log: pd.DataFrame) -> None:
    """Epoch boundaries as faint vertical lines (when few) and as a top axis in epochs."""
    ends = log.groupby("epoch")["step"].max().to_numpy()
    if len(ends) <= MAX_EPOCH_LINES:
        for end in ends[:-1]:
            ax.axvline(end, color="0.8", lw=0.8, ls=":", zorder=0, label="_epoch")
    ends_all = log.groupby("epoch")["step"].max()
    epochs = np.r_[ends_all.index[0] - 1, ends_all.index.to_numpy(float)]
    steps = np.r_[0.0, ends_all.to_numpy(float)]
    top = ax.secondary_xaxis("top", functions=(lambda s: _interp(np.asarray(s, float), steps, epochs),
                                               lambda e: _interp(np.asarray(e, float), epochs, steps)))
    top.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=12))
    top.set_xlabel("epoch")


def _clip_spikes(ax: Axes, values: np.ndarray) -> None:
    """Keep rare spikes from flattening the curves: cut the y axis above the 99th percentile."""
    v = values[np.isfinite(values)]
    lo, hi, top = v.min(), np.quantile(v, 0.99), v.max()
    if top > hi + 2 * (hi - lo):
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.3 * (hi - lo))
        above = int((v > hi + 0.3 * (hi - lo)).sum())
        ax.text(0.99, 0.97, f"{above} values above the axis", transform=ax.transAxes, ha="right",
                va="top", fontsize=8, color="0.4")


def loss_curves(log: pd.DataFrame, smooth: int | float = 0.05) -> Figure:
    """D and G loss per logged step: thin, faint raw values and a thick EMA; epochs on the top axis.

    Args:
        log: a run's log (``load_log``).
        smooth: EMA span, see ``smoothed``.
    """
    fig, ax = _figure()
    for key in ("loss_d", "loss_g"):
        _raw_and_smoothed(ax, log, key, smooth)
    _mark_epochs(ax, log)
    _clip_spikes(ax, log[["loss_d", "loss_g"]].to_numpy(float).ravel())
    ax.set(xlabel="step", ylabel="loss", title="Losses (faint: logged values; bold: smoothed)")
    ax.legend(loc="best")
    return fig


def epoch_losses(log: pd.DataFrame) -> Figure:
    """Mean D and G loss per epoch (rows weighted by the steps they average)."""
    epochs = per_epoch(log)
    fig, ax = _figure()
    for key in ("loss_d", "loss_g"):
        ax.plot(epochs.index, epochs[key], "o-", color=COLORS[key], label=LABELS[key], ms=4)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="mean loss", title="Mean loss per epoch")
    ax.legend(loc="best")
    return fig


def d_outputs(log: pd.DataFrame, smooth: int | float = 0.05, accuracy: bool = True) -> Figure:
    """D's mean outputs over steps: D(x), D(G(z)) in the D step and in the G step (after D's update).

    With ``accuracy``, a second panel shows D's accuracy on real and on fake images (threshold 0.5).
    """
    fig, axes = _figure(1, 2 if accuracy else 1)
    panels = [(np.atleast_1d(axes)[0], ("d_real", "d_fake", "d_fake_g"), "D output (probability)",
               "What D says")]
    if accuracy:
        panels.append((axes[1], ("acc_real", "acc_fake"), "accuracy", "D accuracy"))
    for ax, keys, ylabel, title in panels:
        for key in keys:
            _raw_and_smoothed(ax, log, key, smooth)
        ax.axhline(0.5, color="0.5", lw=0.8, ls="--", label="_chance")
        _mark_epochs(ax, log)
        ax.set(xlabel="step", ylabel=ylabel, title=title, ylim=(-0.03, 1.03))
        ax.legend(loc="best", fontsize=8)
    return fig


def overlay_losses(logs: dict[str, pd.DataFrame], key: str = "loss_g", smooth: int | float = 0.05,
                   x: str = "step") -> Figure:
    """Several runs' smoothed ``key`` on one axis, for sweep summaries.

    Args:
        logs: run name -> log.
        key: a log column, e.g. ``loss_g``, ``loss_d`` or ``d_real``.
        smooth: EMA span, see ``smoothed``.
        x: ``step``, or ``epoch`` to compare runs whose batch sizes (steps per epoch) differ.
    """
    fig, ax = _figure()
    colors = plt.get_cmap("tab10" if len(logs) <= 10 else "tab20").colors
    for (name, log), color in zip(logs.items(), colors * (len(logs) // len(colors) + 1)):
        xs = log["step"] if x == "step" else epoch_of_step(log, log["step"])
        ax.plot(xs, smoothed(log[key], smooth), color=color, lw=1.6, label=name)
    ax.set(xlabel=x, ylabel=LABELS.get(key, key), title=f"{LABELS.get(key, key)} by run (smoothed)")
    if len(logs) > 6:  # a long legend goes beside the axes, not over the curves
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    else:
        ax.legend(loc="best", fontsize=9)
    return fig
