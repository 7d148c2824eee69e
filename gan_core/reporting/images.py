"""Figures of tensors: image grids, samples per class, real against generated, the latent
space (PCA of latents with their images, of image features) and nearest neighbours. Each
function returns a closed matplotlib Figure, as ``reporting.figures`` does."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..analysis.latent import pca
from ..grids import tile
from .figures import blank


def image_grid(images: torch.Tensor, nrow: int | None = None, ax: Axes | None = None,
               title: str | None = None, width: float = 5.0) -> Figure:
    """Images (N, C, H, W) in [-1, 1] as one grid; 1 channel in gray with the range fixed to [-1, 1].

    Args:
        images: the batch (values outside [-1, 1] are clipped).
        nrow: images per row (default: a square grid).
        ax: draw into this axes instead of a new figure.
        title: axes title.
        width: figure width in inches, when a new figure is made.
    """
    if images.dim() != 4:
        raise ValueError(f"image_grid wants (N, C, H, W) images, got shape {tuple(images.shape)}")
    images = images.detach().float().cpu().clamp(-1, 1)
    nrow = nrow or math.ceil(math.sqrt(len(images)))
    grid = tile(images, nrow, pad_value=1.0)  # (3, H', W') in [0, 1]
    if ax is None:
        _, ax = blank(figsize=(width, width * grid.shape[1] / grid.shape[2] + (0.4 if title else 0)))
    if images.shape[1] == 1:  # tile repeats one channel to three: show one with a fixed range
        ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure


def class_rows(images: torch.Tensor, names: list[str], title: str | None = None, width: float = 8.0) -> Figure:
    """Samples of a conditional G, one row per class (``len(images)`` a multiple of ``len(names)``),
    each row named on the left."""
    if len(images) % len(names):
        raise ValueError(f"class_rows: {len(images)} images do not fill {len(names)} rows evenly")
    fig = image_grid(images, nrow=len(images) // len(names), title=title, width=width)
    ax, size = fig.axes[0], images.shape[-2]
    ax.set_axis_on()
    ax.set_xticks([])
    ax.set_yticks([2 + i * (size + 2) + size / 2 for i in range(len(names))], names)  # tile pads by 2
    ax.tick_params(left=False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig


def real_vs_fake(real: torch.Tensor, fake: torch.Tensor, nrow: int | None = None) -> Figure:
    """Real and generated images (N, C, H, W) in [-1, 1] in two panels, side by side."""
    fig, (left, right) = blank(1, 2, figsize=(10, 5.4))
    image_grid(real, nrow, ax=left, title="real")
    image_grid(fake, nrow, ax=right, title="generated")
    return fig


# --- latent space ----------------------------------------------------------------------------
def latent_pca(projected: torch.Tensor, ratio: torch.Tensor, chosen: torch.Tensor,
               images: torch.Tensor) -> Figure:
    """Latent vectors on two principal components (N, 2), chosen ones marked, their images beside.

    Args:
        projected: (N, 2) coordinates; ratio: (2,) explained variance ratios.
        chosen: (K,) indices of the marked vectors; images: (K, C, H, W) they generate.
    """
    k = len(chosen)
    fig = plt.figure(figsize=(10, 4.6), layout="constrained")
    plt.close(fig)
    grid = fig.add_gridspec(k, 2, width_ratios=[2.2, 1])
    ax = fig.add_subplot(grid[:, 0])
    ax.scatter(projected[:, 0], projected[:, 1], s=6, alpha=0.35, color="C7", label="sampled z")
    for i, index in enumerate(chosen.tolist()):
        x, y = projected[index].tolist()
        ax.scatter([x], [y], s=90, color=f"C{i}", edgecolor="black", zorder=3)
        ax.annotate(f"z{i + 1}", (x, y), xytext=(6, 6), textcoords="offset points", fontweight="bold")
        image_grid(images[i:i + 1], ax=fig.add_subplot(grid[i, 1]), title=f"G(z{i + 1})")
    ax.set_xlabel(f"PC1 ({ratio[0]:.1%} of variance)")
    ax.set_ylabel(f"PC2 ({ratio[1]:.1%} of variance)")
    ax.set_title(f"{len(projected)} latent vectors, PCA")
    return fig


def feature_pca(real: torch.Tensor, fake: torch.Tensor) -> Figure:
    """Real and generated image features (N, F) on the two principal components of both together.

    Fakes that cover the real cloud suggest diversity; a tight fake cluster suggests collapse.
    """
    projected, _, _, ratio = pca(torch.cat([real, fake]).float(), k=2)
    fig, ax = blank(figsize=(6.5, 5))
    for part, label, color in ((projected[:len(real)], "real", "C0"), (projected[len(real):], "generated", "C3")):
        ax.scatter(part[:, 0], part[:, 1], s=7, alpha=0.45, color=color, label=f"{label} ({len(part)})")
    ax.set_xlabel(f"PC1 ({ratio[0]:.1%})")
    ax.set_ylabel(f"PC2 ({ratio[1]:.1%})")
    ax.set_title("Images in feature space: real and generated")
    ax.legend()
    return fig


def nearest_neighbours(fake: torch.Tensor, neighbours: torch.Tensor, distances: torch.Tensor) -> Figure:
    """Each generated image (Q, C, H, W) followed by its k nearest real images (Q, k, C, H, W),
    each with its distance above it. One picture on one axes: Q x (k + 1) axes took about 2 s
    to draw on a CPU core."""
    q, k = distances.shape
    height, width = fake.shape[-2:]
    fake, neighbours = (images.detach().float().cpu() for images in (fake, neighbours))
    cells = (torch.cat([fake[:, None], neighbours], 1).clamp(-1, 1) + 1) / 2
    gap, room, split = max(2, width // 14), max(8, height // 3), width // 2  # between; above (text); after column 1
    canvas = torch.ones(cells.shape[2], q * (height + room), (k + 1) * (width + gap) + split + gap)
    fig, ax = blank(figsize=(1.3 * (k + 1) + 0.3, 1.35 * q))
    for row in range(q):
        top = room + row * (height + room)
        for col in range(k + 1):
            left = gap + col * (width + gap) + (split if col else 0)
            canvas[:, top:top + height, left:left + width] = cells[row, col]
            label = (f"d={distances[row, col - 1]:.1f}" if col else "generated" if row == 0 else None)
            if label:
                ax.text(left + width / 2, top - 1, label, ha="center", va="bottom", fontsize=8 if col else 11)
    if canvas.shape[0] == 1:
        ax.imshow(canvas[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(canvas.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    return fig
