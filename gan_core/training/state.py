"""A run's resumable state: RNG states, the full checkpoint and its predecessor, and the checks
that a checkpoint belongs to the run it resumes.

checkpoints/last.pt is the newest full checkpoint and checkpoints/previous.pt the one before:
a new one moves last.pt to previous.pt (a rename), then writes last.pt (a temporary file, then
a rename). A kill at any moment leaves at least one of them whole, and resuming falls back
from an unreadable last.pt to previous.pt.
"""
from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import config as config_lib
from ..config import Config
from ..models.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from ..rundir import RunDir

RUN_KEYS = ("config", "epoch", "step", "fixed_z", "rng")  # and the family's state_keys
# settings that may change between a checkpoint and its resumption without changing the run
RESUMABLE_CHANGES = {"train.epochs", "train.sample_every", "train.checkpoint_every", "train.log_every",
                     "train.device", "train.threads", "train.progress", "train.tensorboard", "data.workers",
                     "data.root", "data.download", "train.compile"}


class TrainingError(RuntimeError):
    """Training stopped: non-finite loss, or a checkpoint that cannot be used."""


def previous_checkpoint(run: RunDir) -> Path:
    return run.checkpoints / "previous.pt"


def has_checkpoint(run: RunDir) -> bool:
    return run.last_checkpoint.exists() or previous_checkpoint(run).exists()


def write_last(run: RunDir, state: dict[str, Any]) -> None:
    """Make ``state`` the run's last.pt, keeping the one it replaces as previous.pt."""
    if run.last_checkpoint.exists():
        os.replace(run.last_checkpoint, previous_checkpoint(run))
    write_checkpoint(state, run.last_checkpoint)


def newest_checkpoint(run: RunDir, family_keys: tuple[str, ...],
                      log: Callable[[str], None]) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable full checkpoint of ``run`` and its state, or None if it has none.

    An unreadable last.pt is renamed beside itself (``last.corrupt-<time>.pt``) and the run
    falls back to previous.pt, saying so.

    Raises:
        TrainingError: no full checkpoint is readable (each one's reason named).
    """
    keys = RUN_KEYS + tuple(family_keys)
    reasons = []
    for path in (run.last_checkpoint, previous_checkpoint(run)):
        if not path.exists():
            continue
        try:
            state = read_checkpoint(path, keys)
        except CheckpointError as err:
            reasons.append(str(err))
            kept = path.with_name(f"{path.stem}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}.pt")
            path.rename(kept)
            log(f"{err}; moved it to {kept.name}")
            continue
        if reasons:
            log(f"falling back to {path} (epoch {state['epoch']}): the newest readable checkpoint")
        return path, state
    if reasons:
        raise TrainingError("no readable checkpoint to resume from: " + "; ".join(reasons)
                            + "; delete the run folder to train from scratch")
    return None


def check_same_run(path: Path, saved: dict[str, Any], config: Config) -> None:
    """Refuse to resume a checkpoint trained with another config (settings that do not change
    the run's results, like train.epochs, may differ)."""
    try:  # a checkpoint from before a key existed holds that key's default
        saved = config_lib.from_dict(saved, str(path)).to_dict()
    except config_lib.ConfigError:
        pass  # a key since removed: compare as saved, the difference is then named below
    old = config_lib.flatten(saved)
    new = config_lib.flatten(config.to_dict())
    changed = sorted(k for k in old.keys() | new.keys()
                     if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES
                     and not k.startswith("eval."))  # scoring settings do not touch training
    if changed:
        diffs = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise TrainingError(f"{path} was trained with another config ({diffs}); "
                            "use a new output folder for a new config")


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states, as tensors and plain types (``weights_only``-safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x
