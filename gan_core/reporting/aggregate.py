"""A sweep's tables across its runs, computed once by the sweep's job from the run folders and
read by its index page (the summary notebook), so the page shows what the files hold:

    summary.csv      one row per run (``index.sweep_table``)
    comparison.csv   one row per configuration over its seeds (``comparison.per_configuration``)
    claims.csv       one row per claim of the sweep file (``claims.answer``), when it has claims
    verdicts.csv     one row per pair of configurations and score (``comparison.compare``), when
                     the sweep has pairs to compare

No torch: reading files and tables only.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..analysis import claims, comparison
from ..rundir import SweepDir, write_atomic
from . import index

# the columns of the tables that hold words (names, verdicts, settings' values), never numbers
TEXT_COLUMNS = {"run", "configuration", "variant", "reference", "differs", "status", "error", "seeds", "pair",
                "a", "b", "score", "verdict", "claim", "source", "kind", "setting", "predicts", "failed", "why"}


@dataclass(frozen=True)
class SweepTables:
    """The tables of a sweep (empty frames where it has none) and the settings it varies."""

    runs: pd.DataFrame
    configurations: pd.DataFrame
    claims: pd.DataFrame
    verdicts: pd.DataFrame
    settings: list[str]


def compute(sweep_dir: str | Path) -> SweepTables:
    """The sweep's tables from its run folders (and its sweep.json's claims)."""
    sweep = SweepDir(sweep_dir)
    table = index.sweep_table(sweep.root)
    settings = index.settings_of(index.sweep_runs(sweep.root))
    declared = [claims.from_dict(c) for c in sweep.read_sweep().get("claims", [])]
    answers = claims.answer(declared, table, index.seed_curves(sweep.root, table))
    tests = comparison.compare(table, comparison.pairs(table, settings))
    return SweepTables(table, comparison.per_configuration(table, settings), answers, tests, settings)


def write(sweep_dir: str | Path) -> SweepTables:
    """Compute the sweep's tables and write them as CSV files; returns them."""
    sweep, tables = SweepDir(sweep_dir), compute(sweep_dir)
    for path, frame in ((sweep.summary, tables.runs), (sweep.comparison, tables.configurations),
                        (sweep.claims, tables.claims), (sweep.verdicts, tables.verdicts)):
        if frame.empty:
            path.unlink(missing_ok=True)  # an earlier sweep's table must not stand for this one
        else:
            write_atomic(path, frame.to_csv(index=False, float_format="%.6g"))
    return tables


def read(sweep_dir: str | Path) -> SweepTables:
    """The tables the sweep's job wrote (``write``), as it computed them: words stay words
    (a setting's value ``10`` too), True/False are booleans, empty cells of numbers are NaN."""
    sweep = SweepDir(sweep_dir)
    frames = [_read_csv(path) for path in (sweep.summary, sweep.comparison, sweep.claims, sweep.verdicts)]
    return SweepTables(*frames, index.settings_of(index.sweep_runs(sweep.root)))


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame()
    frame = pd.read_csv(io.StringIO(path.read_text()), dtype=str, keep_default_na=False)
    for column in frame:
        if column in TEXT_COLUMNS or "." in column:  # "." : a setting, e.g. model.latent_dim
            continue
        cells = frame[column]
        if cells.isin(["True", "False"]).all() and len(cells):
            frame[column] = cells.eq("True")
            continue
        numbers = pd.to_numeric(cells.replace("", None), errors="coerce")
        if numbers.notna().sum() == (cells != "").sum():  # every filled cell a number; empty ones NaN
            whole = numbers.notna().all() and cells.str.fullmatch(r"-?\d+").all()
            frame[column] = numbers.astype("int64") if whole else numbers.astype(float)
    return frame
