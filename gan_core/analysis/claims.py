"""Claims declared in a sweep file before its runs, and their verdicts after them.

A claim is a sentence of a report ("z=100 gives more variety than z=10") with its source and
what it predicts in terms the workbook measures::

    claims:
      - claim: z = 100 gives more variety than z = 10
        source: Fashion-MNIST DCGAN course report
        predicts: {better: z100, than: z10, score: recall}
      - claim: z = 500 brings no improvement over z = 100
        predicts: {no_better: z500, than: z100, score: fd, margin: 5}   # not better by 5 or more
      - claim: the falling generator loss shows the generator improving
        predicts: {relation: [loss_g, fd], across: checkpoints, sign: positive}
                  # within each run, lower G loss goes with lower FD (optional: among: [configurations])

Each gets "supported", "contradicted" or "not settled at n seeds": Welch's test (for a relation,
the per-run correlations against 0) of the predicted difference, Holm-corrected over the
sweep's claims, with the difference, its interval, the smallest difference these seeds detect
with 80 % power and the seeds the observed difference would need. Never "no difference": a
claim that is not settled says how many seeds would settle it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from ..config import ConfigError
from ..evaluators import OWN_MIN_IMAGES
from . import stats
from .comparison import direction, failed_to_learn
from .stats import number

CLAIM_KEYS = {"claim", "source", "predicts"}
KINDS = {"better": {"better", "than", "score"}, "no_better": {"no_better", "than", "score", "margin"},
         "relation": {"relation", "across", "sign", "among"}}
ACROSS = ("checkpoints",)  # a relation's points: the run's saved checkpoints (epochs)
CHECKPOINT_SCORES = ("fd", "kid", "precision", "recall", "density", "coverage", "classes_covered")


@dataclass(frozen=True)
class Claim:
    """A claim as declared: its words, source, and prediction (``kind`` with its terms)."""

    words: str
    source: str
    kind: str  # better | no_better | relation
    a: str = ""  # better / no_better: the configuration claimed better (or no better) ...
    b: str = ""  # ... than this one
    score: str = ""  # ... on this score
    margin: float = 0.0  # no_better: an improvement smaller than this counts as none
    variables: tuple[str, ...] = ()  # relation: (x, y), each a logged loss or a checkpoint score
    sign: str = "positive"  # relation: positive (x and y rise together) or negative
    among: tuple[str, ...] = field(default=())  # relation: these configurations (default: all)

    def prediction(self) -> str:
        if self.kind == "better":
            return f"{self.a} better than {self.b} on {self.score}"
        if self.kind == "no_better":
            return f"{self.a} no better than {self.b} on {self.score} (by {self.margin:g} or more)"
        return f"{self.variables[0]} and {self.variables[1]} {'rise together' if self.sign == 'positive' else 'move oppositely'} across checkpoints"


def parse(raw: Any, path: str, configurations: list[str], scores: set[str], variables: set[str]) -> list[Claim]:
    """The sweep file's ``claims:``, checked against its ``configurations``, the ``scores`` a
    run has and the logged ``variables``.

    Raises:
        ConfigError: naming the file, the claim and what is unknown.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: claims must be a list of {{claim, source, predicts}} (got {raw!r})")
    return [_parse_one(item, f"{path}: claims[{i}]", configurations, scores, variables) for i, item in enumerate(raw)]


def _parse_one(item: Any, where: str, configurations: list[str], scores: set[str], variables: set[str]) -> Claim:
    if not isinstance(item, dict) or not isinstance(item.get("claim"), str) or "predicts" not in item:
        raise ConfigError(f"{where} must be a mapping with claim (its words), source and predicts (got {item!r})")
    if unknown := set(item) - CLAIM_KEYS:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]} (known: {', '.join(sorted(CLAIM_KEYS))})")
    predicts = item["predicts"]
    kind = next((k for k in KINDS if isinstance(predicts, dict) and k in predicts), None)
    if kind is None:
        raise ConfigError(f"{where}.predicts must say better/than/score, no_better/than/score/margin or "
                          f"relation/across/sign (got {predicts!r})")
    if unknown := set(predicts) - KINDS[kind]:
        raise ConfigError(f"{where}.predicts: unknown key {sorted(unknown)[0]} (a {kind} claim has "
                          f"{', '.join(sorted(KINDS[kind]))})")
    words, source = item["claim"], str(item.get("source", ""))
    if kind == "relation":
        return _relation(predicts, where, words, source, configurations, variables)
    a, b, score = predicts.get(kind), predicts.get("than"), predicts.get("score")
    for key, name in ((kind, a), ("than", b)):
        if name not in configurations:
            raise ConfigError(f"{where}.predicts.{key}: {name!r} is not a configuration of this sweep "
                              f"(configurations: {', '.join(configurations)})")
    if a == b:
        raise ConfigError(f"{where}.predicts: compares {a!r} with itself")
    if score not in scores:
        raise ConfigError(f"{where}.predicts.score: {score!r} is not a score of these runs (scores: {', '.join(sorted(scores))})")
    margin = predicts.get("margin", 0.0)
    if kind == "no_better" and (isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin <= 0):
        raise ConfigError(f"{where}.predicts.margin must be a number > 0: the improvement that would count (got {margin!r})")
    return Claim(words, source, kind, a, b, score, float(margin))


def _relation(predicts: dict, where: str, words: str, source: str, configurations: list[str],
              variables: set[str]) -> Claim:
    pair = predicts["relation"]
    if not isinstance(pair, list) or len(pair) != 2:
        raise ConfigError(f"{where}.predicts.relation must be two names, e.g. [loss_g, fd] (got {pair!r})")
    for name in pair:
        if name not in variables:
            raise ConfigError(f"{where}.predicts.relation: {name!r} is neither a logged value nor a checkpoint score "
                              f"(known: {', '.join(sorted(variables))})")
    if predicts.get("across") not in ACROSS:
        raise ConfigError(f"{where}.predicts.across must be {' or '.join(ACROSS)} (got {predicts.get('across')!r})")
    if predicts.get("sign", "positive") not in ("positive", "negative"):
        raise ConfigError(f"{where}.predicts.sign must be positive or negative (got {predicts.get('sign')!r})")
    among = predicts.get("among", [])
    unknown = [c for c in among if c not in configurations] if isinstance(among, list) else [among]
    if unknown:
        raise ConfigError(f"{where}.predicts.among: {unknown[0]!r} is not a configuration of this sweep "
                          f"(configurations: {', '.join(configurations)})")
    return Claim(words, source, "relation", variables=tuple(pair), sign=predicts.get("sign", "positive"),
                 among=tuple(among))


def to_dict(claim: Claim) -> dict[str, Any]:
    return asdict(claim)


def from_dict(raw: dict[str, Any]) -> Claim:
    return Claim(**{**raw, "variables": tuple(raw.get("variables", ())), "among": tuple(raw.get("among", ()))})


# --- verdicts ------------------------------------------------------------------------------------
def answer(claims: list[Claim], runs: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per claim: what was measured, the test and its Holm-corrected p over the claims,
    power, and the verdict. ``runs``: one row per run (``index.sweep_table``); ``curves``: its
    per-epoch ``losses`` and per-checkpoint ``quality`` (``index.seed_curves``). A claim on a
    configuration that failed to learn the data (``comparison.failed_to_learn``) is not tested."""
    failed = failed_to_learn(runs)
    rows = [_measure(claim, runs, curves) for claim in claims]
    for row, claim in zip(rows, claims):
        row["failed"] = " and ".join(c for c in (claim.a, claim.b) if c in failed)
        if row["failed"]:
            row.pop("p", None)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    tested = table["p"].notna() if "p" in table else pd.Series(False, index=table.index)
    table["p_holm"] = np.nan
    if tested.any():
        table.loc[tested, "p_holm"] = stats.holm(table.loc[tested, "p"].tolist())
    alpha = stats.ALPHA / max(int(tested.sum()), 1)  # Holm's first step: what the power is planned at
    for i in table.index:
        table.loc[i, ["detectable", "seeds_needed"]] = _power(table.loc[i], alpha)
        table.loc[i, "verdict"] = _verdict(table.loc[i])
    return table


def _measure(claim: Claim, runs: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> dict[str, Any]:
    row: dict[str, Any] = {"claim": claim.words, "source": claim.source, "predicts": claim.prediction(),
                           "kind": claim.kind}
    if claim.kind == "relation":
        r = per_run_correlations(claim, curves)
        logged = {c for part in curves.values() for c in part.columns}
        row["unmeasured"] = bool((runs["status"] == "ok").any() and not set(claim.variables) <= logged)
        row.update(score=f"correlation of {claim.variables[0]} and {claim.variables[1]}", n_a=len(r), n_b=0,
                   mean_a=float(r.mean()) if len(r) else math.nan, boundary=0.0,
                   sign=1.0 if claim.sign == "positive" else -1.0)
        if len(r) >= 2:
            d = stats.one_sample(r)  # a mean correlation lies in [-1, 1]: so does its interval
            row.update(diff=d.diff, low=max(d.low, -1.0), high=min(d.high, 1.0), p=d.p, sd=d.sd)
        return row
    ok = runs[runs["status"] == "ok"]
    a = ok.loc[ok["configuration"] == claim.a, claim.score].dropna().to_numpy(float) if claim.score in ok else []
    b = ok.loc[ok["configuration"] == claim.b, claim.score].dropna().to_numpy(float) if claim.score in ok else []
    sign = -1.0 if direction(claim.score) == "lower" else 1.0  # +: a is better
    row["unmeasured"] = bool(ok["configuration"].isin([claim.a, claim.b]).any() and not len(a) and not len(b))
    row.update(score=claim.score, n_a=len(a), n_b=len(b), mean_a=np.mean(a) if len(a) else math.nan,
               mean_b=np.mean(b) if len(b) else math.nan, sign=sign, boundary=sign * claim.margin)
    if min(len(a), len(b)) >= 2:
        d = stats.welch(a, b, margin=row["boundary"])
        row.update(diff=d.diff, low=d.low, high=d.high, p=d.p, sd=d.sd, sd_a=np.std(a, ddof=1), sd_b=np.std(b, ddof=1))
    return row


def per_run_correlations(claim: Claim, curves: dict[str, pd.DataFrame]) -> np.ndarray:
    """Spearman's correlation of a relation's two values across each run's saved checkpoints
    (runs with at least 3 checkpoints), one per run."""
    losses, quality = curves.get("losses", pd.DataFrame()), curves.get("quality", pd.DataFrame())
    keys = ["configuration", "seed", "epoch"]
    if losses.empty or quality.empty:
        return np.array([])
    merged = quality.merge(losses, on=keys, how="inner", suffixes=("", "_log"))
    if claim.among:
        merged = merged[merged["configuration"].isin(claim.among)]
    x, y = claim.variables
    if x not in merged or y not in merged:
        return np.array([])
    values = []
    for _, run in merged.groupby(["configuration", "seed"]):
        run = run[[x, y]].dropna()
        if len(run) >= 3 and run[x].nunique() > 1 and run[y].nunique() > 1:
            values.append(scipy_stats.spearmanr(run[x], run[y]).statistic)
    return np.asarray(values, dtype=float)


def _power(row: pd.Series, alpha: float) -> list[float]:
    """The smallest difference (in the claim's units) these seeds detect with 80 % power, and
    the seeds per configuration the observed difference would need."""
    if not np.isfinite(row.get("sd", math.nan)) or row["sd"] == 0 or row.get("failed"):
        return [math.nan, math.nan]
    paired = row["kind"] == "relation"
    d = stats.detectable(int(row["n_a"]), 0 if paired else int(row["n_b"]), alpha)
    observed = abs(row["diff"] - row["boundary"]) / row["sd"]
    needed = stats.seeds_needed(observed, alpha, paired=paired)
    return [d * row["sd"], math.nan if needed is None else needed]


def _verdict(row: pd.Series) -> str:
    n = int(min(row["n_a"], row["n_b"]) if row["kind"] != "relation" else row["n_a"])
    unit = "runs" if row["kind"] == "relation" else "seeds"
    if isinstance(row.get("failed"), str) and row["failed"]:
        return f"not settled: {row['failed']} failed to learn the data in this budget (train longer)"
    if row.get("unmeasured"):  # finished runs without the score: a folder too small for an evaluator, classes without labels
        return (f"not answerable from these runs: they have no {row['score']} (FD, KID and precision/recall need "
                f"an evaluator: a labelled data set, or {OWN_MIN_IMAGES} images or more of your own; classes need "
                "labels)")
    if not np.isfinite(row.get("p_holm", math.nan)):
        return f"not settled at {n} {unit}: too few finished runs to test"
    if row["p_holm"] >= stats.ALPHA:
        return f"not settled at {n} {unit}"
    beyond = row["sign"] * (row["diff"] - row["boundary"]) > 0  # past the boundary, in the better direction
    if row["kind"] == "no_better":
        return "contradicted" if beyond else "supported"
    return "supported" if beyond else "contradicted"


def sentence(row: pd.Series, labels: dict[str, str]) -> str:
    """A claim's verdict in words, with its numbers."""
    head = f"**{row['claim']}**" + (f" ({row['source']})" if row["source"] else "") + f": {row['verdict']}"
    if not np.isfinite(row.get("diff", math.nan)):
        return head + f" (predicted: {row['predicts']})."
    if row["kind"] == "relation":
        measured = (f"mean per-run Spearman correlation {row['diff']:.2f} [{row['low']:.2f}, {row['high']:.2f}] "
                    f"over {int(row['n_a'])} runs")
    else:
        score = labels.get(row["score"], row["score"])
        seeds = (f"{int(row['n_a'])} seeds each" if row["n_a"] == row["n_b"]
                 else f"{int(row['n_a'])} and {int(row['n_b'])} seeds")
        measured = (f"{score} {number(row['mean_a'])} +/- {number(row['sd_a'])} vs {number(row['mean_b'])} +/- "
                    f"{number(row['sd_b'])} ({seeds}), difference {number(row['diff'])} "
                    f"[{number(row['low'])}, {number(row['high'])}]")
    test = f", Holm p = {row['p_holm']:.2g}" if np.isfinite(row.get("p_holm", math.nan)) else ""
    power = ""
    if np.isfinite(row.get("detectable", math.nan)) and not row.get("failed"):
        needed, unit = row["seeds_needed"], "runs" if row["kind"] == "relation" else "seeds"
        power = (f"; these {unit} detect a difference of {number(row['detectable'])} or more with 80 % power, and "
                 + (f"the observed difference would be settled by about {int(needed)} {unit}" if np.isfinite(needed)
                    else f"the observed difference would need more than {stats.MAX_SEEDS} {unit}"))
    return f"{head}: {measured}{test}{power} (predicted: {row['predicts']})."
