"""The files of one run directory, and small readers for them."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GAN_STATS = ("loss_d", "loss_g", "d_real", "d_fake", "d_fake_g", "acc_real", "acc_fake")
DIFFUSION_STATS = ("loss",)  # the denoising loss: MSE of the predicted noise
LOG_COLUMNS = ("epoch", "step", *GAN_STATS, "images_per_s", "time_s")  # a GAN run's log.csv


def log_columns(stats: tuple[str, ...]) -> tuple[str, ...]:
    """The header of a log.csv whose rows hold ``stats`` (GAN_STATS or DIFFUSION_STATS)."""
    return ("epoch", "step", *stats, "images_per_s", "time_s")


@dataclass(frozen=True)
class RunDir:
    """Paths of a run: config.yaml, log.csv, samples/epoch_XXX.png, checkpoints/, metrics.json."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def log(self) -> Path:
        return self.root / "log.csv"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    def sample_grid(self, epoch: int) -> Path:
        return self.samples / f"epoch_{epoch:03d}.png"

    def snapshot(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch_{epoch:03d}.pt"

    def sample_grids(self) -> list[Path]:
        """Saved fixed-noise grids, oldest first."""
        return sorted(self.samples.glob("epoch_*.png"))

    def read_metrics(self) -> dict[str, Any]:
        return json.loads(self.metrics.read_text()) if self.metrics.exists() else {}

    def update_metrics(self, **sections: Any) -> dict[str, Any]:
        """Merge top-level sections into metrics.json (written atomically); returns the whole."""
        metrics = self.read_metrics()
        metrics.update(sections)
        write_atomic(self.metrics, json.dumps(metrics, indent=2, sort_keys=True).encode())
        return metrics


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
