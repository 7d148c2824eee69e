"""Comparing configurations over seeds: per-configuration means with t-intervals, and verdicts
on the pairs a sweep asks about: each variant against its reference, and in a grid each pair
that differs in one setting. Every pair is compared on FD, precision, recall and coverage with
Welch's test, Hedges' g and a Holm correction over all the comparisons of the page; a pair in
which a configuration failed to learn the data gets no verdict. Tables in, tables and sentences
out (no run folders, no figures).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from . import stats
from .stats import ALPHA, number, t_interval, welch

# every score of a run that can be compared across configurations: whether lower or higher is
# better, and the range it lies in (intervals are cut to it)
SCORE_DIRECTIONS = {"fd": "lower", "kid": "lower", "precision": "higher", "recall": "higher", "density": "higher",
                    "coverage": "higher", "classes": "higher", "class_kl": "lower", "conditional_accuracy": "higher",
                    "fd_over_training": "lower", "fd_spread": "lower", "loss_spread": "lower"}
BOUNDS = {"fd": (0, math.inf), "precision": (0, 1), "recall": (0, 1), "coverage": (0, 1), "density": (0, math.inf),
          "classes": (0, math.inf), "class_kl": (0, math.inf), "conditional_accuracy": (0, 1),
          "fd_over_training": (0, math.inf), "fd_spread": (0, math.inf), "loss_spread": (0, math.inf)}
VERDICT_SCORES = ("fd", "precision", "recall", "coverage")  # each pair is compared on these
# a configuration failed to learn the data when its samples are far from it: no verdict on it
RECALL_FLOOR = 0.05  # mean recall below this: the samples reach almost none of the data's variety
CLASSES_FLOOR = 0.5  # or fewer than this share of the data's classes covered
GATE = (f"a configuration failed to learn the data when its mean recall is below {RECALL_FLOOR} or it covers fewer "
        f"than {CLASSES_FLOOR:.0%} of the classes")
WIDE_AT = 2  # at this many seeds a t-interval (t = 12.7) is too wide to inform
METHOD = ("mean over seeds with a 95 % Student t-interval (cut to the score's range); differences with Welch's "
          "t-test (unequal variances), Hedges' g, and p-values Holm-corrected over every comparison on this page")


def direction(score: str) -> str:
    """``lower`` or ``higher``: which way a score is better (a loss: lower)."""
    return SCORE_DIRECTIONS.get(score, "lower")


def per_configuration(runs: pd.DataFrame, settings: list[str]) -> pd.DataFrame:
    """One row per configuration of the finished runs (``status`` ok): its settings, ``n`` seeds,
    and for each score and loss figure its mean, std and 95 % interval over seeds."""
    ok = runs[runs["status"] == "ok"]
    scores = [c for c in (*SCORE_DIRECTIONS, *_loss_columns(runs)) if c in ok and ok[c].notna().any()]
    rows = []
    for name, group in ok.groupby("configuration", sort=False):
        row: dict[str, Any] = {"configuration": name, **{s: group[s].iloc[0] for s in settings},
                               "n": len(group), "seeds": " ".join(str(int(s)) for s in group["seed"].dropna())}
        for score in scores:
            mean, std, low, high = t_interval(group[score], bounds=BOUNDS.get(score, (-math.inf, math.inf)))
            row.update({f"{score}_mean": mean, f"{score}_std": std, f"{score}_ci_low": low, f"{score}_ci_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def _loss_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs if c.startswith("final_loss")]


# --- which pairs ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    """Two configurations to compare: ``a`` against ``b`` (the reference, when there is one)."""

    a: str
    b: str
    label: str  # e.g. "lr1e-3 vs bce (reference)", "latent_dim=10 vs latent_dim=100"


def pairs(runs: pd.DataFrame, settings: list[str]) -> list[Pair]:
    """Each configuration against its reference (the ``reference`` column: a variant of the
    sweep against its reference variant), then each pair of configurations that differs in one
    swept setting and shares its variant (a grid's axes)."""
    first = runs.drop_duplicates("configuration").set_index("configuration", drop=False)
    names = setting_names(settings)
    found: list[Pair] = []
    references = first["reference"] if "reference" in first else pd.Series(dtype=object)
    for name, reference in references.items():
        if isinstance(reference, str) and reference and reference in first.index:
            found.append(Pair(name, reference, f"{name} vs {reference} (reference)"))
    for a, b in combinations(first.index, 2):
        row_a, row_b = first.loc[a], first.loc[b]
        differing = [s for s in settings if str(row_a[s]) != str(row_b[s])]
        if len(differing) != 1 or _variant(row_a) != _variant(row_b):
            continue
        key = differing[0]
        others = [f"{names[s]}={row_a[s]}" for s in settings if s != key and runs[s].nunique() > 1]
        found.append(Pair(a, b, f"{names[key]}={row_a[key]} vs {names[key]}={row_b[key]}"
                                + (f" (at {', '.join(others)})" if others else "")))
    return found


def _variant(row: pd.Series) -> str:
    return str(row.get("variant", "")) if isinstance(row.get("variant", ""), str) else ""


def setting_names(settings: list[str]) -> dict[str, str]:
    """Each setting's name without its section (``model.latent_dim`` -> ``latent_dim``), or in
    full where two would read alike (``optim_g.lr`` and ``optim_d.lr``)."""
    short = {key: key.rsplit(".", 1)[-1] for key in settings}
    return {key: name if list(short.values()).count(name) == 1 else key for key, name in short.items()}


# --- did it learn ----------------------------------------------------------------------------------
def failed_to_learn(runs: pd.DataFrame) -> dict[str, str]:
    """The configurations that failed to learn the data (``GATE``), each with why, e.g.
    ``recall 0.01 < 0.05``; a configuration without scores is not judged."""
    ok = runs[runs["status"] == "ok"]
    failed = {}
    for name, group in ok.groupby("configuration", sort=False):
        why = []
        if "recall" in group and group["recall"].notna().any() and group["recall"].mean() < RECALL_FLOOR:
            why.append(f"recall {group['recall'].mean():.2g} < {RECALL_FLOOR}")
        if {"classes", "classes_in_data"} <= set(group) and group["classes"].notna().any():
            covered, total = group["classes"].mean(), group["classes_in_data"].max()
            if covered < CLASSES_FLOOR * total:
                why.append(f"{covered:.3g} of {total:.0f} classes covered")
        if why:
            failed[name] = ", ".join(why)
    return failed


# --- verdicts --------------------------------------------------------------------------------------
def compare(runs: pd.DataFrame, chosen: list[Pair], scores: tuple[str, ...] = VERDICT_SCORES) -> pd.DataFrame:
    """One row per pair and score: both sides' seeds, means and stds, the difference with its
    95 % interval, Hedges' g, Welch's p and Holm's p over every row that was tested, and the
    verdict: ``A better``, ``B better``, ``no conclusion``, ``one seed`` or ``failed to learn``."""
    ok = runs[runs["status"] == "ok"]
    failed = failed_to_learn(runs)
    rows = []
    for pair in chosen:
        for score in (s for s in scores if s in ok and ok[s].notna().any()):
            a = ok.loc[ok["configuration"] == pair.a, score].dropna().to_numpy(float)
            b = ok.loc[ok["configuration"] == pair.b, score].dropna().to_numpy(float)
            if not len(a) or not len(b):
                continue
            row = {"pair": pair.label, "a": pair.a, "b": pair.b, "score": score, "n_a": len(a), "n_b": len(b),
                   "mean_a": a.mean(), "sd_a": a.std(ddof=1) if len(a) > 1 else math.nan,
                   "mean_b": b.mean(), "sd_b": b.std(ddof=1) if len(b) > 1 else math.nan}
            if pair.a in failed or pair.b in failed:
                row["verdict"] = "failed to learn"
            elif min(len(a), len(b)) < 2:
                row["verdict"] = "one seed"
            else:
                d = welch(a, b)
                row.update(diff=d.diff, low=d.low, high=d.high, g=d.g, p=d.p)
            rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    tested = table["p"].notna() if "p" in table else pd.Series(False, index=table.index)
    table["p_holm"] = np.nan
    if tested.any():
        table.loc[tested, "p_holm"] = stats.holm(table.loc[tested, "p"].tolist())
    for i in table.index[tested]:
        row = table.loc[i]
        lower = direction(row["score"]) == "lower"
        if row["p_holm"] < ALPHA:
            table.loc[i, "verdict"] = "A better" if (row["diff"] < 0) == lower else "B better"
        else:
            table.loc[i, "verdict"] = "no conclusion"
    return table


def sentences(table: pd.DataFrame, runs: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    """One sentence per pair: on which scores each side is better, where there is no
    conclusion, or why there is no verdict (a side that failed to learn, one seed)."""
    failed = failed_to_learn(runs)
    said = []
    for label, rows in table.groupby("pair", sort=False):
        a, b = rows["a"].iloc[0], rows["b"].iloc[0]
        n_a, n_b = rows["n_a"].max(), rows["n_b"].max()
        seeds = f"{n_a} seeds each" if n_a == n_b else f"{n_a} and {n_b} seeds"
        sick = [f"{name} ({failed[name]})" for name in (a, b) if name in failed]
        if sick:
            both = len(sick) == 2
            said.append(f"**{label}**: {'both configurations' if both else sick[0].split(' (')[0]} failed to learn "
                        f"the data in this budget ({'; '.join(sick)}): no verdict about the setting; train longer")
            continue
        if min(n_a, n_b) < 2:
            said.append(f"**{label}**: one seed: no conclusion possible (add seeds: [0, 1, 2] to the sweep)")
            continue
        parts = []
        for verdict, who in (("A better", a), ("B better", b)):
            won = rows[rows["verdict"] == verdict]
            if len(won):
                parts.append(f"{who} is better on " + ", ".join(_difference(r, labels) for _, r in won.iterrows()))
        open_scores = rows[rows["verdict"] == "no conclusion"]["score"].map(lambda s: labels.get(s, s)).tolist()
        if open_scores:
            parts.append(f"no conclusion on {', '.join(open_scores)}")
        wide = " (at 2 seeds the intervals are too wide to inform: add seeds)" if min(n_a, n_b) <= WIDE_AT else ""
        said.append(f"**{label}**, {seeds}: " + "; ".join(parts) + wide)
    return said


def _difference(row: pd.Series, labels: dict[str, str]) -> str:
    return (f"{labels.get(row['score'], row['score'])} ({number(row['mean_a'])} vs {number(row['mean_b'])}, difference "
            f"{number(row['diff'])} [{number(row['low'])}, {number(row['high'])}], g = {number(row['g'], 2)}, "
            f"Holm p = {row['p_holm']:.2g})")


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
        d = welch(a, b)
        notes[this] = "better than the next" if d.high < 0 or d.low > 0 else "tied with the next (within noise)"
    return pd.Series(notes, name="vs next")
