"""The one owner of the file names in a run folder and a sweep folder, and of how they are
written: atomically (a temporary file, then a rename), JSON strictly (NaN as null).

    reports/<sweep>/                 SweepDir
        sweep.json  index.html  summary.csv  comparison.csv  _previous/
        <run>/                       RunDir
            config.yaml  log.csv  train.log  metrics.json  status.json  .done
            samples/epoch_XXX.png  checkpoints/last.pt  checkpoints/epoch_XXX.pt
            tensorboard/ (train.tensorboard)
            NN_name.ipynb  NN_name.html  NN_name.pdf   (the executed notebooks)

No torch here: the CLI, the sweep runner and the reports read these files without it.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

EPOCH_FILE = re.compile(r"epoch_(\d+)\.")


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def write_json(path: Path, value: Any) -> None:
    """Strict JSON (NaN and infinities as null), written atomically."""
    text = json.dumps(finite_or_none(value), indent=2, sort_keys=True, allow_nan=False, default=str)
    write_atomic(path, text.encode())


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file's object, or {} when the file does not exist."""
    return json.loads(path.read_text()) if path.exists() else {}


def epoch_of(path: Path) -> int | None:
    """The epoch of a file named like ``epoch_007.png`` or ``epoch_007.pt``."""
    match = EPOCH_FILE.search(path.name)
    return int(match.group(1)) if match else None


class RunDir:
    """The files of one run (a configuration and seed): see the module docstring."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    @property
    def name(self) -> str:
        return self.root.name

    config = property(lambda self: self.root / "config.yaml")
    log = property(lambda self: self.root / "log.csv")  # one row per train.log_every steps
    console = property(lambda self: self.root / "train.log")  # what training and scoring printed
    metrics = property(lambda self: self.root / "metrics.json")  # the figures the reports were built from
    status = property(lambda self: self.root / "status.json")  # ok / failed / running, per-notebook times
    done = property(lambda self: self.root / ".done")  # the key of a completed run
    samples = property(lambda self: self.root / "samples")
    tensorboard = property(lambda self: self.root / "tensorboard")  # train.tensorboard's event files
    checkpoints = property(lambda self: self.root / "checkpoints")
    last_checkpoint = property(lambda self: self.checkpoints / "last.pt")
    tensorboard = property(lambda self: self.root / "tensorboard")
    evaluations = property(lambda self: self.root / "evaluations")  # `evaluate` runs beside the canonical one

    def sample_grid(self, epoch: int) -> Path:
        return self.samples / f"epoch_{epoch:03d}.png"

    def snapshot(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch_{epoch:03d}.pt"

    def sample_grids(self) -> list[Path]:
        """Saved fixed-noise grids, oldest first."""
        return sorted(self.samples.glob("epoch_*.png"), key=epoch_of)

    def snapshots(self) -> list[Path]:
        """Saved epoch checkpoints, oldest first."""
        return sorted(self.checkpoints.glob("epoch_*.pt"), key=epoch_of)

    def executed(self, notebook: str | Path) -> Path:
        """The executed copy of a notebook (by stem or path)."""
        return self.root / f"{Path(notebook).stem}.ipynb"

    def page(self, notebook: str | Path, suffix: str = ".html") -> Path:
        """A notebook's report page (``.html``, or ``.pdf``)."""
        return self.root / f"{Path(notebook).stem}{suffix}"

    def pages(self) -> list[Path]:
        """The run's HTML report pages, in notebook order."""
        return sorted(self.root.glob("[0-9][0-9]_*.html"))

    def logger(self, echo: bool = False) -> Callable[[str], None]:
        """A ``log`` function for training and scoring: appends each line, timed, to train.log
        (the reports show figures and sentences, not console output), printing it when ``echo``."""
        def log(line: str) -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.console, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
            if echo:
                print(line)
        return log

    def read_metrics(self) -> dict[str, Any]:
        return read_json(self.metrics)

    def update_metrics(self, **sections: Any) -> dict[str, Any]:
        """Merge top-level sections into metrics.json (strict JSON, atomic); returns the whole."""
        metrics = self.read_metrics()
        metrics.update(sections)
        write_json(self.metrics, metrics)
        return metrics

    def read_status(self) -> dict[str, Any]:
        return read_json(self.status)

    def write_status(self, status: dict[str, Any]) -> None:
        write_json(self.status, status)


class SweepDir:
    """The files of one sweep folder: its runs, the index and the tables across runs."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    sweep_file = property(lambda self: self.root / "sweep.json")  # the runs in order, what each changes
    index = property(lambda self: self.root / "index.html")
    index_notebook = property(lambda self: self.root / "index.ipynb")
    summary = property(lambda self: self.root / "summary.csv")  # one row per run
    comparison = property(lambda self: self.root / "comparison.csv")  # one row per configuration
    previous = property(lambda self: self.root / "_previous")  # runs whose config changed
    lock = property(lambda self: self.root / ".sweep.lock")

    def run(self, name: str) -> RunDir:
        return RunDir(self.root / name)

    def read_sweep(self) -> dict[str, Any]:
        return read_json(self.sweep_file)
