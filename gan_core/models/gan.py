"""The GAN family: a generator and a discriminator trained against each other.

Per step (Goodfellow et al. 2014; pytorch/examples dcgan): one generator pass, a D step on the
real batch and the detached fake batch (with the R1 penalty on real images every
``loss.r1_every`` D steps when ``loss.r1`` is set), then a G step on the same fake batch through
the updated D (every ``train.n_critic``-th D step). A conditional GAN makes its fakes of the
real batch's classes and D judges each image with its class. Subclasses (DCGAN, MLP GAN) build
the two networks; their torch-free specs (settings, sizes, log columns) are ``families.gan``.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ..families import Description, Network, format_shape
from ..families.gan import GAN_COLUMNS
from .base import ModelFamily, count_parameters
from .losses import GANLoss, gradient_penalty, r1_penalty
from .summary import layer_table


class GAN(ModelFamily):
    """A generator G and a discriminator (or critic) D; subclasses build the two networks."""

    optimized: ClassVar[dict[str, str]] = {"optim_g": "generator", "optim_d": "discriminator"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.discriminator = self.networks["discriminator"]
        self.loss = GANLoss(self.config.loss)
        self._g_stats = torch.zeros(2, device=self.precision.device)  # loss_g, D(G(z)) of the latest G step

    def build_pair(self, codes: list) -> tuple[nn.Module, nn.Module]:
        """G and D for ``self.shape``, each with its label code (None if unconditional)."""
        raise NotImplementedError

    def build_networks(self) -> dict[str, nn.Module]:
        g, d = self.build_pair(self.label_codes(2))
        g.apply(dcgan_init)  # N(0, 0.02), for the MLP too, as the DCGAN paper does for all its models
        d.apply(dcgan_init)
        if getattr(self.config.family, "spectral_norm", False):
            d.apply(spectral_norm)
        return {"generator": g, "discriminator": d}

    # --- one step ---------------------------------------------------------------------------
    def training_step(self, real: torch.Tensor, labels: torch.Tensor | None, ctx: Any) -> dict[str, torch.Tensor]:
        """One D step, then (every ``train.n_critic``-th step) a G step on the same fakes.

        Logged: loss_d, loss_g, D(x), D(G(z)) in the D step and in the G step (pytorch/examples'
        D_G_z1 / D_G_z2), D's accuracy on real and on fake images. With n_critic > 1 the G
        values are those of the latest G step.
        """
        real = ctx.batch(real)
        y = None if self.label is None else labels.to(ctx.device, non_blocking=True)
        g_step = (ctx.index + 1) % self.config.train.n_critic == 0
        z = torch.randn(real.shape[0], self.latent_dim, device=ctx.device)
        with ctx.autocast(), torch.set_grad_enabled(g_step):
            fake = self.generator(z, y)
        noise = self._instance_noise(ctx.progress)
        loss_d, real_logits, fake_logits = self._d_step(real, fake.detach(), y, noise, ctx)
        if g_step:
            self._g_stats = self._g_step(fake, y, noise, ctx)
        with torch.no_grad():
            p_real, p_fake = self.loss.prob(real_logits), self.loss.prob(fake_logits)
            values = (loss_d.detach(), self._g_stats[0], p_real.mean(), p_fake.mean(), self._g_stats[1],
                      (p_real > 0.5).float().mean(), (p_fake <= 0.5).float().mean())
        return dict(zip(GAN_COLUMNS, values))

    def _d_step(self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None,
                noise: float, ctx: Any) -> tuple[torch.Tensor, ...]:
        real, fake = _noised(real, noise), _noised(fake, noise)
        loss = self.config.loss
        r1 = loss.r1 > 0 and ctx.index % loss.r1_every == 0  # lazy R1: every r1_every steps, scaled to match
        if r1:
            real = real.detach().requires_grad_(True)
        with ctx.autocast():
            real_logits = self.discriminator(real, y).float()
            fake_logits = self.discriminator(fake, y).float()
            loss_d = self.loss.d_loss(real_logits, fake_logits)
        total = loss_d
        if loss.kind == "wgan-gp":
            total = total + loss.gp_weight * gradient_penalty(lambda x: self.discriminator(x, y), real, fake)
        if r1:
            total = total + loss.r1 / 2 * loss.r1_every * r1_penalty(real_logits, real)
        ctx.step("optim_d", total)
        return loss_d, real_logits.detach(), fake_logits.detach()

    def _g_step(self, fake: torch.Tensor, y: torch.Tensor | None, noise: float, ctx: Any) -> torch.Tensor:
        """G step through the updated D; returns (2,): loss_g and D(G(z))."""
        self.discriminator.requires_grad_(False)  # G's gradient flows through D; D's own are not needed
        with ctx.autocast():
            fake_logits = self.discriminator(_noised(fake, noise), y).float()
            loss_g = self.loss.g_loss(fake_logits)
        ctx.step("optim_g", loss_g)
        self.discriminator.requires_grad_(True)
        return torch.stack([loss_g.detach(), self.loss.prob(fake_logits.detach()).mean()])

    def _instance_noise(self, progress: float) -> float:
        """The std of Gaussian noise on D's inputs, falling linearly from ``train.instance_noise``
        to 0 over the run (Sønderby et al. 2016, https://arxiv.org/abs/1610.04490): real and
        fake distributions overlap early, so D cannot separate them perfectly and G gets gradients."""
        return self.config.train.instance_noise * max(0.0, 1.0 - progress)

    # --- state and words --------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "g_stats": self._g_stats.cpu()}

    def load_state_dict(self, state: dict, sampling_only: bool = False) -> None:
        super().load_state_dict(state, sampling_only)
        if "g_stats" in state:
            self._g_stats = state["g_stats"].to(self.precision.device)

    def _d_name(self) -> str:
        return "critic" if self.config.loss.kind == "wgan-gp" else "discriminator"

    def summary(self) -> str:
        m, loss = self.config.model, self.config.loss
        extras = [*(["spectral norm"] if getattr(self.config.family, "spectral_norm", False) else []),
                  *([f"R1 {loss.r1:g}"] if loss.r1 else [])]
        return (f"{m.arch} G {count_parameters(self.generator):,} D {count_parameters(self.discriminator):,} "
                f"params, z {m.latent_dim} | {loss.kind}{''.join(f', {e}' for e in extras)}")

    def describe(self) -> Description:
        m, d_name = self.config.model, self._d_name()
        image = f"image  {format_shape(self.shape)}"
        code = "" if self.label is None else f" + class  ({self.generator.label.dim})"
        text = (f"**Generator** {count_parameters(self.generator):,} parameters, **{d_name}** "
                f"{count_parameters(self.discriminator):,} parameters; z of {m.latent_dim} dimensions to "
                f"images of {'x'.join(map(str, self.shape))}. The {d_name} ends in a logit, no Sigmoid: the "
                f"{self.config.loss.kind} loss is computed on logits.")
        if self.label is not None:
            how = f"a {m.embed_dim}-wide learned embedding" if m.embed_dim else "a one-hot vector"
            trained = self.trained_classes()
            text += (f" Both are conditioned on the class ({len(trained)} classes: {', '.join(trained)}): the "
                     f"label, as {how}, joins z in G and the image as constant channels (or features, for an "
                     f"MLP) in the {d_name}.")
        g_rows = layer_table(self.generator, torch.zeros(1, m.latent_dim, device=self.precision.device))
        d_rows = layer_table(self.discriminator, torch.zeros(1, *self.shape, device=self.precision.device))
        return Description(text, [
            Network("Generator", g_rows, f"z  ({m.latent_dim}){code}", image),
            Network(d_name.capitalize(), d_rows, image + code, "logit  (losses work on logits)")])


def spectral_norm(module: nn.Module) -> None:
    """Spectral normalization of a convolution's or linear layer's weight (Miyato et al. 2018,
    https://arxiv.org/abs/1802.05957): D's Lipschitz constant bounded layer by layer."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.utils.parametrizations.spectral_norm(module)


def dcgan_init(module: nn.Module) -> None:
    """Conv weights N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0 (Radford et al. 2015)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _noised(x: torch.Tensor, std: float) -> torch.Tensor:
    return x + std * torch.randn_like(x) if std > 0 else x
