"""Sample grids: images (N, C, H, W) in [-1, 1] tiled into one picture, laid out as
torchvision's ``make_grid`` lays them out (2 pixels apart, one channel shown as three), without
importing torchvision: its import (models, ops, torch._dynamo) costs 3 s on a 2-core CPU, in
every training and every report."""
from __future__ import annotations

import io
import math

import torch


def tile(images: torch.Tensor, columns: int, padding: int = 2, pad_value: float = 0.0) -> torch.Tensor:
    """(3, H', W') in [0, 1]: ``images`` in rows of ``columns`` (the last row may be short),
    ``padding`` pixels of ``pad_value`` around and between them."""
    images = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    n, channels, height, width = images.shape
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    grid = torch.full((channels, rows * (height + padding) + padding, columns * (width + padding) + padding),
                      float(pad_value))
    for i, image in enumerate(images):
        top, left = padding + (i // columns) * (height + padding), padding + (i % columns) * (width + padding)
        grid[:, top:top + height, left:left + width] = image
    return grid


def png(images: torch.Tensor, columns: int, scale: int = 1) -> bytes:
    """The grid of ``tile`` as PNG bytes (RGB), each pixel ``scale`` x ``scale`` on the screen."""
    from PIL import Image
    pixels = tile(images, columns).mul(255).add(0.5).clamp(0, 255).byte().permute(1, 2, 0).numpy()
    picture = Image.fromarray(pixels)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="png")
    return buffer.getvalue()
