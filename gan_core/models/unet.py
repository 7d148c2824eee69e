"""A small U-Net noise predictor for DDPM (Ho et al. 2020, https://arxiv.org/abs/2006.11239).

The layout follows the DDPM U-Net at a size that trains on a CPU: one residual block per
resolution, ``len(width_mults) - 1`` stride-2 downsamplings (28 -> 14 -> 7 px for the default
``(1, 2, 2)``), a middle of two blocks (optionally with self-attention between them), and an
up path that concatenates the skip of the same resolution. The timestep (sinusoidal, as in
Vaswani et al. 2017) and, when ``num_classes > 0``, a learned class embedding are summed and
injected into every block. Class id ``num_classes`` is the "null" class: no label, as used by
classifier-free guidance (Ho & Salimans 2022, https://arxiv.org/abs/2207.12598).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features (B, dim) of integer timesteps t (B,) (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([args.sin(), args.cos()], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)  # 8 groups at widths divisible by 8


def _zero(module: nn.Module) -> nn.Module:
    """Zero-initialised last layers make every residual block start as the identity (as in DDPM's code)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the embedding added in between; (B, c_in, H, W) -> (B, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.in_layers = nn.Sequential(_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, c_out))
        self.out_layers = nn.Sequential(_norm(c_out), nn.SiLU(), nn.Dropout(dropout),
                                        _zero(nn.Conv2d(c_out, c_out, 3, padding=1)))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb(emb)[:, :, None, None]  # (B, c_out, H, W) + (B, c_out, 1, 1)
        return self.skip(x) + self.out_layers(h)


class SelfAttention(nn.Module):
    """One-head self-attention over the H*W positions, residual; (B, C, H, W) -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm, self.qkv = _norm(channels), nn.Conv2d(channels, 3 * channels, 1)
        self.out = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=2)  # each (B, HW, C)
        a = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        return x + self.out(a.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """Noise predictor eps(x_t, t, y): (B, C, H, W), (B,) long, (B,) long or None -> (B, C, H, W).

    Args:
        channels: image channels (1 or 3).
        image_size: side in pixels; must be divisible by ``2 ** (len(width_mults) - 1)``.
        base_width: channels of the first resolution; level i has ``base_width * width_mults[i]``.
        width_mults: one entry per resolution, each after the first one halving H and W.
        num_classes: > 0 for a class-conditional model; y = num_classes (or y None) is "no label".
        dropout: dropout inside residual blocks.
        attention: one self-attention layer at the lowest resolution.
    """

    def __init__(self, channels: int, image_size: int, base_width: int = 32,
                 width_mults: tuple[int, ...] = (1, 2, 2), num_classes: int = 0,
                 dropout: float = 0.0, attention: bool = False):
        super().__init__()
        downs = len(width_mults) - 1
        if image_size % 2 ** downs:
            raise ValueError(f"a U-Net with width_mults {tuple(width_mults)} halves {downs} times, so "
                             f"image_size must be divisible by {2 ** downs} (got {image_size})")
        self.channels, self.image_size, self.num_classes = channels, image_size, num_classes
        self.base_width, emb_dim = base_width, 4 * base_width
        widths = [base_width * m for m in width_mults]
        self.time_mlp = nn.Sequential(nn.Linear(base_width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None  # +1: null
        self.conv_in = nn.Conv2d(channels, base_width, 3, padding=1)
        last = len(widths) - 1
        self.down = nn.ModuleList(ResBlock(w_in, w, emb_dim, dropout)
                                  for w_in, w in zip([base_width] + widths, widths))
        self.downsample = nn.ModuleList(nn.Conv2d(w, w, 3, stride=2, padding=1) if i < last else nn.Identity()
                                        for i, w in enumerate(widths))
        self.mid1 = ResBlock(widths[-1], widths[-1], emb_dim, dropout)
        self.mid_attn = SelfAttention(widths[-1]) if attention else nn.Identity()
        self.mid2 = ResBlock(widths[-1], widths[-1], emb_dim, dropout)
        # up path, lowest resolution first: block(cat(h, skip)), then upsample to the next level's
        # width (narrowing before the conv at the larger size, not after, saves compute)
        ups = list(reversed(range(len(widths))))
        self.up = nn.ModuleList(ResBlock(2 * widths[i], widths[i], emb_dim, dropout) for i in ups)
        self.upsample = nn.ModuleList(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                    nn.Conv2d(widths[i], widths[i - 1], 3, padding=1))
                                      if i > 0 else nn.Identity() for i in ups)
        self.out = nn.Sequential(_norm(widths[0]), nn.SiLU(), _zero(nn.Conv2d(widths[0], channels, 3, padding=1)))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.base_width))  # (B, 4 * base_width)
        if self.class_emb is not None:
            y = torch.full_like(t, self.num_classes) if y is None else y
            emb = emb + self.class_emb(y)
        elif y is not None:
            raise ValueError("labels y were given to an unconditional U-Net (num_classes = 0)")
        h, skips = self.conv_in(x), []  # (B, base_width, H, W)
        for block, down in zip(self.down, self.downsample):
            h = block(h, emb)
            skips.append(h)
            h = down(h)  # halves H and W, except after the last level
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for block, up in zip(self.up, self.upsample):
            h = up(block(torch.cat([h, skips.pop()], dim=1), emb))
        return self.out(h)
