"""Class conditioning for GANs (Mirza & Osindero 2014, https://arxiv.org/abs/1411.1784): the
class label, as a one-hot vector or a learned embedding, is concatenated to z in the generator
and to the discriminator's input (as constant channels for a convolutional D)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class LabelCode(nn.Module):
    """Class ids (B,) -> codes (B, dim): one-hot rows (dim = classes) or a learned embedding.

    Args:
        names: the data set's class names, in id order.
        embed_dim: 0 for one-hot, else the embedding width.
        class_ids: the classes trained on (a data.classes filter); ``default_labels`` cycles
            through them.
    """

    def __init__(self, names: Sequence[str], embed_dim: int = 0, class_ids: Sequence[int] | None = None):
        super().__init__()
        self.names, num_classes = tuple(names), len(names)
        self.num_classes, self.dim = num_classes, embed_dim or num_classes
        self.embed = nn.Embedding(num_classes, embed_dim) if embed_dim else None
        ids = torch.tensor(list(range(num_classes)) if class_ids is None else list(class_ids))
        self.register_buffer("class_ids", ids, persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            return self.embed(y)
        return F.one_hot(y, self.num_classes).float()

    def default_labels(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """(n,) the trained classes in turn (0, 1, ..., K-1, 0, ...): a class-balanced batch."""
        return self.class_ids.to(device)[torch.arange(n, device=device) % len(self.class_ids)]


def with_code(x: torch.Tensor, code: LabelCode | None, y: torch.Tensor | None) -> torch.Tensor:
    """``x`` (B, F) or (B, C, H, W) with the label code appended as features or constant channels.

    A conditional network called without labels uses ``code.default_labels``.
    """
    if code is None:
        return x
    if y is None:
        y = code.default_labels(len(x), x.device)
    c = code(y.to(x.device)).to(x.dtype)
    if x.dim() == 4:
        c = c[:, :, None, None].expand(-1, -1, *x.shape[2:])
    return torch.cat([x, c], dim=1)
