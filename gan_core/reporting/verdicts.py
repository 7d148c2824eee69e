"""The index's answers, in words and tables: the claims a sweep declared with their verdicts,
and the verdicts on the pairs of configurations it compares (``analysis.claims``,
``analysis.comparison``)."""
from __future__ import annotations

import math

import pandas as pd
from pandas.io.formats.style import Styler

from ..analysis import claims as claims_lib
from ..analysis import comparison
from .tables import label, number, readable

CLAIMS_METHOD = ("Each claim was declared in the sweep file before the runs. Its prediction is tested over seeds "
                 "with Welch's t-test (a relation: Spearman's correlation within each run, its mean over runs "
                 "against 0), Holm-corrected over the claims; supported or contradicted where the corrected p is "
                 "below 0.05, otherwise not settled at this many seeds, with the smallest difference these seeds "
                 "detect with 80 % power and the seeds the observed difference would need.")


def claims_markdown(answers: pd.DataFrame, names: dict[str, str]) -> str:
    """The Claims section: method, then one line per claim."""
    lines = [claims_lib.sentence(row, {**names, **label_map(answers["score"])}) for _, row in answers.iterrows()]
    return "## Claims\n" + CLAIMS_METHOD + "\n\n" + "\n".join(f"- {line}" for line in lines)


def verdicts_markdown(tests: pd.DataFrame, runs: pd.DataFrame, names: dict[str, str]) -> str:
    """The Verdicts section: method and quality gate, then one sentence per pair."""
    lines = comparison.sentences(tests, runs, {**names, **label_map(tests["score"])})
    failed = comparison.failed_to_learn(runs)
    gate = (f" Quality gate: {comparison.GATE}; no verdict is given on such a pair. "
            + (f"Failed here: {', '.join(f'{k} ({v})' for k, v in failed.items())}." if failed else
               "Every configuration passed it."))
    count = int(tests["p"].notna().sum()) if "p" in tests else 0
    return (f"## Verdicts\nEach variant against its reference, and each pair differing in one swept setting, on "
            f"{', '.join(label(s) for s in comparison.VERDICT_SCORES)}: {comparison.METHOD} "
            f"({count} comparison{'s' * (count != 1)} tested)." + gate + "\n\n" + "\n".join(f"- {line}" for line in lines))


def tests_table(tests: pd.DataFrame) -> Styler | None:
    """Every comparison tested for the verdicts: both sides, the difference with its interval,
    Hedges' g, Welch's p, Holm's p and the verdict (None when none was tested)."""
    if "p" not in tests or tests["p"].isna().all():
        return None
    tests = tests[tests["p"].notna()]
    frame = pd.DataFrame({
        "pair": tests["pair"], "score": tests["score"].map(label),
        "A (mean +/- sd)": [_mean_sd(m, s) for m, s in zip(tests["mean_a"], tests["sd_a"])],
        "B (mean +/- sd)": [_mean_sd(m, s) for m, s in zip(tests["mean_b"], tests["sd_b"])],
        "seeds": [f"{a} / {b}" for a, b in zip(tests["n_a"], tests["n_b"])],
        "A - B [95 % interval]": [f"{number(d)} [{number(lo)}, {number(hi)}]" if pd.notna(d) else "-"
                                  for d, lo, hi in zip(_col(tests, "diff"), _col(tests, "low"), _col(tests, "high"))],
        "Hedges' g": _col(tests, "g"), "p": _col(tests, "p"), "Holm p": _col(tests, "p_holm"),
        "verdict": tests["verdict"]})
    return readable(frame, index=False, digits=3)


def claims_table(answers: pd.DataFrame) -> Styler:
    """The numbers of every claim (claims.csv holds them all)."""
    frame = pd.DataFrame({
        "claim": answers["claim"], "verdict": answers["verdict"], "seeds": [
            f"{int(a)}" + (f" / {int(b)}" if b else " runs") for a, b in zip(answers["n_a"], answers["n_b"])],
        "difference [95 % interval]": [f"{number(d)} [{number(lo)}, {number(hi)}]" if pd.notna(d) else "-" for d, lo, hi
                                       in zip(_col(answers, "diff"), _col(answers, "low"), _col(answers, "high"))],
        "Holm p": _col(answers, "p_holm"), "detectable at 80 % power": _col(answers, "detectable"),
        "seeds needed": _col(answers, "seeds_needed")})
    return readable(frame, index=False, digits=3)


def interval_note(configurations: pd.DataFrame) -> str:
    """A warning when some configuration has only 2 seeds: its interval is too wide to inform."""
    few = configurations.loc[configurations["n"] <= comparison.WIDE_AT, "configuration"].tolist()
    return (f"With {comparison.WIDE_AT} seeds a 95 % t-interval is 12.7 standard errors wide on each side: the "
            f"intervals of {', '.join(few)} are too wide to inform; add seeds." if few else "")


def label_map(scores: pd.Series) -> dict[str, str]:
    return {s: label(s) for s in scores.dropna().unique() if isinstance(s, str)}


def _mean_sd(mean: float, sd: float) -> str:
    return number(mean) + ("" if sd is None or (isinstance(sd, float) and math.isnan(sd)) else f" +/- {number(sd)}")


def _col(frame: pd.DataFrame, key: str) -> pd.Series:
    return frame[key] if key in frame else pd.Series([math.nan] * len(frame), index=frame.index)
