"""What a network is made of: a per-layer table (like torchinfo's summary) and a drawn diagram.

``layer_table`` records every leaf module's output shape with forward hooks; ``draw_network``
groups the rows into stages (a convolution or linear layer with the normalization and
activation that follow it) and draws them as boxes from input to output.
"""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from torch import nn

SHORT_NAMES = {"ConvTranspose2d": "ConvT", "Conv2d": "Conv", "ConvTranspose1d": "ConvT1d",
               "Conv1d": "Conv1d", "BatchNorm1d": "BN", "BatchNorm2d": "BN", "InstanceNorm2d": "IN",
               "LayerNorm": "LN", "GroupNorm": "GN", "LeakyReLU": "LeakyReLU", "Dropout": "Dropout"}
# modules that belong to the stage of the layer before them rather than starting one
FOLLOWER_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.modules.dropout._DropoutNd,
                  nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.GELU, nn.SiLU, nn.PReLU)
BOX_HEIGHT = 0.62  # in node spacings: the rest of each spacing is the arrow
COLORS = {"G": "#dbe9f6", "D": "#fbe3d0", "io": "#eeeeee"}


def layer_table(model: nn.Module, input: torch.Tensor, *more: Any) -> list[dict[str, Any]]:
    """One row per leaf module call, in forward order, like torchinfo's summary.

    The model runs once under ``torch.no_grad()`` in eval mode; every module's mode is restored after.

    Args:
        model: any module.
        input: a batch for ``model`` (B, ...); the batch dimension is left out of the shapes.
        more: further arguments of ``model`` (a U-Net's timesteps and classes).

    Returns:
        Rows with ``name``, ``type``, ``detail`` (short label, e.g. ``ConvT 4×4 s2``),
        ``input_shape``, ``output_shape`` (tuples without the batch dimension), ``params``
        (trainable, counted at a module's first call only) and ``follower`` (a normalization,
        activation or dropout, drawn in the stage of the layer before it).
    """
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()

    def record(name: str, module: nn.Module, args: tuple, output: Any) -> None:
        params = 0 if id(module) in seen else sum(p.numel() for p in module.parameters() if p.requires_grad)
        seen.add(id(module))
        rows.append({"name": name, "type": type(module).__name__, "detail": _detail(module),
                     "input_shape": _shape(args), "output_shape": _shape(output), "params": params,
                     "follower": isinstance(module, FOLLOWER_TYPES)})

    leaves = [(name, m) for name, m in model.named_modules() if not any(m.children())]
    handles = [m.register_forward_hook(lambda m, a, o, name=name: record(name, m, a, o))
               for name, m in leaves]
    modes = [(m, m.training) for m in model.modules()]  # per module: some may be frozen in eval
    model.eval()
    try:
        with torch.no_grad():
            model(input, *more)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    return rows


def _shape(x: Any) -> tuple[int, ...]:
    """Shape of a tensor (or of the first tensor in a tuple/list) without the batch dimension."""
    if isinstance(x, torch.Tensor):
        return tuple(x.shape[1:])
    if isinstance(x, (tuple, list)):
        return next((_shape(v) for v in x if isinstance(v, torch.Tensor)), ())
    return ()


def _detail(module: nn.Module) -> str:
    name = SHORT_NAMES.get(type(module).__name__, type(module).__name__)
    if isinstance(module, (nn.modules.conv._ConvNd)):
        kernel = "×".join(map(str, module.kernel_size))
        return f"{name} {kernel} s{module.stride[0]}"
    if isinstance(module, nn.Linear):
        return f"Linear {module.in_features}→{module.out_features}"
    return name


def format_shape(shape: tuple[int, ...]) -> str:
    """``(128, 14, 14)`` -> ``128×14×14``; a scalar per sample -> ``1``."""
    return "×".join(map(str, shape)) or "1"


def stages(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group layer rows into stages: a layer and the norm/activation/dropout rows after it.

    Returns:
        One dict per stage: ``label`` (e.g. ``ConvT 4×4 s2 / BN / ReLU``), ``output_shape``
        (of its last row) and ``params`` (summed).
    """
    groups: list[list[dict[str, Any]]] = []
    for row in rows:
        if row["follower"] and groups:
            groups[-1].append(row)
        else:
            groups.append([row])
    return [{"label": " / ".join(r["detail"] for r in g), "output_shape": g[-1]["output_shape"],
             "params": sum(r["params"] for r in g)} for g in groups]


def draw_network(rows: list[dict[str, Any]], title: str, input_label: str | None = None,
                 output_label: str | None = None, ax: Axes | None = None, color: str = COLORS["G"]) -> Figure:
    """Draw the flow of shapes through a network, one box per stage, top to bottom.

    Args:
        rows: from ``layer_table``.
        title: shown above the diagram with the total parameter count.
        input_label, output_label: the end nodes (default: the input / output shapes).
        ax: draw into this axes (e.g. one column of ``draw_gan``) instead of a new figure.
        color: fill of the stage boxes.
    """
    blocks = stages(rows)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 0.8 * (len(blocks) + 2) + 0.6), layout="constrained")
        plt.close(fig)  # returned, not shown by pyplot as well
    input_label = input_label or f"input  {format_shape(rows[0]['input_shape'])}"
    output_label = output_label or f"output  {format_shape(rows[-1]['output_shape'])}"
    nodes = [(input_label, None, COLORS["io"])]
    nodes += [(b["label"], f"→ {format_shape(b['output_shape'])}    {b['params']:,} params", color)
              for b in blocks]
    nodes.append((output_label, None, COLORS["io"]))
    for i, (text, sub, fill) in enumerate(nodes):
        y = len(nodes) - 1 - i  # node i is centred at y, its box spans y +- BOX_HEIGHT / 2
        _box(ax, y, text, sub, fill)
        if i:
            ax.annotate("", xy=(0.5, y + BOX_HEIGHT / 2), xytext=(0.5, y + 1 - BOX_HEIGHT / 2),
                        arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 1.2,
                                    "shrinkA": 1, "shrinkB": 1})
    total = sum(r["params"] for r in rows)
    ax.set_title(f"{title}\n{total:,} parameters", fontsize=11)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.5, len(nodes) - 0.5)
    ax.axis("off")
    return ax.figure


def _box(ax: Axes, y: float, text: str, sub: str | None, fill: str) -> None:
    """A rounded box centred at (0.5, y); a second, smaller line when ``sub``."""
    height, width = BOX_HEIGHT, 0.9 if sub else 0.6
    ax.add_patch(FancyBboxPatch((0.5 - width / 2, y - height / 2), width, height, facecolor=fill,
                                edgecolor="#777777", boxstyle="round,pad=0,rounding_size=0.06",
                                mutation_aspect=2.0))
    if sub is None:
        ax.text(0.5, y, text, ha="center", va="center", fontsize=9.5)
        return
    ax.text(0.5, y + 0.12, text, ha="center", va="center", fontsize=9.5, fontweight="bold")
    ax.text(0.5, y - 0.14, sub, ha="center", va="center", fontsize=8.5, color="#333333")


def draw_gan(generator: nn.Module, discriminator: nn.Module, latent_dim: int,
             image_shape: tuple[int, int, int], d_title: str = "Discriminator") -> Figure:
    """Both networks side by side: z -> image for G, image -> logit for D.

    Args:
        generator: maps (B, latent_dim) to (B, C, H, W).
        discriminator: maps (B, C, H, W) to logits (B,) or (B, 1).
        latent_dim: length of z.
        image_shape: (C, H, W).
        d_title: D's column title ("Critic" for WGAN-GP).
    """
    device = next(generator.parameters()).device
    g_rows = layer_table(generator, torch.zeros(1, latent_dim, device=device))
    d_device = next(discriminator.parameters()).device
    d_rows = layer_table(discriminator, torch.zeros(1, *image_shape, device=d_device))
    n = max(len(stages(g_rows)), len(stages(d_rows))) + 2
    fig, (ax_g, ax_d) = plt.subplots(1, 2, figsize=(11, 0.8 * n + 0.8))
    plt.close(fig)
    image = f"image  {format_shape(tuple(image_shape))}"
    label = getattr(generator, "label", None)
    z = f"z  ({latent_dim})" + (f" + class  ({label.dim})" if label is not None else "")
    image_in = image + (f" + class  ({label.dim})" if label is not None else "")
    draw_network(g_rows, "Generator", z, image, ax=ax_g, color=COLORS["G"])
    draw_network(d_rows, d_title, image_in, "logit  (losses work on logits)", ax=ax_d, color=COLORS["D"])
    for ax in (ax_g, ax_d):  # same vertical scale in both columns, aligned at the top
        ax.set_ylim(ax.get_ylim()[1] - n, ax.get_ylim()[1])
    fig.tight_layout()
    return fig
