"""Checkpoint files: written atomically, read with PyTorch's safe loader (``weights_only=True``).

A checkpoint describes itself: the family's networks, optimizers and EMA, step and epoch, RNG
states, the full config and the image shape and class names (see ``training.trainer``).
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..rundir import write_atomic

SAFE_LOADER_REFUSED = "Weights only load failed"  # the start of torch.load's message for a refused object


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, refused by the safe loader or incomplete."""


def to_bytes(value: Any) -> bytes:
    """``value`` (tensors and plain data) as torch.save writes it."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def write_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Serialize ``state`` to ``path`` atomically: readers never see half a file."""
    write_atomic(path, to_bytes(state))


def read_checkpoint(path: str | Path, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain data only) and check that
    it holds ``keys``.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, holds objects the safe loader
            refuses (possibly unsafe: it is not loaded, and must not be loaded another way), or
            is not a gan_core checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: is {path.parent.parent} a trained run?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if SAFE_LOADER_REFUSED in str(err):
            raise CheckpointError(
                f"{path} was refused by the safe loader: it holds Python objects other than tensors and plain "
                "data, which could run code when loaded, so it may be unsafe and was not loaded. gan_core "
                "never writes such files: delete it unless you know where it came from") from None
        raise CheckpointError(f"{path} is corrupt and was not used ({_reason(err)})") from None
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(f"{path} is corrupt or incomplete and was not used ({_reason(err)})") from None
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a complete gan_core checkpoint (missing {', '.join(missing)})")
    return state


def _reason(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).partition(chr(10))[0][:200]}"
