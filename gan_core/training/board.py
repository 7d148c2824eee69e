"""Watching training live: with ``train.tensorboard: true`` the trainer writes every log.csv
row's values and each fixed-noise grid as TensorBoard events to ``RUN/tensorboard/``, so
``tensorboard --logdir reports/<sweep>`` shows the runs of a sweep side by side while they
train. TensorBoard is an optional dependency (``pip install 'gan-workbook[tensorboard]'``)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..grids import tile


class Board:
    """The run's TensorBoard writer. ``tags``: each logged column's tag (the family's,
    ``Family.tag``). ``start_step``: the step of the checkpoint a resumed run continues from;
    events after it, written before the interruption, are purged (as log.csv's rows are)."""

    def __init__(self, folder: Path, tags: dict[str, str], start_step: int = 0):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
        self.writer = SummaryWriter(str(folder), purge_step=start_step + 1 if start_step else None)
        self.tags = tags

    def row(self, step: int, values: dict[str, float], images_per_s: float) -> None:
        """One log.csv row: each logged value, and the speed."""
        for key, value in values.items():
            self.writer.add_scalar(self.tags[key], value, step)
        self.writer.add_scalar("speed/images per s", images_per_s, step)

    def grid(self, step: int, images: torch.Tensor, columns: int) -> None:
        """The fixed-noise grid (B, C, H, W) in [-1, 1], laid out as its PNG."""
        self.writer.add_image("samples/fixed noise", tile(images, columns), step)

    def close(self) -> None:
        self.writer.close()
