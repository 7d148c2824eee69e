"""Generator and discriminator networks, built from a Config."""
from __future__ import annotations

from torch import nn

from ..config import Config
from .dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init
from .mlp import MLPDiscriminator, MLPGenerator


def build_models(config: Config, channels: int) -> tuple[nn.Module, nn.Module]:
    """Generator and discriminator for ``config.model`` and images of ``channels`` channels."""
    m, size = config.model, config.data.image_size
    if m.arch == "mlp":
        shape = (channels, size, size)
        g, d = MLPGenerator(m.latent_dim, shape, m.g_hidden), MLPDiscriminator(shape, m.d_hidden, m.d_dropout)
    else:
        g, d = DCGANGenerator(m.latent_dim, channels, size, m.ngf), DCGANDiscriminator(channels, size, m.ndf, m.d_norm)
    g.apply(dcgan_init)  # N(0, 0.02) for the MLP too, as the DCGAN paper does for all its models
    d.apply(dcgan_init)
    return g, d


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator", "build_models",
           "count_parameters", "dcgan_init"]
