"""Comparing configurations over seeds: per-configuration means with t-intervals, and for each
pair that differs in one setting the difference of means with Welch's t-interval and a verdict
in words. Tables in, tables and sentences out (no run folders, no figures).

With 2-5 seeds per configuration the t-interval is wide and honest: a difference whose interval
holds 0 is "no conclusion", never a ranking (Lucic et al. 2018: many GAN differences vanish
against seed spread).
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95
# scores compared across configurations, and whether lower is better
SCORE_DIRECTIONS = {"fd": "lower", "kid": "lower", "precision": "higher", "recall": "higher",
                    "coverage": "higher", "classes": "higher"}
METHOD = ("mean over seeds with a 95 % Student t-interval; differences between configurations with "
          "Welch's t-interval (unequal variances) over seeds")


def t_interval(values: pd.Series | np.ndarray, level: float = LEVEL) -> tuple[float, float, float, float]:
    """(mean, std, low, high) of ``values`` over seeds; std and the interval are NaN for one value."""
    x = np.asarray(pd.Series(values).dropna(), dtype=float)
    if len(x) == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1)) * std / math.sqrt(len(x))
    return mean, std, mean - half, mean + half


def welch_interval(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high): Welch's t-interval of the difference of two means."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return diff, diff - half, diff + half


def per_configuration(runs: pd.DataFrame, settings: list[str]) -> pd.DataFrame:
    """One row per configuration of the finished runs (``status`` ok): its settings, ``n`` seeds,
    and for each score and final loss its mean, std and 95 % interval over seeds."""
    ok = runs[runs["status"] == "ok"]
    scores = [c for c in (*SCORE_DIRECTIONS, *_loss_columns(runs)) if c in ok and ok[c].notna().any()]
    rows = []
    for name, group in ok.groupby("configuration", sort=False):
        row: dict[str, Any] = {"configuration": name, **{s: group[s].iloc[0] for s in settings},
                               "n": len(group), "seeds": " ".join(str(int(s)) for s in group["seed"].dropna())}
        for score in scores:
            mean, std, low, high = t_interval(group[score])
            row.update({f"{score}_mean": mean, f"{score}_std": std, f"{score}_ci_low": low, f"{score}_ci_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def _loss_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs if c.startswith("final_loss")]


def verdicts(runs: pd.DataFrame, settings: list[str], score: str = "fd", label: str = "FD") -> list[str]:
    """A sentence for each pair of configurations that differ in exactly one setting."""
    ok = runs[(runs["status"] == "ok") & runs[score].notna()] if score in runs else runs.iloc[:0]
    groups = {name: group for name, group in ok.groupby("configuration", sort=False)}
    lower = SCORE_DIRECTIONS.get(score, "lower") == "lower"
    lines = []
    for (name_a, a), (name_b, b) in combinations(groups.items(), 2):
        differing = [s for s in settings if a[s].iloc[0] != b[s].iloc[0]]
        if len(differing) != 1:
            continue
        key = differing[0]
        who_a, who_b = f"{_short(key)}={a[key].iloc[0]}", f"{_short(key)}={b[key].iloc[0]}"
        values_a, values_b = a[score].to_numpy(float), b[score].to_numpy(float)
        seeds = f"{len(values_a)} seeds" if len(values_a) == len(values_b) else f"{len(values_a)} and {len(values_b)} seeds"
        if min(len(values_a), len(values_b)) < 2:
            lines.append(f"{who_a} vs {who_b}: {label} {values_a.mean():.3g} vs {values_b.mean():.3g}; one seed: "
                         f"no conclusion possible (add seeds: [0, 1, 2] to the sweep)")
            continue
        diff, low, high = welch_interval(values_a, values_b)
        text = (f"{label} {values_a.mean():.3g} +/- {values_a.std(ddof=1):.2g} vs {values_b.mean():.3g} +/- "
                f"{values_b.std(ddof=1):.2g} ({seeds}), difference {diff:.3g} [{low:.3g}, {high:.3g}]")
        if low > 0 or high < 0:
            a_better = (diff < 0) == lower
            lines.append(f"{who_a if a_better else who_b} is better: {text}")
        else:
            lines.append(f"{who_a} vs {who_b}: no conclusion at {seeds}: {text}")
    return lines


def rank_with_ties(configurations: pd.DataFrame, runs: pd.DataFrame, score: str = "fd") -> pd.Series:
    """For configurations sorted by mean ``score``: whether each is distinguishable from the next
    ("better than the next", "tied with the next (within noise)", "one seed: untested")."""
    order = configurations.sort_values(f"{score}_mean")["configuration"].tolist()
    values = {c: runs.loc[(runs["configuration"] == c) & (runs["status"] == "ok"), score].dropna().to_numpy(float)
              for c in order}
    notes = {}
    for this, following in zip(order, order[1:]):
        a, b = values[this], values[following]
        if min(len(a), len(b)) < 2:
            notes[this] = "one seed: untested"
            continue
        _, low, high = welch_interval(a, b)
        notes[this] = "better than the next" if high < 0 or low > 0 else "tied with the next (within noise)"
    return pd.Series(notes, name="vs next")


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]
