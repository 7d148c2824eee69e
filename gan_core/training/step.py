"""The step context: the training machinery, written once, that a family's ``training_step``
steps with. The trainer owns it: the optimizers (one per ``family.optimized`` entry, each with
its config section), the learning rate's decay to the end of the budget, autocast and the
memory format (``models.Precision``), fp16's gradient scaling, gradient clipping, and the
weight average of the generator that samples come from (EMA)::

    def training_step(self, real, labels, ctx):
        with ctx.autocast():
            loss = ...
        ctx.step("optim_g", loss)          # zero_grad, backward, clip, step, average
        return {"loss": loss.detach()}
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..config import Config, OptimConfig
from ..models import ModelFamily, Precision


def make_optimizer(params, c: OptimConfig) -> torch.optim.Optimizer:
    if c.name == "adam":
        return torch.optim.Adam(params, lr=c.lr, betas=c.betas, eps=c.eps, weight_decay=c.weight_decay)
    return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)


class WeightAverage:
    """An exponential moving average of the generator's weights, kept in ``family.averaged``:
    samples and scores come from it (Yazici et al. 2019, https://arxiv.org/abs/1806.04498).

    ``train.ema``: a fixed decay with diffusers' warm-up (early on the average follows the
    weights closely, so a short run does not sample from weights near their initialisation).
    ``train.ema_halflife``: a half-life of that share of the images seen so far, as in
    StyleGAN2-ADA (Karras et al. 2020, https://arxiv.org/abs/2006.06676): it grows with training,
    so the average suits a run of any length."""

    def __init__(self, family: ModelFamily, decay: float, halflife: float):
        self.module, self.generator = family.averaged or family.average(), family.generator
        self.decay, self.halflife = decay, halflife

    @torch.no_grad()
    def update(self, step: int, images: int, batch: int) -> None:
        """Move the average towards the generator after its update at (0-based) ``step``, with
        ``images`` seen so far in batches of ``batch``."""
        if self.halflife:
            keep = 0.5 ** (batch / max(self.halflife * images, 1e-8))
        else:
            keep = min(self.decay, (1 + step) / (10 + step))
        for averaged, current in zip(self.module.parameters(), self.generator.parameters()):
            averaged.lerp_(current, 1.0 - keep)
        for averaged, current in zip(self.module.buffers(), self.generator.buffers()):
            averaged.copy_(current)  # BatchNorm statistics: the current ones


def lr_factor(kind: str, progress: float) -> float:
    """The share of the configured learning rate at ``progress`` (0 at the first step, 1 after
    the last): constant, or falling linearly or along a half cosine to 0 at the end."""
    if kind == "linear":
        return 1.0 - progress
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


class StepContext:
    """What a family's ``training_step`` steps with; see the module docstring.

    Args:
        family: the model, whose ``optimized`` maps each optimizer (a config section's name,
            e.g. ``optim_d``) to the network it trains.
        config: the resolved config (``train.*``, the optimizers' sections).
        precision: device, autocast and memory format.
        total_steps: the run's steps, the learning rate's horizon.
    """

    def __init__(self, family: ModelFamily, config: Config, precision: Precision, total_steps: int):
        t = config.train
        self.family, self.precision, self.total_steps = family, precision, max(total_steps, 1)
        self.networks = {key: family.networks[net] for key, net in family.optimized.items()}
        self.optimizers = {key: make_optimizer(net.parameters(), getattr(config, key))
                           for key, net in self.networks.items()}
        self.base_lr = {key: getattr(config, key).lr for key in self.optimizers}
        self.lr_decay, self.clip, self.batch_size = t.lr_decay, t.grad_clip, t.batch_size
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision.dtype == torch.float16)
        self.average = WeightAverage(family, t.ema, t.ema_halflife) if t.ema or t.ema_halflife else None
        self.index, self.progress = 0, 0.0

    @property
    def device(self) -> torch.device:
        return self.precision.device

    def autocast(self):
        return self.precision.autocast()

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        return self.precision.batch(images)

    def begin(self, index: int) -> None:
        """Before global step ``index`` (0-based): its progress and learning rates."""
        self.index, self.progress = index, index / self.total_steps
        factor = lr_factor(self.lr_decay, self.progress)
        for key, optimizer in self.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = self.base_lr[key] * factor

    def step(self, optimizer: str, loss: torch.Tensor) -> None:
        """One update of ``optimizer``'s network on ``loss``: backward (scaled under fp16),
        gradient clipping when asked, the step; after a generator's step, its average."""
        opt, network = self.optimizers[optimizer], self.networks[optimizer]
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip:
            self.scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(network.parameters(), self.clip)
        self.scaler.step(opt)
        self.scaler.update()
        if self.average is not None and network is self.family.generator:
            self.average.update(self.index, (self.index + 1) * self.batch_size, self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        """The optimizers and the scaler by checkpoint key (the average is the family's)."""
        return {**{key: opt.state_dict() for key, opt in self.optimizers.items()}, "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, opt in self.optimizers.items():
            opt.load_state_dict(state[key])
        self.scaler.load_state_dict(state.get("scaler", {}))

    @property
    def state_keys(self) -> tuple[str, ...]:
        """What a checkpoint must hold for this context."""
        return tuple(self.optimizers)
