"""DCGAN (Radford et al. 2015, https://arxiv.org/abs/1511.06434) for 28 to 256 px.

Layers are derived from the image size: the generator starts from a 4x4 map (7x7 for 28 px)
and doubles it per transposed convolution; the discriminator mirrors it. The first map is
``ngf * 2**(n - 1)`` channels wide for ``n`` doublings, halving each layer (so ngf is the width of
the last hidden layer, as in pytorch/examples' dcgan at 64 px: ngf*8 x 4 x 4).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..families.gan import SIZE_RULE, dcgan_base_size
from .gan import GAN
from .labels import LabelCode, with_code

def _doublings(image_size: int) -> tuple[int, int]:
    base = dcgan_base_size(image_size)
    if base is None:
        raise ValueError(f"a DCGAN cannot build {image_size} px images: it needs {SIZE_RULE}")
    return base, int(math.log2(image_size // base))


class DCGANGenerator(nn.Module):
    """z (B, latent_dim) [and class ids y (B,)] -> image (B, channels, size, size) in [-1, 1] (Tanh)."""

    def __init__(self, latent_dim: int, channels: int, image_size: int, ngf: int = 64,
                 label: LabelCode | None = None):
        super().__init__()
        base, n = _doublings(image_size)
        self.latent_dim, self.image_size, self.label = latent_dim, image_size, label
        width = ngf * 2 ** (n - 1)
        layers: list[nn.Module] = [  # (B, nz [+ code], 1, 1) -> (B, width, base, base)
            nn.ConvTranspose2d(latent_dim + (label.dim if label else 0), width, base, 1, 0, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(n - 1):  # each: (B, w, s, s) -> (B, w/2, 2s, 2s)
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_code(z, self.label, y)[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """image (B, channels, size, size) [and class ids y (B,)] -> logit (B,). No Sigmoid: losses
    work on logits. A conditional D sees the label code as extra constant input channels."""

    def __init__(self, channels: int, image_size: int, ndf: int = 64, norm: str = "batch",
                 label: LabelCode | None = None):
        super().__init__()
        self.label = label
        norms = {"batch": nn.BatchNorm2d, "none": lambda w: nn.Identity(),
                 "layer": lambda w: nn.GroupNorm(1, w)}  # one group: LayerNorm over (C, H, W)
        base, n = _doublings(image_size)
        width = ndf
        layers: list[nn.Module] = [  # no BatchNorm on the input layer (Radford et al.)
            nn.Conv2d(channels + (label.dim if label else 0), width, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, True)]
        for _ in range(n - 1):  # each: (B, w, s, s) -> (B, 2w, s/2, s/2)
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                       norms[norm](width * 2), nn.LeakyReLU(0.2, True)]
            width *= 2
        layers.append(nn.Conv2d(width, 1, base, 1, 0, bias=False))  # (B, w, base, base) -> (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_code(x, self.label, y)).flatten()


class DCGAN(GAN):
    """A DCGAN pair: transposed convolutions up from a 4x4 (or 7x7) map, a mirrored convolutional D;
    its settings are the ``dcgan:`` section (``families.gan.DCGANSettings``)."""

    def build_pair(self, codes: list) -> tuple[nn.Module, nn.Module]:
        s, (channels, size, _) = self.config.family, self.shape
        return (DCGANGenerator(self.config.model.latent_dim, channels, size, s.ngf, codes[0]),
                DCGANDiscriminator(channels, size, s.ndf, s.d_norm, codes[1]))
