"""Tables as a report shows them: human labels with units, 4 significant digits, integers as
integers, "-" for what is missing, and no row numbers where the rows have no names
(a pandas Styler, which papermill keeps and nbconvert renders)."""
from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

import pandas as pd
from pandas.io.formats.style import Styler

from ..evaluators import SCORES
from ..families import LogSchema

# what a reader sees for a key of the run's files (summary.csv, metrics.json, log.csv)
LABELS = {
    **SCORES, "classes": "classes covered", "samples": "samples", "duration_s": "time (s)", "seconds": "time (s)",
    "training_s": "training time (s)", "reports_s": "reports time (s)",
    "images_per_s": "images/s", "n": "seeds run", "seed": "seed", "seeds": "seeds", "epoch": "epoch",
    "epochs": "epochs", "steps": "steps", "step": "step", "name": "module", "detail": "layer",
    "output_shape": "output shape", "params": "parameters",
    # pixel-space statistics, for data without an evaluator (RMS distance per pixel)
    "generated_spread": "spread of generated images", "real_spread": "spread of real images",
    "generated_to_nearest_real": "generated to the nearest real image",
    "real_to_nearest_real": "real to the nearest other real image", "real_samples": "real images",
    # stability and speed of learning, across a sweep's runs (reporting.index.stability)
    "loss_spread": "loss spread (std / mean, last quarter)", "fd_spread": "FD spread over late checkpoints",
    "fd_over_training": "mean FD over checkpoints", "classes_in_data": "classes in the data",
}
DIGITS = 4


def label(key: str, names: Mapping[str, str] | None = None) -> str:
    """A column's label: ``names`` (e.g. a family's log labels) first, then ``LABELS``;
    ``final_X``: X over the last epoch; ``mean_X``: X over all epochs; a swept setting loses
    its section (``model.latent_dim`` -> ``latent_dim``); else underscores become spaces and
    ``_s`` "(s)"."""
    names = {**LABELS, **(names or {})}
    if key in names:
        return names[key]
    for prefix, when in (("final_", "last epoch"), ("mean_", "all epochs")):
        if key.startswith(prefix) and key[len(prefix):] in names:
            return f"{names[key[len(prefix):]]} ({when})"
    if "." in key:
        return key.rsplit(".", 1)[-1]
    if key[:2].isdigit() and key[2:3] == "_":  # a notebook: 02_training -> training
        key = key[3:]
    return key[:-2].replace("_", " ") + " (s)" if key.endswith("_s") else key.replace("_", " ")


def number(value: Any, digits: int = DIGITS) -> str:
    """One cell: integers (also 4.0) and numbers of more than ``digits`` integer digits rounded,
    with thousands separators (12,346 images/s, not 1.235e+04), other numbers to ``digits``
    significant digits, missing values as "-", anything else as it is."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if (float(value).is_integer() or abs(value) >= 10 ** digits - 0.5) and abs(value) < 1e15:
        return f"{round(value):,}"
    return f"{value:,.{digits}g}"


def readable(frame: pd.DataFrame | pd.Series, names: Mapping[str, str] | None = None, index: bool = True,
             digits: int = DIGITS) -> Styler:
    """``frame`` as a report table: columns (and a Series' row names) labelled with ``label``,
    cells with ``number``; ``index=False`` hides row numbers that mean nothing."""
    if isinstance(frame, pd.Series):
        frame = frame.rename(index=lambda k: label(str(k), names)).to_frame(frame.name or "")
    frame = frame.rename(columns=lambda c: label(str(c), names))
    if frame.index.name:
        frame = frame.rename_axis(label(str(frame.index.name), names))
    styled = frame.style.format(lambda v: number(v, digits)).format_index(lambda v: number(v, digits), axis=0)
    return styled if index else styled.hide(axis="index")


TRAINING_ROWS = {"epochs": "epochs", "steps": "steps", "seconds": "training time (s)",
                 "images_per_s": "images/s (last epoch)", "precision": "precision", "threads": "CPU threads"}


def training_table(training: dict[str, Any], schema: LogSchema) -> Styler:
    """metrics.json's training section: named rows, then the mean of each logged loss (and the
    family's ``last_epoch`` columns) over the last epoch and over all epochs; hashes and
    parameter counts are on the architecture page."""
    rows = {name: training[key] for key, name in TRAINING_ROWS.items() if key in training}
    if isinstance(rows.get("training time (s)"), float):
        rows["training time (s)"] = round(rows["training time (s)"], 1)
    rows.update({label(key, schema.labels): value for key, value in training.items()
                 if key.startswith(("final_", "mean_"))})
    return readable(pd.Series(rows, name="", dtype=object))


STABILITY_COLUMNS = {"mean": "mean", "std": "std", "final": "end (smoothed)", "rise": "trend",
                     "noise": "noise around the trend", "swing": "swing (smoothed)", "spikes": "spikes (whole run)"}


def stability_table(stats: dict[str, float], schema: LogSchema) -> Styler:
    """``analysis.losses.loss_stats`` as one named row per logged column (its losses first) and
    the figures as columns, each over the tail of the log; spikes over the whole run."""
    rows = {}
    for key in (*schema.losses, *(c for c in schema.columns if c not in schema.losses)):
        row = {name: stats[f"{part}_{key}"] for part, name in STABILITY_COLUMNS.items() if f"{part}_{key}" in stats}
        if row:
            rows[schema.label(key)] = row
    return readable(pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(STABILITY_COLUMNS.values()))
                    .dropna(axis=1, how="all"))


def stability_caption(stats: dict[str, float]) -> str:
    """What the stability table is computed over, in a sentence."""
    return (f"Over the last {stats['tail']:.0%} of the log ({stats['tail_rows']:,} of {stats['rows']:,} rows; "
            f"{stats['steps']:,} steps in {stats['epochs']:,} epochs). Trend: the fitted change across that "
            f"stretch; noise: the spread around that line; swing: the spread of the smoothed curve around it "
            f"(slow oscillation); spikes: jumps beyond {stats['spike_k']:g} robust std of the rolling median."
            + (f" {stats['nonfinite']:,} rows with non-finite losses are left out." if stats["nonfinite"] else ""))
