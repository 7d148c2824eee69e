"""Loss statistics of a run's log: smoothing, per-epoch means, spikes, trends and the figures of
merit the loss analysis reports and reads (``reporting.prose``).

Logs are DataFrames of a run's log.csv (``load_log``), one row per ``train.log_every`` steps,
each the mean over them; which columns are losses the model family says (``models.log_schema``).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..families import LogSchema
from ..rundir import RunDir

SPIKE_K = 6.0  # a spike: farther than this many robust std (1.4826 MAD) from the rolling median,
SPIKE_MIN_REL = 0.1  # and by more than 10 % of it (a blip on a very smooth stretch is no spike)


def load_log(path: str | Path | RunDir, schema: LogSchema) -> pd.DataFrame:
    """A run's log.csv as a DataFrame (``path`` is the file, the run folder or a RunDir).

    Raises:
        FileNotFoundError: there is no log yet.
        ValueError: the file lacks the columns of the family's ``schema``, or has no rows.
    """
    path = path.log if isinstance(path, RunDir) else Path(path)
    path = RunDir(path).log if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train the run first (gan-workbook train ...)")
    log = pd.read_csv(path)
    missing = [c for c in ("epoch", "step", *schema.columns) if c not in log.columns]
    if missing or log.empty:
        raise ValueError(f"{path} is not a log.csv of this model with rows (missing columns: {missing or 'none'}, "
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
    return interp(np.asarray(steps, float), *epoch_knots(log))


def epoch_knots(log: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(steps, epochs) at epoch ends, starting from (0, first epoch - 1)."""
    ends = log.groupby("epoch")["step"].max()
    return np.r_[0.0, ends.to_numpy(float)], np.r_[ends.index[0] - 1, ends.index.to_numpy(float)]


def interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp`` extrapolated linearly past both ends (a secondary axis must stay monotonic)."""
    y = np.interp(x, xp, fp)
    lo, hi = (fp[1] - fp[0]) / (xp[1] - xp[0]), (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    y = np.where(x < xp[0], fp[0] + (x - xp[0]) * lo, y)
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * hi, y)


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


def loss_stats(log: pd.DataFrame, schema: LogSchema, tail: float = 0.25, k: float = SPIKE_K) -> dict[str, float]:
    """Figures of merit of the losses, mostly over the last ``tail`` fraction of log rows.

    Returns:
        For each loss of the schema (a GAN's ``loss_d`` and ``loss_g``, a diffusion model's
        ``loss``): ``mean_``, ``std_``, ``final_`` (the smoothed value at the end), ``rise_``
        (fitted change across the tail), ``noise_`` (std around that line), ``swing_`` (std of
        the detrended smoothed curve: slow oscillation) and ``spikes_`` (spike events over the
        whole run, see ``find_spikes``); ``mean_`` of the other logged columns (a GAN's D outputs
        and accuracies) over the tail; ``rows`` (finite ones), ``tail_rows``, ``steps``,
        ``epochs``, ``tail``, ``spike_k`` and ``nonfinite`` (rows with a NaN or infinite loss,
        left out of the rest).

    Raises:
        ValueError: no row has finite losses.
    """
    keys = schema.losses
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
    for key in schema.columns:
        if key not in keys:
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
