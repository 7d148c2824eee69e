"""The one owner of the file names in a run folder and a sweep folder, and of how files that
another process may read are written: atomically (a uniquely named temporary file beside the
target, then a rename), JSON strictly (NaN as null); and of shared caches, computed once per
key under a file lock.

    reports/<sweep>/                 SweepDir
        sweep.json  index.html  summary.csv  comparison.csv  verdicts.csv  claims.csv  _previous/
        <run>/                       RunDir
            config.yaml  family.json  log.csv  train.log  metrics.json  status.json  .done
            samples/epoch_XXX.png  checkpoints/last.pt  checkpoints/epoch_XXX.pt
            tensorboard/ (train.tensorboard)
            NN_name.ipynb  NN_name.html  NN_name.pdf   (the executed notebooks)

No torch here: the CLI, the sweep runner and the reports read these files without it.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, TypeVar

from .families.records import LogSchema

EPOCH_FILE = re.compile(r"epoch_(\d+)\.")
T = TypeVar("T")


class CacheError(OSError):
    """A file or cache that cannot be written (read-only folder, full disk); names the folder."""


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to a uniquely named temporary file beside ``path``, then rename it over
    ``path``: readers never see half a file, and two writers never share a temporary file.

    Raises:
        CacheError: the folder is read-only or its disk is full (naming the folder).
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _write_error(path, err) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide results from other users of shared storage
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _write_error(path, err) from None
        raise


FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # a full disk, a quota, a file size limit


def _write_error(path: Path, err: OSError) -> OSError:
    if err.errno in FULL:
        free = shutil.disk_usage(path.parent).free if path.parent.exists() else 0
        why = "no space left on the device" if err.errno == errno.ENOSPC else err.strerror.lower()
        return CacheError(err.errno, f"{path.parent}: {why} ({free / 1e6:.0f} MB free on its disk) while writing "
                          f"{path.name}; free some space or choose another folder")
    if err.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return CacheError(err.errno, f"{path.parent}: not writable ({err.strerror}) while writing {path.name}")
    return err


def unwritable(folder: str | Path, need_mb: float) -> str | None:
    """Why files cannot be written in ``folder``, or None; nothing is created. Where it does not
    exist yet its nearest existing parent is asked: it is not a folder, a file cannot be made in
    it (read-only, or another user's), or its disk has less than ``need_mb`` MB free."""
    there = Path(folder).expanduser().absolute()
    while not there.exists():
        there = there.parent
    if not there.is_dir():
        return f"not writable ({there} is a file, not a folder)"
    try:
        with tempfile.TemporaryFile(dir=there):
            pass
    except OSError as err:
        return f"not writable ({err.strerror or type(err).__name__})"
    free = shutil.disk_usage(there).free / 1e6
    if free < need_mb:
        return f"only {free:.0f} MB free on its disk (at least {need_mb:.0f} MB needed)"
    return None


@contextlib.contextmanager
def temporary_beside(path: str | Path, prefix: str) -> Iterator[Path]:
    """A uniquely named file path beside ``path`` (same folder, so relative links in it resolve
    alike), removed on exit; e.g. a page prepared for printing."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{prefix}-", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block; other processes
    wait. The operating system's lock (flock): a process that dies holds nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def compute_once(path: str | Path, compute: Callable[[], T], dump: Callable[[T], bytes],
                 load: Callable[[bytes], T | None], log: Callable[[str], None] = lambda line: None) -> T:
    """The value cached in ``path``, computed and written once per key, however many processes ask.

    ``load`` turns the file's bytes into the value, or None when they are not this key's (a
    foreign or stale file); a file it cannot read (truncated, corrupt) counts as missing. Such a
    file is never trusted: the first process to take the lock (``path`` + ``.lock``) computes
    the value and writes it atomically; the others wait and read what it wrote.
    """
    path = Path(path)
    value = _load(path, load, None)  # the common case: cached, no lock needed
    if value is not None:
        return value
    with file_lock(path.with_name(f".{path.name}.lock")):
        value = _load(path, load, log)
        if value is None:
            value = compute()
            write_atomic(path, dump(value))
    return value


def _load(path: Path, load: Callable[[bytes], T | None], log: Callable[[str], None] | None) -> T | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        value = load(data)
    except Exception as err:  # truncated or corrupt: recomputed, never trusted
        value = None
        if log:
            log(f"{path}: unreadable cache file ({type(err).__name__}); computing it again")
    else:
        if value is None and log:
            log(f"{path}: a cache file of another key or version; computing it again")
    return value


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def json_bytes(value: Any) -> bytes:
    """Strict JSON (NaN and infinities as null), indented, keys sorted."""
    return json.dumps(finite_or_none(value), indent=2, sort_keys=True, allow_nan=False, default=str).encode()


def write_json(path: str | Path, value: Any) -> None:
    """Strict JSON (``json_bytes``), written atomically."""
    write_atomic(path, json_bytes(value))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file's object, or {} when the file does not exist."""
    return json.loads(path.read_text()) if path.exists() else {}


def epoch_of(path: Path) -> int | None:
    """The epoch of a file named like ``epoch_007.png`` or ``epoch_007.pt``."""
    match = EPOCH_FILE.search(path.name)
    return int(match.group(1)) if match else None


class RunIncomplete(RuntimeError):
    """A run folder whose training has not finished: what reads it has nothing to show yet."""


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
    family_file = property(lambda self: self.root / "family.json")  # what readers need of the family (trainer)
    status = property(lambda self: self.root / "status.json")  # ok / failed / running, per-notebook times
    done = property(lambda self: self.root / ".done")  # the key of a completed run
    samples = property(lambda self: self.root / "samples")
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

    def family(self) -> dict[str, Any]:
        """family.json, written by training: the family's arch, name, kind, log schema, tags,
        classes, grid layout and evaluator (``training.Trainer.family_record``).

        Raises:
            RunIncomplete: training has not started here (or a gan_core before 0.3 trained it).
        """
        found = read_json(self.family_file)
        if not found:
            raise RunIncomplete(f"{self.root}: no family.json: train the run first (its 02_training notebook, or "
                                "gan-workbook train CONFIG --out RUN --resume, which also writes it for older runs)")
        return found

    def schema(self) -> LogSchema:
        """The log schema of the run's family: what log.csv holds and how to read it."""
        return LogSchema.from_dict(self.family()["log"])

    def read_metrics(self) -> dict[str, Any]:
        return read_json(self.metrics)

    def update_metrics(self, **sections: Any) -> dict[str, Any]:
        """Merge top-level sections into metrics.json (strict JSON, atomic); returns the whole."""
        metrics = self.read_metrics()
        metrics.update(sections)
        write_json(self.metrics, metrics)
        return metrics

    def seed_fds(self) -> list[float]:
        """The FDs of the finished runs of this run's configuration in its sweep (its own among
        them), when the sweep runs it with seeds; else []."""
        sweep = SweepDir(self.root.parent)
        runs = sweep.read_sweep().get("runs", [])
        me = next((r for r in runs if r["name"] == self.name and r.get("seed") is not None), None)
        if me is None:
            return []
        fds = [RunDir(sweep.root / r["name"]).read_metrics().get("evaluation", {}).get("final", {}).get("fd")
               for r in runs if r["configuration"] == me["configuration"]]
        return [fd for fd in fds if fd is not None]

    def require_trained(self) -> dict[str, Any]:
        """metrics.json's training section of a run whose training finished (checkpoints/last.pt,
        and the steps its last training asked for); a cheap check, no torch, no data.

        Raises:
            RunIncomplete: naming what is missing and how to get it.
        """
        training = self.read_metrics().get("training", {})
        if not self.last_checkpoint.exists() or not training or training.get("steps") != training.get("total_steps"):
            done = f"{training.get('steps')} of {training.get('total_steps')} steps" if training else "no finished training"
            raise RunIncomplete(f"{self.root}: the run's training has not finished ({done}): run its 02_training "
                                "notebook (or gan-workbook train CONFIG --out RUN --resume) first")
        return training

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
    verdicts = property(lambda self: self.root / "verdicts.csv")  # one row per pair of configurations and score
    claims = property(lambda self: self.root / "claims.csv")  # one row per claim of the sweep file
    previous = property(lambda self: self.root / "_previous")  # runs whose config changed
    lock = property(lambda self: self.root / ".sweep.lock")

    def run(self, name: str) -> RunDir:
        return RunDir(self.root / name)

    def read_sweep(self) -> dict[str, Any]:
        return read_json(self.sweep_file)
