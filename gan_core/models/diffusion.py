"""Denoising diffusion (DDPM, Ho et al. 2020, https://arxiv.org/abs/2006.11239): noise schedules,
the forward process, the noise-prediction loss and sampling (ancestral DDPM or DDIM, with
classifier-free guidance).

Timesteps are 0-based: t = 0 is the first noising step, t = T - 1 the last, and x_t has been
noised t + 1 times. The model is any ``model(x_t (B, C, H, W), t (B,), y (B,) | None) -> eps``;
a class-conditional one has ``num_classes > 0`` and reads y = num_classes as "no label".
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .base import eval_mode


@dataclass(frozen=True)
class Schedule:
    """Per-timestep constants, each (T,) float32 on the CPU; index with t (B,) on any device."""

    kind: str
    betas: torch.Tensor
    alphas: torch.Tensor  # 1 - beta_t
    alpha_bar: torch.Tensor  # prod_{s <= t} alpha_s
    alpha_bar_prev: torch.Tensor  # alpha_bar_{t-1}, 1 at t = 0
    sqrt_alpha_bar: torch.Tensor
    sqrt_one_minus_alpha_bar: torch.Tensor
    posterior_variance: torch.Tensor  # tilde beta_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), Ho eq. 7

    @property
    def T(self) -> int:
        return len(self.betas)

    def to(self, device: torch.device | str) -> "Schedule":
        """The same constants on ``device`` (itself on the CPU)."""
        return Schedule(self.kind, *(getattr(self, f.name).to(device) for f in dataclasses.fields(self)[1:]))


def make_schedule(kind: Literal["linear", "cosine"], T: int, beta_start: float = 1e-4,
                  beta_end: float = 0.02, scale_to_T: bool = True) -> Schedule:
    """The noise schedule of ``T`` steps.

    linear: betas evenly spaced from beta_start to beta_end (Ho et al. 2020, for T = 1000). With
    ``scale_to_T`` both ends are multiplied by 1000 / T, as in Nichol & Dhariwal's code
    (https://github.com/openai/improved-diffusion), so that the total noise, and so alpha_bar at
    T - 1 (about 4e-5), stays that of T = 1000 when T is small: unscaled, T = 150 leaves
    alpha_bar = 0.2, far from pure noise. cosine: alpha_bar_t = f(t + 1) / f(0) with
    f(t) = cos^2((t / T + s) / (1 + s) * pi / 2), s = 0.008, betas clipped at 0.999 (Nichol &
    Dhariwal 2021, https://arxiv.org/abs/2102.09672); beta_start and beta_end are not used.
    """
    if T < 1:
        raise ValueError(f"a schedule needs T >= 1 steps (got {T})")
    if kind == "linear":
        scale = 1000 / T if scale_to_T else 1.0
        if not 0 < scale * beta_start <= scale * beta_end < 1:
            raise ValueError(f"linear schedule: need 0 < beta_start <= beta_end < 1 after scaling by "
                             f"{scale:g} (got {scale * beta_start:g}, {scale * beta_end:g}); use a larger T")
        betas = torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64)
    elif kind == "cosine":
        f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    else:
        raise ValueError(f"unknown schedule {kind!r} (use 'linear' or 'cosine')")
    alpha_bar = torch.cumprod(1 - betas, 0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    terms = [betas, 1 - betas, alpha_bar, prev, alpha_bar.sqrt(), (1 - alpha_bar).sqrt(),
             betas * (1 - prev) / (1 - alpha_bar)]  # in the order of Schedule's fields
    return Schedule(kind, *(v.float() for v in terms))


def _at(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """values[t] as (B, 1, 1, 1) on t's device, to broadcast over images."""
    return values.to(t.device)[t][:, None, None, None]


def q_sample(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t ~ q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) (Ho eq. 4); all (B, C, H, W)."""
    return _at(schedule.sqrt_alpha_bar, t) * x0 + _at(schedule.sqrt_one_minus_alpha_bar, t) * noise


def diffusion_loss(model: nn.Module, schedule: Schedule, x0: torch.Tensor, y: torch.Tensor | None = None,
                   p_uncond: float = 0.0) -> torch.Tensor:
    """Ho et al.'s simple loss: MSE between the noise and the model's prediction of it, t ~ U{0..T-1}.

    With ``p_uncond > 0`` each label is replaced by the null class with that probability, so one
    model learns both eps(x, y) and eps(x) for classifier-free guidance (Ho & Salimans 2022).
    """
    t = torch.randint(0, schedule.T, (len(x0),), device=x0.device)
    noise = torch.randn_like(x0)
    if y is not None and p_uncond > 0:
        drop = torch.rand(len(y), device=y.device) < p_uncond
        y = torch.where(drop, torch.full_like(y, model.num_classes), y)
    return F.mse_loss(model(q_sample(schedule, x0, t, noise), t, y), noise)


def _guided_eps(model: nn.Module, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None,
                guidance: float) -> torch.Tensor:
    """eps(x_t, y), or (1 + w) eps(x_t, y) - w eps(x_t) under guidance w (Ho & Salimans eq. 6)."""
    if not guidance:
        return model(x, t, y)
    both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, model.num_classes)]))
    cond, uncond = both.chunk(2)
    return (1 + guidance) * cond - guidance * uncond


def _check(model: nn.Module, n: int, y: torch.Tensor | None, steps: int, T: int, guidance: float) -> None:
    classes = getattr(model, "num_classes", 0)
    if y is not None and (not classes or len(y) != n or y.min() < 0 or y.max() > classes):
        raise ValueError(f"y must hold {n} labels in [0, {classes}] for a model with num_classes = "
                         f"{classes} (got {len(y)} labels in [{y.min()}, {y.max()}])")
    if guidance and y is None:
        raise ValueError("guidance needs a class-conditional model and labels y")
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, T = {T}] (got {steps})")


def _randn(n: int, shape: tuple[int, ...], generator) -> torch.Tensor:
    """(n, *shape) standard normal noise on the CPU, from one generator or one per row."""
    if isinstance(generator, Sequence):
        return torch.stack([torch.randn(shape, generator=g) for g in generator])
    return torch.randn(n, *shape, generator=generator)


@torch.no_grad()
def sample(model: nn.Module, schedule: Schedule, n: int, shape: tuple[int, int, int],
           y: torch.Tensor | Sequence[int] | None = None, steps: int | None = None, eta: float = 1.0,
           guidance: float = 0.0, generator: torch.Generator | Sequence[torch.Generator] | None = None,
           device: torch.device | str = "cpu", return_trajectory: int = 0,
           noise: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (n, C, H, W) in [-1, 1], denoised from pure noise.

    One loop runs DDIM (Song et al. 2020, https://arxiv.org/abs/2010.02502, eq. 12) on ``steps``
    timesteps evenly spaced in [0, T - 1], with sigma_t = eta * sqrt(tilde beta_t) (their eq. 16).
    With all T steps (``steps`` None or T) and eta = 1 this is exactly ancestral DDPM sampling
    (Ho et al. Algorithm 2, variance tilde beta_t); eta = 0 is deterministic given the start noise.
    The predicted x_0 is clipped to [-1, 1] at every step and eps recomputed from it.

    Args:
        y: labels (n,) for a class-conditional model; None samples it unconditionally.
        guidance: classifier-free guidance weight w; 0 turns it off.
        generator: a CPU generator for all the noise, so results repeat on the CPU; or one per
            sample, so each sample's noise is its own whatever else is in the batch.
        return_trajectory: k > 0 also returns k snapshots of x_t (k, n, C, H, W) evenly spaced
            from the start noise to the final images.
        noise: the start noise x_T (n, C, H, W); default: drawn from ``generator``.
    """
    T, steps = schedule.T, schedule.T if steps is None else steps
    y = None if y is None else torch.as_tensor(y, dtype=torch.long, device=device)
    _check(model, n, y, steps, T, guidance)
    ts = torch.linspace(0, T - 1, steps, dtype=torch.float64).round().long().tolist()
    keep = set(torch.linspace(0, steps, return_trajectory).round().long().tolist()) if return_trajectory else set()
    with eval_mode(model):
        x = (_randn(n, shape, generator) if noise is None else noise).to(device)  # x_T
        snapshots = [x] if 0 in keep else []
        bars = schedule.alpha_bar[ts].tolist()
        for i, (t_now, ab, ab_prev) in enumerate(zip(ts[::-1], bars[::-1], ([1.0] + bars[:-1])[::-1])):
            t = torch.full((n,), t_now, dtype=torch.long, device=device)
            eps = _guided_eps(model, x, t, y, guidance)
            x0 = ((x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)).clamp(-1, 1)
            eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
            sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
            x = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma ** 2, 0.0)) * eps
            if sigma > 0:
                x = x + sigma * _randn(n, shape, generator).to(device)
            if i + 1 in keep:
                snapshots.append(x)
    x = x.clamp(-1, 1)
    return (x, torch.stack(snapshots)) if return_trajectory else x


class DiffusionGenerator(nn.Module):
    """A diffusion model used as a generator: ``forward(z, y)`` runs the reverse process from the
    start noise ``z`` (B, C*H*W), so whatever draws from a GAN's G (sample grids, scores, the
    gallery, latent interpolation) draws from the diffusion model the same way.

    The steps' own noise (eta > 0) comes from a generator per sample, seeded from ``seed`` and
    that sample's z, so an image depends on its z (and class) only, and repeats on the CPU. With
    eta = 0 (DDIM) z alone decides the image, and nearby z give nearby images: set ``eta`` to 0
    to interpolate in z.

    Args:
        unet: the noise predictor, ``unet(x_t, t, y) -> eps``.
        schedule: the noise schedule it is trained with.
        image_shape: (C, H, W).
        steps: sampling steps; None: all T (ancestral DDPM); fewer: DDIM.
        eta: DDIM's eta (1: DDPM's variance, 0: deterministic).
        guidance: classifier-free guidance weight for a conditional model.
        label: class bookkeeping (names, trained classes) of a conditional model, else None.
    """

    def __init__(self, unet: nn.Module, schedule: Schedule, image_shape: tuple[int, int, int],
                 steps: int | None = None, eta: float = 1.0, guidance: float = 0.0, seed: int = 0,
                 label: nn.Module | None = None):
        super().__init__()
        self.unet, self.schedule, self.label = unet, schedule, label
        self.image_shape, self.latent_dim = tuple(image_shape), math.prod(image_shape)
        self.steps, self.eta, self.guidance, self.seed = steps, eta, guidance, seed

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, trajectory: int = 0):
        """Images (B, C, H, W) in [-1, 1] from start noise z (B, C*H*W) [and classes y (B,)];
        with ``trajectory`` = k, also k snapshots (k, B, C, H, W) from noise to image."""
        if self.label is not None and y is None:
            y = self.label.default_labels(len(z), z.device)
        rows = z.detach().float().cpu().numpy()
        seeds = [int.from_bytes(hashlib.sha256(row.tobytes()).digest()[:7], "little") ^ self.seed for row in rows]
        return sample(self.unet, self.schedule, len(z), self.image_shape, y=y, steps=self.steps, eta=self.eta,
                      guidance=self.guidance if y is not None else 0.0,
                      generator=[torch.Generator().manual_seed(s) for s in seeds], device=z.device,
                      return_trajectory=trajectory, noise=z.view(len(z), *self.image_shape))
