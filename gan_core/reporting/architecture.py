"""Networks drawn: the layer rows of ``models.summary.layer_table`` grouped into stages (a
convolution or linear layer with the normalization and activation that follow it) and drawn
as boxes from input to output, one column per network of a model family."""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from pandas.io.formats.style import Styler

from ..families import Network, format_shape
from .tables import readable

BOX_HEIGHT = 0.62  # in node spacings: the rest of each spacing is the arrow
COLORS = {"G": "#dbe9f6", "D": "#fbe3d0", "io": "#eeeeee"}


def layer_frame(rows: list[dict[str, Any]]) -> Styler:
    """A network's layer rows as a report table: module, layer, output shape, parameters."""
    frame = pd.DataFrame(rows, columns=["name", "detail", "output_shape", "params"])
    return readable(frame.assign(output_shape=frame["output_shape"].map(format_shape)), index=False)


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


def draw_networks(networks: list[Network]) -> Figure:
    """A family's networks side by side (a GAN's G and D, a diffusion model's U-Net), one box
    per stage, aligned at the top on one vertical scale."""
    n = max(len(stages(net.rows)) for net in networks) + 2
    fig, axes = plt.subplots(1, len(networks), figsize=(5.5 * len(networks), 0.8 * n + 0.8), squeeze=False)
    plt.close(fig)
    for i, (ax, net) in enumerate(zip(axes[0], networks)):
        draw_network(net.rows, net.title, net.input_label, net.output_label, ax=ax,
                     color=COLORS["G"] if i == 0 else COLORS["D"])
        ax.set_ylim(ax.get_ylim()[1] - n, ax.get_ylim()[1])
    fig.tight_layout()
    return fig
