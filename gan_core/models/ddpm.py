"""The DDPM family (Ho et al. 2020, https://arxiv.org/abs/2006.11239): a U-Net trained on the
MSE of the noise at random timesteps, sampled by the reverse process from start noise x_T,
which is its latent. It has one network and uses ``optim_g``."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..families import Description, Network
from .base import Gallery, ModelFamily, count_parameters, eval_mode
from .diffusion import DiffusionGenerator, Schedule, diffusion_loss, make_schedule
from .summary import layer_table
from .unet import UNet


class DDPM(ModelFamily):
    """Its settings are the ``diffusion:`` section (``families.ddpm.DiffusionSettings``)."""

    latent_note = ("Diffusion model: latents are start noises x_T of one number per pixel, denoised with DDIM "
                   "(eta 0), which makes the image a function of x_T alone.")

    def build_networks(self) -> dict[str, nn.Module]:
        d, (channels, size, _) = self.config.family, self.shape
        classes = len(self.label.names) if self.label is not None else 0  # the U-Net embeds the class itself
        unet = UNet(channels, size, d.base_width, d.width_mults, classes, d.dropout, d.attention)
        eta = d.eta if d.eta is not None else float(d.sample_steps in (None, d.timesteps))
        return {"generator": DiffusionGenerator(unet, make_schedule(d.schedule, d.timesteps), self.shape,
                                                d.sample_steps, eta, d.guidance, self.config.train.seed, self.label)}

    def training_step(self, real: torch.Tensor, labels: torch.Tensor | None, ctx: Any) -> dict[str, torch.Tensor]:
        """One step on the noise-prediction MSE; logs the loss."""
        real = ctx.batch(real)
        y = None if self.label is None else labels.to(ctx.device, non_blocking=True)
        with ctx.autocast():
            loss = diffusion_loss(self.generator.unet, self._schedule_on(ctx.device), real, y,
                                  self.config.family.p_uncond).float()
        ctx.step("optim_g", loss)
        return {"loss": loss.detach()}

    _on_device: tuple[torch.device, Schedule] | None = None

    def _schedule_on(self, device: torch.device) -> Schedule:
        """The noise schedule's constants on ``device``, copied there once: a copy in every step
        would wait for the GPU (a host synchronisation per step)."""
        if self._on_device is None or self._on_device[0] != device:
            self._on_device = (device, self.generator.schedule.to(device))
        return self._on_device[1]

    def _sampling(self) -> str:
        d, steps = self.config.family, self.generator.steps
        return (f"all {d.timesteps} steps (ancestral DDPM)" if steps in (None, d.timesteps)
                else f"DDIM with {steps} of the {d.timesteps} steps, eta {self.generator.eta:g}")

    def summary(self) -> str:
        d = self.config.family
        return (f"ddpm U-Net {count_parameters(self.generator):,} params | T {d.timesteps} {d.schedule}, "
                f"{self.generator.steps or d.timesteps} sampling steps")

    def describe(self) -> Description:
        d, shape = self.config.family, "x".join(map(str, self.shape))
        text = (f"**U-Net** {count_parameters(self.generator):,} parameters: it predicts the noise in a noised "
                f"image x_t of {shape} at timestep t of T = {d.timesteps} ({d.schedule} schedule), and is trained "
                f"on the mean squared error to the true noise (Ho et al. 2020). Sampling: {self._sampling()}.")
        if self.label is not None:
            trained = self.trained_classes()
            text += (f" Conditioned on the class ({len(trained)} classes: {', '.join(trained)}; a learned embedding "
                     f"added to the time embedding); {d.p_uncond:.0%} of labels dropped in training"
                     + (f", classifier-free guidance w = {d.guidance:g}." if d.guidance else "."))
        device = self.precision.device
        y = torch.zeros(1, dtype=torch.long, device=device) if self.label is not None else None
        rows = layer_table(self.generator.unet, torch.zeros(1, *self.shape, device=device),
                           torch.zeros(1, dtype=torch.long, device=device), y)
        return Description(text, [Network("U-Net", rows, f"x_t {shape} + t", "predicted noise")])

    def latent_generator(self) -> nn.Module:
        """The sampler with DDIM's eta 0: the start noise alone decides the image, so nearby x_T
        give nearby images."""
        sampler = copy.copy(self.sampler)  # shares the weights; only eta differs
        sampler.eta = 0.0
        return sampler

    gradual = True

    @torch.no_grad()
    def reverse_process(self, z: torch.Tensor, labels: torch.Tensor | None, frames: int) -> torch.Tensor:
        device = self.precision.device
        with eval_mode(self.sampler):
            _, snapshots = self.sampler(z.to(device), None if labels is None else labels.to(device), trajectory=frames)
        return snapshots.float().cpu()

    def gallery(self, seed: int) -> list[Gallery]:
        """The reverse process of six samples, from noise to image."""
        frames = self.reverse_process(self.latents(6, torch.Generator().manual_seed(seed)), self.default_labels(6), 10)
        steps = self.generator.steps or self.config.family.timesteps
        return [Gallery("Reverse process", f"From noise (left) to image (right): {steps} denoising steps, "
                        f"{len(frames)} shown.", frames.transpose(0, 1).flatten(0, 1), len(frames))]
