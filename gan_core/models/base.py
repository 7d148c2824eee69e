"""What every model family's implementation is: plain networks and the small interface the
trainer, the scorer and the notebooks use.

A family (a GAN of some networks, a diffusion model) owns its networks and knows how one batch
trains them, the way lucidrains' ``GaussianDiffusion.forward`` returns its loss so that its
trainer is one line. It owns no training machinery: optimizers, precision, gradient scaling,
EMA and clipping are the trainer's step context (``training.step.StepContext``), which a
family's ``training_step`` asks to step (``ctx.step("optim_d", loss)``). The trainer, the
evaluation and the reports call only:

    family.training_step(real, labels, ctx) -> {log column: value}
    family.sample(n, labels=None, generator=None) -> images (n, C, H, W) in [-1, 1]
    family.generate(z, labels=None) -> images from given latents
    family.state_dict() / family.load_state_dict(state)   (its networks, for checkpoints)
    family.describe() -> Description                       (the architecture report)

Its torch-free half, the spec (``family.spec``: settings, checks, log schema, reading), is
``gan_core.families``; the registry there names each implementation.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .. import families
from ..config import Config, ConfigError, class_index
from ..families import Description, LogSchema
from .labels import LabelCode


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """The modules in eval mode inside the block; every submodule gets its own mode back after
    (some may have been frozen in eval on purpose)."""
    modes = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def count_parameters(module: nn.Module | None) -> int:
    """Number of trainable parameters (0 for None)."""
    return 0 if module is None else sum(p.numel() for p in module.parameters() if p.requires_grad)


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that compute bf16 natively
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
COMPILED_LAYOUT = ("channels_last off under train.compile: inductor lays out convolutions itself "
                   "(a channels_last model fails its assert_size_stride in convolution backward on CUDA)")


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` computes bf16 natively, and why: CUDA that supports it, or a CPU with
    one of ``CPU_BF16_FLAGS`` (elsewhere bf16 is emulated and runs slower than fp32)."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, f"{torch.cuda.get_device_name(device)} {'supports' if ok else 'lacks'} bf16"
    if device.type != "cpu":
        return False, f"{device.type} is not measured with bf16"
    try:
        flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo")
                      if line.startswith("flags")), [])
    except OSError:
        return False, "CPU flags unknown (no /proc/cpuinfo)"
    found = [f for f in CPU_BF16_FLAGS if f in flags]
    return (True, f"CPU has {'/'.join(found)}") if found else (False, "CPU has no native bf16 (no avx512_bf16/amx)")


class Precision:
    """Where and how a family computes: device, autocast dtype (None: fp32), memory format and,
    on CUDA, TF32 for fp32 matrix products. ``note`` says what was picked and why."""

    def __init__(self, device: torch.device | str = "cpu", dtype: torch.dtype | None = None,
                 channels_last: bool = False, note: str = "", tf32: bool = False):
        self.device, self.dtype, self.channels_last = torch.device(device), dtype, channels_last
        self.tf32 = tf32
        self.note = note or self.name

    @classmethod
    def choose(cls, device: torch.device, precision: str, channels_last: bool | str,
               family: families.Family | None = None, compiled: bool = False) -> "Precision":
        """``train.precision``/``train.channels_last`` for ``device`` without measuring: ``auto``
        is bf16 autocast where the device computes bf16 natively, fp32 elsewhere; channels_last
        where the family is measured faster with it on the CPU (``Family.channels_last``: the
        convolutional GANs, in fp32 and bf16 alike), never slower: docs/reference/performance.md.
        Under ``train.compile`` (``compiled``) no manual channels_last: inductor lays out
        convolutions itself, and a channels_last model crashes its convolution backward on CUDA.
        (On CUDA the trainer measures ``auto`` instead: ``training.tuning``.)"""
        native, why = native_bf16(device)
        reasons = []
        if precision == "auto":
            precision = "bf16" if native else "fp32"
            reasons.append(f"auto: {why}")
        elif precision == "bf16" and not native:
            reasons.append(f"{why}: emulated, expect it slower than fp32")
        if channels_last == "auto" and not compiled:
            channels_last = family.channels_last if family is not None else native and precision == "bf16"
            if family is not None:
                reasons.append(f"channels_last auto: {'measured faster' if channels_last else 'slower'} for "
                               f"{family.name}")
        elif compiled and channels_last:
            reasons.append(COMPILED_LAYOUT)
            channels_last = False
        chosen = cls(device, DTYPES[precision], bool(channels_last))
        chosen.note = chosen.name + (f" ({'; '.join(reasons)})" if reasons else "")
        return chosen

    @classmethod
    def candidates(cls, device: torch.device, precision: str, channels_last: bool | str,
                   compiled: bool = False) -> list["Precision"]:
        """What ``auto`` measures on ``device`` (CUDA): fp32 with TF32 and bf16 autocast (where
        native) when ``precision`` is auto, NCHW and channels_last where ``channels_last`` is auto (NCHW alone
        under ``train.compile``); a setting given fixes its part. The first is the reference
        (fp32/TF32, NCHW, where measured) that another must beat by more than noise."""
        dtypes = ["fp32", "bf16"] if precision == "auto" else [precision]
        if precision == "auto" and not native_bf16(device)[0]:
            dtypes = ["fp32"]
        layouts = [False] if compiled else [False, True] if channels_last == "auto" else [bool(channels_last)]
        tf32 = device.type == "cuda" and precision == "auto"  # a precision given is computed as given
        return [cls(device, DTYPES[dtype], layout, tf32=tf32) for dtype in dtypes for layout in layouts]

    @property
    def name(self) -> str:
        """e.g. ``bf16 + channels_last``, ``fp32/TF32``."""
        dtype = next(k for k, v in DTYPES.items() if v == self.dtype)
        dtype = "fp32/TF32" if dtype == "fp32" and self.tf32 else dtype
        return dtype + (" + channels_last" if self.channels_last else "")

    @property
    def slow(self) -> bool:
        """bf16 emulated on a device without native bf16."""
        return "emulated" in self.note

    def apply(self) -> None:
        """The process-wide backend settings this precision trains with, on CUDA: cuDNN's
        benchmark mode (fixed shapes: each convolution's fastest kernel, chosen once) and TF32
        for fp32 matrix products (``tf32``; cuDNN's convolutions use TF32 by torch's default)."""
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = self.tf32

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype else nullcontext()

    def module(self, module: nn.Module) -> nn.Module:
        """``module`` on the device, in channels_last when asked."""
        module = module.to(self.device)
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """A batch (B, C, H, W) on the device, in channels_last when asked."""
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images


@dataclass(frozen=True)
class Gallery:
    """A family's own picture for the sample gallery (e.g. a diffusion model's reverse process)."""

    title: str
    text: str
    images: torch.Tensor  # (N, C, H, W) in [-1, 1]
    columns: int


class ModelFamily:
    """Base class of the model families' implementations; see the module docstring.

    Args:
        config: the resolved config; the only source of hyperparameters (its family's own
            settings: ``config.family``).
        shape: (C, H, W) of the images.
        classes: the data set's class names in id order (a conditional model needs them).
        precision: device, autocast and memory format (default: fp32 on the CPU).
    """

    # optimizer -> the network it trains; each optimizer's settings are the config section of its name
    optimized: ClassVar[dict[str, str]] = {"optim_g": "generator"}

    def __init__(self, config: Config, shape: Sequence[int], classes: Sequence[str] = (),
                 precision: Precision | None = None):
        self.config, self.shape, self.classes = config, tuple(shape), tuple(classes)
        self.spec = families.family_of(config.model.arch)
        self.precision = precision or Precision()
        self.label = self._label_code() if config.model.conditional else None  # one-hot: no parameters
        self.networks = {key: self.precision.module(net) for key, net in self.build_networks().items()}
        self.generator = self.networks["generator"]
        self.averaged: nn.Module | None = None  # an average of the generator's weights (train.ema), samples come from it

    @property
    def state_keys(self) -> tuple[str, ...]:
        """The networks a checkpoint of this family must hold."""
        return tuple(self.networks)

    # --- what a family defines ------------------------------------------------------------
    def build_networks(self) -> dict[str, nn.Module]:
        """The networks by checkpoint key; ``generator`` maps (z (B, latent_dim), classes (B,) |
        None) to images (B, C, H, W) in [-1, 1]."""
        raise NotImplementedError

    def training_step(self, real: torch.Tensor, labels: torch.Tensor | None, ctx: Any) -> dict[str, torch.Tensor]:
        """Train on one batch (B, C, H, W) (with its class ids (B,)) through the trainer's step
        context ``ctx`` (``ctx.step(optimizer, loss)``, ``ctx.autocast()``, ``ctx.batch(x)``,
        ``ctx.index``: the 0-based global step, ``ctx.progress``: the share of training done).
        Returns the values of the schema's columns as 0-d tensors on the device (no host
        synchronisation)."""
        raise NotImplementedError

    def describe(self) -> Description:
        raise NotImplementedError

    def summary(self) -> str:
        """One line: the model and its sizes, for the trainer's first line."""
        raise NotImplementedError

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    latent_note = ""  # what the latent is, when it is not a GAN's z (shown by the latent report)

    def gallery(self, seed: int) -> list[Gallery]:
        """Pictures of this family's own for the sample gallery (none by default)."""
        return []

    def latent_generator(self) -> nn.Module:
        """The network for latent-space pictures (interpolations): nearby z give nearby images."""
        return self.sampler

    gradual: ClassVar[bool] = False  # samples in steps (a diffusion model): it has a reverse process to show

    def reverse_process(self, z: torch.Tensor, labels: torch.Tensor | None, frames: int) -> torch.Tensor:
        """(frames, N, C, H, W): snapshots from start noise ``z`` (N, latent_dim) to images, of a
        ``gradual`` family (none draws at once)."""
        raise NotImplementedError(f"{type(self).__name__} draws its samples at once: it has no reverse process")

    # --- shared ---------------------------------------------------------------------------
    def log_schema(self) -> LogSchema:
        return self.spec.log_schema(self.config)

    @property
    def sampler(self) -> nn.Module:
        """The network samples and scores come from: the weight average when there is one."""
        return self.averaged if self.averaged is not None else self.generator

    def average(self) -> nn.Module:
        """A frozen copy of the generator for the trainer's weight average (``averaged``)."""
        self.averaged = copy.deepcopy(self.generator).eval().requires_grad_(False)
        return self.averaged

    def train(self) -> None:
        for network in self.networks.values():
            network.train()

    def trained_classes(self) -> list[str]:
        """Names of the classes a conditional model was trained on (empty if unconditional)."""
        return [] if self.label is None else [self.label.names[i] for i in self.label.class_ids.tolist()]

    def default_labels(self, n: int) -> torch.Tensor | None:
        """(n,) the trained classes in turn (None if unconditional): a class-balanced batch."""
        return None if self.label is None else self.label.default_labels(n)

    def latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, latent_dim) standard normal latents on the CPU."""
        return torch.randn(n, self.latent_dim, generator=generator)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch: int = 128,
                 network: nn.Module | None = None) -> torch.Tensor:
        """Images (N, C, H, W) in [-1, 1] (float32, on the CPU) from latents (N, latent_dim)
        [and class ids (N,); default: the trained classes in turn], in eval mode without gradients,
        ``batch`` at a time (on a CPU core a DDPM samples 1.5x faster in batches of 128 than of
        500, a DCGAN as fast)."""
        network = network or self.sampler
        labels = self.default_labels(len(z)) if labels is None else labels
        device = self.precision.device
        out = []
        with eval_mode(network):
            for i in range(0, len(z), batch):
                y = None if labels is None else labels[i:i + batch].to(device)
                out.append(network(z[i:i + batch].to(device), y).float().cpu())
        return torch.cat(out)

    def sample(self, n: int, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images from fresh latents drawn with ``generator`` (seeded: repeatable)."""
        return self.generate(self.latents(n, generator), labels)

    def labels_of(self, name: int | str, n: int) -> torch.Tensor:
        """(n,) the id of one trained class, given by name or id.

        Raises:
            ConfigError: an unconditional model, or no such trained class (naming those there are).
        """
        if self.label is None:
            raise ConfigError("this model is unconditional: samples of a class need a run trained with "
                              "model.conditional: true")
        try:
            k = class_index(name, self.label.names, "class")
        except ConfigError:
            k = None
        if k not in self.label.class_ids.tolist():
            raise ConfigError(f"class: {name!r} is not a class this model was trained on "
                              f"(trained classes: {self.trained_classes()})")
        return torch.full((n,), k, dtype=torch.long)

    def state_dict(self) -> dict[str, Any]:
        """Its networks (and the generator's average) by checkpoint key."""
        state = {key: net.state_dict() for key, net in self.networks.items()}
        if self.averaged is not None:
            state["generator_ema"] = self.averaged.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], sampling_only: bool = False) -> None:
        """Load a checkpoint's networks; ``sampling_only`` takes the generator (and its average)
        alone, as an epoch snapshot holds them."""
        for key, net in self.networks.items():
            if key == "generator" or not sampling_only:
                net.load_state_dict(state[key])
        if "generator_ema" in state:
            (self.averaged or self.average()).load_state_dict(state["generator_ema"])

    def _label_code(self) -> LabelCode:
        """Class bookkeeping of a conditional model: the names, the trained classes."""
        if not self.classes:
            raise ConfigError("model.conditional needs the data set's classes (none were given)")
        kept = self.config.data.classes
        ids = None if kept is None else [class_index(c, self.classes, "data.classes") for c in kept]
        return LabelCode(self.classes, 0, ids)

    def label_codes(self, count: int) -> list[LabelCode | None]:
        """``count`` label codes for the networks (each its own embedding when model.embed_dim > 0);
        None for an unconditional model."""
        if self.label is None:
            return [None] * count
        return [LabelCode(self.classes, self.config.model.embed_dim, self.label.class_ids.tolist())
                for _ in range(count)]
