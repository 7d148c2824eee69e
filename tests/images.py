"""Generated image folders for the evaluator tests (issue 33): no downloads."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 80, 230)]


def shape(kind: int, size: int, rng: np.random.Generator) -> Image.Image:
    """One image of shape ``kind`` (0 disc, 1 square, 2 triangle) in its colour, jittered."""
    img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 40, 3)))
    draw = ImageDraw.Draw(img)
    r = size * rng.uniform(0.2, 0.35)
    cx, cy = size / 2 + rng.uniform(-size / 8, size / 8, 2)
    colour = tuple(int(np.clip(v + rng.integers(-20, 21), 0, 255)) for v in COLOURS[kind % 3])
    if kind % 3 == 0:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind % 3 == 1:
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return img


def shapes_folder(root: Path, per_class: int = 30, size: int = 64, classes: int = 3, seed: int = 0) -> Path:
    """ROOT/CLASS/IMAGE.png: ``classes`` class folders of distinct shapes and colours."""
    rng = np.random.default_rng(seed)
    for k in range(classes):
        folder = root / f"class_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape(k, size, rng).save(folder / f"{i:04d}.png")
    return root


def one_folder(root: Path, count: int = 40, size: int = 128, seed: int = 0) -> Path:
    """ROOT/all/IMAGE.png: one folder (no labels) of mixed shapes."""
    rng = np.random.default_rng(seed)
    folder = root / "all"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        shape(int(rng.integers(0, 3)), size, rng).save(folder / f"{i:04d}.png")
    return root
