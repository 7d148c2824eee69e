"""What a network is made of, layer by layer (like torchinfo's summary): one row per leaf
module call with its output shape and parameters, recorded with forward hooks.

The architecture report draws these rows (``reporting.architecture``); each model family
lists its networks with them in ``describe()``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import eval_mode

SHORT_NAMES = {"ConvTranspose2d": "ConvT", "Conv2d": "Conv", "ConvTranspose1d": "ConvT1d",
               "Conv1d": "Conv1d", "BatchNorm1d": "BN", "BatchNorm2d": "BN", "InstanceNorm2d": "IN",
               "LayerNorm": "LN", "GroupNorm": "GN", "LeakyReLU": "LeakyReLU", "Dropout": "Dropout"}
# modules that belong to the stage of the layer before them rather than starting one
FOLLOWER_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.modules.dropout._DropoutNd,
                  nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.GELU, nn.SiLU, nn.PReLU)


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
    try:
        with torch.no_grad(), eval_mode(model):
            model(input, *more)
    finally:
        for handle in handles:
            handle.remove()
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
