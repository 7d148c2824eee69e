"""Generator and discriminator networks, built from a Config."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..config import Config, ConfigError
from ..data import class_id
from .conditional import LabelCode
from .dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init
from .mlp import MLPDiscriminator, MLPGenerator


def build_models(config: Config, channels: int, classes: Sequence[str] = ()) -> tuple[nn.Module, nn.Module]:
    """Generator and discriminator for ``config.model`` and images of ``channels`` channels
    (a diffusion model has no discriminator: None). A conditional model needs the data set's
    class names (``ImageData.classes``); G and D each get their own label code.
    """
    m, size = config.model, config.data.image_size
    codes = [None, None]
    if m.conditional:
        if not classes:
            raise ConfigError("model.conditional needs the data set's classes (none were given)")
        kept = config.data.classes
        ids = None if kept is None else [class_id(c, classes, "data.classes") for c in kept]
        embed_dim = 0 if m.arch == "ddpm" else m.embed_dim  # the U-Net embeds the class itself
        codes = [LabelCode(classes, embed_dim, ids) for _ in range(2)]
    if m.arch == "ddpm":
        return _diffusion(config, channels, codes[0]), None
    if m.arch == "mlp":
        shape = (channels, size, size)
        g = MLPGenerator(m.latent_dim, shape, m.g_hidden, codes[0])
        d = MLPDiscriminator(shape, m.d_hidden, m.d_dropout, codes[1])
    else:
        g = DCGANGenerator(m.latent_dim, channels, size, m.ngf, codes[0])
        d = DCGANDiscriminator(channels, size, m.ndf, m.d_norm, codes[1])
    g.apply(dcgan_init)  # N(0, 0.02) for the MLP too, as the DCGAN paper does for all its models
    d.apply(dcgan_init)
    return g, d


def _diffusion(config: Config, channels: int, label: LabelCode | None) -> nn.Module:
    """A DDPM as a generator (the U-Net inside ``.unet``); it has no discriminator."""
    from ..diffusion import DiffusionGenerator, make_schedule
    from .unet import UNet
    d, size = config.diffusion, config.data.image_size
    unet = UNet(channels, size, d.base_width, d.width_mults, label.num_classes if label else 0, d.dropout, d.attention)
    eta = d.eta if d.eta is not None else float(d.sample_steps in (None, d.timesteps))
    return DiffusionGenerator(unet, make_schedule(d.schedule, d.timesteps), (channels, size, size),
                              d.sample_steps, eta, d.guidance, config.train.seed, label)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator", "LabelCode", "build_models",
           "count_parameters", "dcgan_init"]
