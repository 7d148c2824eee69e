"""Statistics over seeds, as math on numbers: Student t-intervals kept inside a score's range,
Welch's test of two configurations with Hedges' g, Holm's correction, and the power of a
comparison (the smallest difference it could detect, the seeds a difference would need).
Numbers in, numbers out: no run folders, no figures.

With 2-5 seeds per configuration intervals are wide and honest (Lucic et al. 2018: many GAN
differences vanish against seed spread; Cumming et al. 2007: with small n, show the points).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

LEVEL = 0.95
ALPHA = 1 - LEVEL
POWER = 0.8  # the power a comparison is planned for
MAX_SEEDS = 1000  # seeds_needed gives up beyond this


def number(value: float, digits: int = 3) -> str:
    """A number in a sentence: ``digits`` significant digits, no exponent below a million."""
    if value is None or not np.isfinite(value):
        return "-"
    if abs(value) >= 10 ** digits:
        return f"{round(value):,}"
    text = f"{value:.{digits}g}"
    return f"{float(text):f}".rstrip("0").rstrip(".") if "e" in text else text


def t_interval(values, level: float = LEVEL, bounds: tuple[float, float] = (-math.inf, math.inf)
               ) -> tuple[float, float, float, float]:
    """(mean, std, low, high) of ``values`` over seeds, the interval Student's t and cut to the
    score's ``bounds`` (a share lies in [0, 1], FD >= 0); std and interval are NaN for one value."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(x) == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1)) * std / math.sqrt(len(x))
    return mean, std, max(mean - half, bounds[0]), min(mean + half, bounds[1])


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) with Welch's interval and test, Hedges' g and the seeds on each side."""

    diff: float
    low: float
    high: float
    p: float  # Welch's two-sided p-value of no difference (of ``diff - margin`` when tested against a margin)
    g: float  # Hedges' g: the difference in pooled standard deviations, corrected for small samples
    sd: float  # the pooled standard deviation
    n_a: int
    n_b: int


def welch(a, b, level: float = LEVEL, margin: float = 0.0) -> Difference:
    """Welch's t-interval and test of mean(a) - mean(b) (unequal variances), against ``margin``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    sd = pooled_sd(a, b)
    g = (diff / sd * (1 - 3 / (4 * (len(a) + len(b)) - 9))) if sd > 0 else math.copysign(math.inf, diff) if diff else 0.0
    if se == 0:
        return Difference(diff, diff, diff, 0.0 if diff != margin else 1.0, g, sd, len(a), len(b))
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    p = float(2 * stats.t.sf(abs(diff - margin) / se, df))
    return Difference(diff, diff - half, diff + half, p, g, sd, len(a), len(b))


def one_sample(x, level: float = LEVEL) -> Difference:
    """The mean of ``x`` against 0: Student's interval and test (for per-run correlations)."""
    x = np.asarray(x, dtype=float)
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    se = sd / math.sqrt(len(x))
    if se == 0:
        return Difference(mean, mean, mean, 0.0 if mean else 1.0, math.inf, sd, len(x), 0)
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, len(x) - 1))
    return Difference(mean, mean - half, mean + half, p, mean / sd, sd, len(x), 0)


def pooled_sd(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    dof = len(a) + len(b) - 2
    return math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / dof) if dof > 0 else math.nan


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): each compared with the level itself
    controls the chance of any false verdict among them."""
    order = np.argsort(pvalues)
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def power(d: float, n_a: int, n_b: int = 0, alpha: float = ALPHA) -> float:
    """The power of a two-sided t-test to find a true standardized difference ``d`` with
    ``n_a`` and ``n_b`` seeds (``n_b`` = 0: a one-sample test of ``n_a`` values)."""
    if n_b:
        df, ncp = n_a + n_b - 2, abs(d) * math.sqrt(n_a * n_b / (n_a + n_b))
    else:
        df, ncp = n_a - 1, abs(d) * math.sqrt(n_a)
    if df < 1:
        return math.nan
    crit = stats.t.ppf(1 - alpha / 2, df)
    value = float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))
    return value if np.isfinite(value) else 1.0  # scipy's noncentral t gives up far in the tail


def detectable(n_a: int, n_b: int = 0, alpha: float = ALPHA, target: float = POWER) -> float:
    """The smallest standardized difference found with ``target`` power at these seeds."""
    if (n_a + n_b - 2 if n_b else n_a - 1) < 1:
        return math.nan
    return float(optimize.brentq(lambda d: power(d, n_a, n_b, alpha) - target, 1e-6, 50.0))


def seeds_needed(d: float, alpha: float = ALPHA, target: float = POWER, paired: bool = False) -> int | None:
    """Seeds per configuration (per side) that find a true standardized difference ``d`` with
    ``target`` power (``paired``: values of one group against 0); None beyond ``MAX_SEEDS``."""
    if not np.isfinite(d) or d == 0:
        return None if d == 0 else 2
    for n in range(2, MAX_SEEDS + 1):
        if power(d, n, 0 if paired else n, alpha) >= target:
            return n
    return None
