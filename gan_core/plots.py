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

from .rundir import DIFFUSION_STATS, GAN_STATS, RunDir, log_columns

WIDE = (10, 4)  # inches: a full-width figure in an HTML report
MAX_EPOCH_LINES = 30  # beyond this many epochs, boundaries are only on the top axis
LABELS = {"loss": "denoising loss (MSE of the noise)", "loss_d": "D loss", "loss_g": "G loss",
          "d_real": "D(x), real", "d_fake": "D(G(z)), D step", "d_fake_g": "D(G(z)), G step",
          "acc_real": "real accuracy", "acc_fake": "fake accuracy"}
# WGAN-GP's D is a critic: its output is a score, not a probability, and its loss estimates
# minus the Wasserstein distance (plus the gradient penalty)
CRITIC_LABELS = {"loss_d": "critic loss", "d_real": "σ(critic(x)), real", "d_fake": "σ(critic(G(z))), critic step",
                 "d_fake_g": "σ(critic(G(z))), G step"}
COLORS = {"loss": "C0", "loss_d": "C1", "loss_g": "C0", "d_real": "C2", "d_fake": "C3", "d_fake_g": "C4",
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
SPIKE_K = 6.0  # a spike: farther than this many robust std (1.4826 MAD) from the rolling median,
SPIKE_MIN_REL = 0.1  # and by more than 10 % of it (a blip on a very smooth stretch is no spike)


# --- reading logs ----------------------------------------------------------------------------
def load_log(path: str | Path | RunDir) -> pd.DataFrame:
    """A run's log.csv as a DataFrame (``path`` is the file, the run folder or a RunDir).

    Raises:
        FileNotFoundError: there is no log yet.
        ValueError: the file lacks columns of a GAN's or a diffusion model's log, or has no rows.
    """
    path = path.log if isinstance(path, RunDir) else Path(path)
    path = RunDir(path).log if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train the run first (python -m gan_core train ...)")
    log = pd.read_csv(path)
    stats = DIFFUSION_STATS if "loss" in log.columns else GAN_STATS
    missing = [c for c in log_columns(stats) if c not in log.columns]
    if missing or log.empty:
        raise ValueError(f"{path} is not a gan_core log.csv with rows (missing columns: {missing or 'none'}, "
                         f"{len(log)} rows)")
    return log


def loss_keys(log: pd.DataFrame) -> tuple[str, ...]:
    """The loss columns of a log: D and G for a GAN, the one denoising loss for a diffusion model."""
    return ("loss",) if "loss" in log.columns else ("loss_d", "loss_g")


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
    return _interp(np.asarray(steps, float), *_epoch_knots(log))


def _epoch_knots(log: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(steps, epochs) at epoch ends, starting from (0, first epoch - 1)."""
    ends = log.groupby("epoch")["step"].max()
    return np.r_[0.0, ends.to_numpy(float)], np.r_[ends.index[0] - 1, ends.index.to_numpy(float)]


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


def labels(loss: str = "bce") -> dict[str, str]:
    """Names of the log columns for runs of the loss ``loss`` (config.loss.kind)."""
    return {**LABELS, **CRITIC_LABELS} if loss == "wgan-gp" else LABELS


def _raw_and_smoothed(ax: Axes, log: pd.DataFrame, key: str, smooth: int | float, label: str) -> None:
    ax.plot(log["step"], log[key], color=COLORS[key], lw=0.7, alpha=0.3, label="_raw " + key)
    ax.plot(log["step"], smoothed(log[key], smooth), color=COLORS[key], lw=2, label=label)


def _mark_epochs(ax: Axes, log: pd.DataFrame) -> None:
    """Epoch boundaries as faint vertical lines (when few) and as a top axis in epochs."""
    steps, epochs = _epoch_knots(log)
    if len(steps) - 1 <= MAX_EPOCH_LINES:
        for end in steps[1:-1]:
            ax.axvline(end, color="0.8", lw=0.8, ls=":", zorder=0, label="_epoch")
    top = ax.secondary_xaxis("top", functions=(lambda s: _interp(np.asarray(s, float), steps, epochs),
                                               lambda e: _interp(np.asarray(e, float), epochs, steps)))
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


def loss_curves(log: pd.DataFrame, smooth: int | float = 0.05, loss: str = "bce") -> Figure:
    """D (or critic) and G loss per logged step: thin, faint raw values and a thick EMA; epochs
    on the top axis.

    Args:
        log: a run's log (``load_log``).
        smooth: EMA span, see ``smoothed``.
        loss: the run's ``loss.kind``, for the names (WGAN-GP's D is a critic).
    """
    fig, ax = _figure()
    for key in loss_keys(log):
        _raw_and_smoothed(ax, log, key, smooth, labels(loss)[key])
    _mark_epochs(ax, log)
    _clip_spikes(ax, log[list(loss_keys(log))].to_numpy(float).ravel())
    ax.set(xlabel="step", ylabel="loss", title="Losses (faint: logged values; bold: smoothed)")
    ax.legend(loc="best")
    return fig


def epoch_losses(log: pd.DataFrame, loss: str = "bce") -> Figure:
    """Mean D (or critic) and G loss per epoch (rows weighted by the steps they average)."""
    epochs = per_epoch(log)
    fig, ax = _figure()
    for key in loss_keys(log):
        ax.plot(epochs.index, epochs[key], "o-", color=COLORS[key], label=labels(loss)[key], ms=4)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="mean loss", title="Mean loss per epoch")
    ax.legend(loc="best")
    return fig


def d_outputs(log: pd.DataFrame, smooth: int | float = 0.05, accuracy: bool = True, loss: str = "bce") -> Figure:
    """D's mean outputs over steps: D(x), D(G(z)) in the D step and in the G step (after D's update).

    With ``accuracy``, a second panel shows D's accuracy on real and on fake images (threshold 0.5).
    For WGAN-GP (``loss``) the outputs are the sigmoid of the critic's score, not probabilities.
    """
    fig, axes = _figure(1, 2 if accuracy else 1)
    critic = loss == "wgan-gp"
    panels = [(np.atleast_1d(axes)[0], ("d_real", "d_fake", "d_fake_g"),
               "sigmoid of the critic's score" if critic else "D output (probability)",
               "What the critic says" if critic else "What D says")]
    if accuracy:
        panels.append((axes[1], ("acc_real", "acc_fake"), "accuracy", "D accuracy"))
    for ax, keys, ylabel, title in panels:
        for key in keys:
            _raw_and_smoothed(ax, log, key, smooth, labels(loss)[key])
        ax.axhline(0.5, color="0.5", lw=0.8, ls="--", label="_chance")
        _mark_epochs(ax, log)
        ax.set(xlabel="step", ylabel=ylabel, title=title, ylim=(-0.03, 1.03))
        ax.legend(loc="best", fontsize=8)
    return fig


def overlay_losses(logs: dict[str, pd.DataFrame], key: str = "loss_g", smooth: int | float = 0.05,
                   x: str = "step") -> Figure:
    """Several runs' smoothed ``key`` on one axis, for sweep summaries (runs without ``key``,
    e.g. diffusion models for ``loss_g``, are left out).

    Args:
        logs: run name -> log.
        key: a log column, e.g. ``loss_g``, ``loss_d`` or ``d_real``.
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
    ax.set(xlabel=x, ylabel=LABELS.get(key, key), title=f"{LABELS.get(key, key)} by run (smoothed)")
    if len(logs) > 6:  # a long legend goes beside the axes, not over the curves
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    else:
        ax.legend(loc="best", fontsize=9)
    return fig


# --- the losses in numbers and in words ------------------------------------------------------
def find_spikes(values: pd.Series, k: float = SPIKE_K, window: int | None = None) -> pd.Series:
    """Rows farther than ``k`` robust standard deviations (and ``SPIKE_MIN_REL``) from a rolling median.

    The deviation scale is 1.4826 x the rolling median absolute deviation of the residuals (a
    normal distribution's std), so the count does not grow with the spikes it is looking for,
    and it is local: GAN losses are often far noisier late in training than early.

    Args:
        values: one log column.
        k: threshold in robust standard deviations.
        window: rolling median window in rows (default: 5 % of the rows, at least 11, odd);
            the first and last half window are never spikes.

    Returns:
        A boolean Series, True at spikes.
    """
    values = values.astype(float)
    window = window or max(11, int(len(values) * 0.05) | 1)
    median = values.rolling(window, center=True, min_periods=1).median()
    residual = (values - median).abs()
    scale = 1.4826 * residual.rolling(3 * window, center=True, min_periods=1).median()
    spikes = (residual > k * scale) & (residual > SPIKE_MIN_REL * median.abs().clip(lower=0.01))
    # within half a window of either end the median is one-sided and lags a trend (the fast
    # first descent of every run), so those rows are not judged
    spikes.iloc[: window // 2] = spikes.iloc[len(spikes) - window // 2:] = False
    return spikes


def _trend(steps: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """(fitted change across ``steps``, std of the residuals) of a least-squares line."""
    if len(values) < 3 or np.ptp(steps) == 0:
        return 0.0, float(np.std(values))
    slope, intercept = np.polyfit(steps, values, 1)
    residual = values - (slope * steps + intercept)
    return float(slope * np.ptp(steps)), float(np.std(residual))


def loss_stats(log: pd.DataFrame, tail: float = 0.25, k: float = SPIKE_K) -> dict[str, float]:
    """Figures of merit of the losses, mostly over the last ``tail`` fraction of log rows.

    Returns:
        For each loss (``loss_d`` and ``loss_g``, or a diffusion model's ``loss``): ``mean_``,
        ``std_``, ``final_`` (the smoothed value at the end), ``rise_`` (fitted change across the
        tail), ``noise_`` (std around that line),
        ``swing_`` (std of the detrended smoothed curve: slow oscillation) and ``spikes_`` (spike
        events over the whole run, see ``find_spikes``); ``mean_`` of D's outputs and accuracies
        over the tail; ``rows`` (finite ones), ``tail_rows``, ``steps``, ``epochs``, ``tail``,
        ``spike_k`` and ``nonfinite`` (rows with a NaN or infinite loss, left out of the rest).

    Raises:
        ValueError: no row has finite losses.
    """
    keys = loss_keys(log)
    losses = log[list(keys)].to_numpy(float)
    finite = np.isfinite(losses).all(axis=1)
    if not finite.any():
        raise ValueError("loss_stats: every logged loss is NaN or infinite; training diverged at once")
    log = log[finite]  # the trainer logs the non-finite row it stops on
    n = max(2, math.ceil(len(log) * tail))
    end = log.tail(n)
    stats: dict[str, float] = {"rows": len(log), "tail_rows": n, "steps": int(log["step"].iloc[-1]),
                               "epochs": int(log["epoch"].iloc[-1]), "tail": tail, "spike_k": k,
                               "nonfinite": int((~finite).sum())}
    for key in keys:
        stats.update(_loss_stats(log, key, n, k))
    for key in ("d_real", "d_fake", "d_fake_g", "acc_real", "acc_fake"):
        if key in log.columns:
            stats[f"mean_{key}"] = float(end[key].mean())
    return stats


def _loss_stats(log: pd.DataFrame, key: str, n: int, k: float) -> dict[str, float]:
    """The ``loss_stats`` entries of one loss column over the last ``n`` rows."""
    steps, values = log["step"].tail(n).to_numpy(float), log[key].tail(n).to_numpy(float)
    smooth = smoothed(log[key]).tail(n).to_numpy()
    rise, noise = _trend(steps, values)
    spikes = find_spikes(log[key], k)
    return {f"mean_{key}": float(values.mean()), f"std_{key}": float(values.std()),
            f"final_{key}": float(smooth[-1]), f"rise_{key}": rise, f"noise_{key}": noise,
            f"swing_{key}": _trend(steps, smooth)[1],
            f"spikes_{key}": int((spikes & ~spikes.shift(fill_value=False)).sum())}


def reading(stats: dict[str, float], loss: str = "bce") -> list[str]:
    """Short sentences that interpret ``loss_stats`` of a run of the loss ``loss``; thresholds
    are the constants atop this module."""
    share = f"the last {stats['tail']:.0%} of steps"
    said = [f"the log holds {stats['nonfinite']} rows of non-finite losses: training diverged"] \
        if stats["nonfinite"] else []
    if stats["rows"] < MIN_ROWS:
        return said + [f"only {stats['rows']} log rows: too short to judge trends "
                       "(log more often or train longer)"]
    if loss == "wgan-gp" and "mean_loss_d" in stats:  # a critic's loss has no "chance" level; its negative estimates W
        said.append(f"critic loss {stats['mean_loss_d']:.3g} over {share}: minus the critic's estimate of the "
                    "Wasserstein distance (plus the gradient penalty); it should approach 0 from below as G improves")
    elif "mean_loss_d" in stats:  # a GAN (a diffusion model has one loss and no adversary)
        said += _balance_sentences(stats)
    said += _trend_sentences(stats, share, loss)
    spikes = {key: stats[f"spikes_{key}"] for key in ("loss", "loss_d", "loss_g") if stats.get(f"spikes_{key}")}
    if spikes:
        counts = " and ".join(f"{n} in {labels(loss)[key]}" for key, n in spikes.items())
        said.append(f"spikes: {counts} (beyond {stats['spike_k']:g} robust std of the rolling median): "
                    "unstable updates")
    if "mean_loss" in stats:
        return said or [f"no warning signs: over {share} the denoising loss is steady, without trend or spikes"]
    return said or [f"no warning signs: over {share} the losses are steady, without trend or spikes, "
                    "and D neither wins nor gives up"]


def _balance_sentences(stats: dict[str, float]) -> list[str]:
    """Who wins: from the D loss level and D's outputs over the tail."""
    d, real, fake = stats["mean_loss_d"], stats["mean_d_real"], stats["mean_d_fake"]
    said = []
    if d < D_WINS_LOSS:
        said.append(f"D loss fell to ~0 ({d:.2g}): the discriminator wins; G's gradients vanish, "
                    "so expect little further progress and check the samples for collapse")
    elif real > 1 - D_WINS_PROB and fake < D_WINS_PROB:
        said.append(f"D separates real from fake (D(x) ≈ {real:.2f}, D(G(z)) ≈ {fake:.2f}): "
                    "the discriminator wins")
    elif abs(real - 0.5) < CHANCE_PROB and abs(fake - 0.5) < CHANCE_PROB:
        said.append(f"D is near chance (D(x) ≈ {real:.2f}, D(G(z)) ≈ {fake:.2f}): the ideal "
                    "equilibrium, or a D that stopped learning; judge by the samples")
    if stats["mean_d_fake_g"] > G_FOOLS_PROB:
        said.append(f"D(G(z)) ≈ {stats['mean_d_fake_g']:.2f} in the G step: G fools D entirely; "
                    "D may be too weak")
    return said


def _trend_sentences(stats: dict[str, float], share: str, loss: str) -> list[str]:
    d_name = "critic" if loss == "wgan-gp" else "D"
    names = {key: name for key, name in (("loss_g", "G"), ("loss_d", d_name), ("loss", "denoising"))
             if f"mean_{key}" in stats}
    said = []
    for key, name in names.items():
        level, rise = max(abs(stats[f"mean_{key}"]), 0.1), stats[f"rise_{key}"]
        if abs(rise) > RISE_REL * level and abs(rise) > RISE_NOISE * stats[f"noise_{key}"]:
            way = "rising" if rise > 0 else "falling"
            said.append(f"{name} loss {way} steadily ({rise:+.2f} over {share})" + _trend_meaning(key, rise, d_name))
    swinging = [name for key, name in sorted(names.items())
                if stats[f"swing_{key}"] > SWING_REL * max(abs(stats[f"mean_{key}"]), 0.1)]
    if swinging:
        said.append(f"losses oscillate without settling ({' and '.join(swinging)} loss, smoothed, "
                    f"swing by more than {SWING_REL:.0%} of their level over {share})")
    return said


def _trend_meaning(key: str, rise: float, d_name: str) -> str:
    if key == "loss_g" and rise > 0:
        return f": {d_name} is overpowering G"
    if key == "loss_d" and rise > 0:
        return f": G is catching up with {d_name}"
    if key == "loss" and rise > 0:
        return ": training is diverging, try a lower learning rate"
    return ": still learning, train longer" if key in ("loss_g", "loss") else ""


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
    match = re.search(r"epoch_(\d+)", path.stem)
    return f"epoch {int(match.group(1))}" if match else path.stem


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
    from .latent import pca  # the PCA of latent.py, on features instead of latents
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
def class_histogram(generated: dict[str, float], data: dict[str, float]) -> Figure:
    """Share of generated samples per predicted class, beside the data's class shares."""
    names = list(data)
    x = np.arange(len(names))
    fig, ax = _figure(figsize=(10, 3.8))
    ax.bar(x - 0.2, [data[n] for n in names], 0.4, label="real test split", color="C0")
    ax.bar(x + 0.2, [generated.get(n, 0.0) for n in names], 0.4, label="generated", color="C3")
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
    right.set_ylim(0, 1.05)
    right.set_title("Precision, recall, coverage (dotted: floor)")
    right.legend()
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig
