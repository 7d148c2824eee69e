"""What every model family is: the small interface the trainer, the scorer and the notebooks use.

A family (a GAN of some networks, a diffusion model) owns its networks and optimizers and knows
how one batch trains them, the way lucidrains' ``GaussianDiffusion.forward`` returns its loss
so that its trainer is one line. The trainer, the evaluation and the reports call only:

    family.training_step(real, labels, step, progress) -> {log column: value}
    family.sample(n, labels=None, generator=None) -> images (n, C, H, W) in [-1, 1]
    family.generate(z, labels=None) -> images from given latents
    family.state_dict() / family.load_state_dict(state)   (checkpoints)
    family.describe() -> Description                       (the architecture report)

Families register by ``model.arch`` in ``gan_core.models``.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import Config, ConfigError, OptimConfig, class_index
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


def make_optimizer(params, c: OptimConfig) -> torch.optim.Optimizer:
    if c.name == "adam":
        return torch.optim.Adam(params, lr=c.lr, betas=c.betas, eps=c.eps, weight_decay=c.weight_decay)
    return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that compute bf16 natively
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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
    """How a family computes: device, autocast dtype (None: fp32), memory format, and the gradient
    scaler that fp16 needs (a no-op otherwise). ``note`` says what was picked and why."""

    def __init__(self, device: torch.device | str = "cpu", dtype: torch.dtype | None = None,
                 channels_last: bool = False, note: str = ""):
        self.device, self.dtype, self.channels_last = torch.device(device), dtype, channels_last
        self.scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        self.note = note or self.name

    @classmethod
    def choose(cls, device: torch.device, precision: str, channels_last: bool | str) -> "Precision":
        """``train.precision``/``train.channels_last`` for ``device``: ``auto`` is bf16 autocast +
        channels_last where the device computes bf16 natively, fp32 elsewhere (never slower:
        measured for every family in README, Performance)."""
        native, why = native_bf16(device)
        if precision == "auto":
            precision = "bf16" if native else "fp32"
            reason = f"auto: {why}"
        elif precision == "bf16" and not native:
            reason = f"{why}: emulated, expect it slower than fp32"
        else:
            reason = ""
        if channels_last == "auto":  # measured faster with bf16 on such devices; fp32 keeps its layout
            channels_last = native and precision == "bf16"
        chosen = cls(device, DTYPES[precision], bool(channels_last))
        chosen.note = chosen.name + (f" ({reason})" if reason else "")
        return chosen

    @property
    def name(self) -> str:
        """e.g. ``bf16 + channels_last``."""
        dtype = next(k for k, v in DTYPES.items() if v == self.dtype)
        return dtype + (" + channels_last" if self.channels_last else "")

    @property
    def slow(self) -> bool:
        """bf16 emulated on a device without native bf16."""
        return "emulated" in self.note

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

    def step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """One optimizer step on ``loss`` (scaled under fp16)."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()


class EMA:
    """An exponential moving average of a network's weights: samples and scores come from it
    when ``train.ema`` > 0 (Yazici et al. 2019, https://arxiv.org/abs/1806.04498). Warm-up as in
    diffusers' EMAModel: early on the average follows the weights closely, so a short run does
    not sample from weights still near their initialisation."""

    def __init__(self, network: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(network).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module, step: int) -> None:
        """Move the average towards ``network`` after its update at (0-based) ``step``."""
        weight = 1.0 - min(self.decay, (1 + step) / (10 + step))
        for averaged, current in zip(self.module.parameters(), network.parameters()):
            averaged.lerp_(current, weight)
        for averaged, current in zip(self.module.buffers(), network.buffers()):
            averaged.copy_(current)  # BatchNorm statistics: the current ones


@dataclass(frozen=True)
class Panel:
    """A figure of log columns in the loss analysis: its title, columns and y-axis label."""

    title: str
    columns: tuple[str, ...]
    ylabel: str
    probability: bool = False  # values in [0, 1]: drawn with the 0.5 line and a fixed range


@dataclass(frozen=True)
class LogSchema:
    """The columns a family's ``training_step`` logs (log.csv, after epoch and step), their
    names in reports, which of them are losses, and the further panels to plot."""

    columns: tuple[str, ...]
    labels: dict[str, str]
    losses: tuple[str, ...]
    panels: tuple[Panel, ...] = ()
    last_epoch: tuple[str, ...] = ()  # columns summarised per run beside the losses (final_*)

    def label(self, column: str) -> str:
        return self.labels.get(column, column)


@dataclass(frozen=True)
class Network:
    """One network of a family for the architecture report: layer rows (``layer_table``) and
    the labels of its two ends."""

    title: str
    rows: list[dict[str, Any]]
    input_label: str
    output_label: str


@dataclass(frozen=True)
class Description:
    """A family in words (markdown) and its networks, for the architecture report."""

    text: str
    networks: list[Network] = field(default_factory=list)


@dataclass(frozen=True)
class Gallery:
    """A family's own picture for the sample gallery (e.g. a diffusion model's reverse process)."""

    title: str
    text: str
    images: torch.Tensor  # (N, C, H, W) in [-1, 1]
    columns: int


class ModelFamily:
    """Base class of the model families; see the module docstring for the interface.

    Args:
        config: the resolved config; the only source of hyperparameters.
        shape: (C, H, W) of the images.
        classes: the data set's class names in id order (a conditional model needs them).
        precision: device, autocast and memory format (default: fp32 on the CPU).
    """

    archs: ClassVar[tuple[str, ...]] = ()  # the model.arch names this family builds
    # optimizer -> the network it trains; each optimizer's settings are the config section of its name
    optimized: ClassVar[dict[str, str]] = {"optim_g": "generator"}

    def __init__(self, config: Config, shape: Sequence[int], classes: Sequence[str] = (),
                 precision: Precision | None = None):
        self.config, self.shape, self.classes = config, tuple(shape), tuple(classes)
        self.precision = precision or Precision()
        self.label = self._label_code() if config.model.conditional else None  # one-hot: no parameters
        self.networks = {key: self.precision.module(net) for key, net in self.build_networks().items()}
        self.generator = self.networks["generator"]
        self.ema = EMA(self.generator, config.train.ema) if config.train.ema else None
        self.optimizers = {key: make_optimizer(self.networks[net].parameters(), getattr(config, key))
                           for key, net in self.optimized.items()}

    @property
    def state_keys(self) -> tuple[str, ...]:
        """What a checkpoint of this family must hold."""
        return (*self.networks, *self.optimizers)

    # --- what a family defines ------------------------------------------------------------
    @classmethod
    def check(cls, config: Config, source: str) -> None:
        """Refuse settings this family cannot build (e.g. image sizes), naming ``source``."""

    @classmethod
    def log_schema(cls, config: Config) -> LogSchema:
        raise NotImplementedError

    def build_networks(self) -> dict[str, nn.Module]:
        """The networks by checkpoint key; ``generator`` maps (z (B, latent_dim), classes (B,) |
        None) to images (B, C, H, W) in [-1, 1]."""
        raise NotImplementedError

    def training_step(self, real: torch.Tensor, labels: torch.Tensor | None, step: int,
                      progress: float) -> dict[str, torch.Tensor]:
        """Train on one batch (B, C, H, W) (with its class ids (B,)); ``step`` is the 0-based
        global step, ``progress`` the share of training done before it. Returns the values of
        ``log_schema().columns`` as 0-d tensors on the device (no host synchronisation)."""
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

    # --- shared ---------------------------------------------------------------------------
    @property
    def sampler(self) -> nn.Module:
        """The network samples and scores come from: the weight average when train.ema is on."""
        return self.ema.module if self.ema is not None else self.generator

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
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch: int = 500,
                 network: nn.Module | None = None) -> torch.Tensor:
        """Images (N, C, H, W) in [-1, 1] (float32, on the CPU) from latents (N, latent_dim)
        [and class ids (N,); default: the trained classes in turn], in eval mode without gradients."""
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
        """Networks, optimizers, EMA and scaler by checkpoint key."""
        state = {key: net.state_dict() for key, net in self.networks.items()}
        state.update({key: opt.state_dict() for key, opt in self.optimizers.items()})
        state["scaler"] = self.precision.scaler.state_dict()
        if self.ema is not None:
            state["generator_ema"] = self.ema.module.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], sampling_only: bool = False) -> None:
        """Load a checkpoint's state; ``sampling_only`` takes the generator (and its EMA) alone,
        as an epoch snapshot holds them."""
        for key, net in self.networks.items():
            if key == "generator" or not sampling_only:
                net.load_state_dict(state[key])
        if self.ema is not None:
            self.ema.module.load_state_dict(state.get("generator_ema", state["generator"]))
        if sampling_only:
            return
        for key, opt in self.optimizers.items():
            opt.load_state_dict(state[key])
        self.precision.scaler.load_state_dict(state.get("scaler", {}))

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
