"""Fully connected GAN (Goodfellow et al. 2014, https://arxiv.org/abs/1406.2661), as course
reports build it: G of Linear + BatchNorm1d + LeakyReLU layers ending in Tanh, D of Linear +
LeakyReLU (+ dropout) layers ending in one logit."""
from __future__ import annotations

import math

import torch
from torch import nn

from .gan import GAN
from .labels import LabelCode, with_code


class MLPGenerator(nn.Module):
    """z (B, latent_dim) [and class ids y (B,)] -> image (B, C, H, W) in [-1, 1]."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], hidden: tuple[int, ...],
                 label: LabelCode | None = None):
        super().__init__()
        self.latent_dim, self.image_shape, self.label = latent_dim, tuple(image_shape), label
        layers: list[nn.Module] = []
        width = latent_dim + (label.dim if label else 0)
        for out in hidden:
            layers += [nn.Linear(width, out), nn.BatchNorm1d(out), nn.LeakyReLU(0.2, True)]
            width = out
        layers += [nn.Linear(width, math.prod(image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_code(z, self.label, y)).view(len(z), *self.image_shape)


class MLPDiscriminator(nn.Module):
    """image (B, C, H, W) [and class ids y (B,)] -> logit (B,); the label code joins the pixels."""

    def __init__(self, image_shape: tuple[int, int, int], hidden: tuple[int, ...], dropout: float = 0.0,
                 label: LabelCode | None = None):
        super().__init__()
        self.label = label
        layers: list[nn.Module] = [nn.Flatten()]  # no-op on flat input; keeps checkpoints' layer indices
        width = math.prod(image_shape) + (label.dim if label else 0)
        for out in hidden:
            layers += [nn.Linear(width, out), nn.LeakyReLU(0.2, True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = out
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_code(x.flatten(1), self.label, y)).flatten()


class MLPGAN(GAN):
    """A fully connected pair; it builds any image size (digits at their native 8x8 included).
    Its settings are the ``mlp:`` section (``families.gan.MLPSettings``)."""

    def build_pair(self, codes: list) -> tuple[nn.Module, nn.Module]:
        s = self.config.family
        return (MLPGenerator(self.config.model.latent_dim, self.shape, s.g_hidden, codes[0]),
                MLPDiscriminator(self.shape, s.d_hidden, s.d_dropout, codes[1]))
