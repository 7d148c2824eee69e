"""One trainer for GANs and diffusion models: seeded, logged, sampled, checkpointed and resumable.

Per GAN iteration (Goodfellow et al. 2014; pytorch/examples dcgan): one generator pass, a D step
on the real batch and the detached fake batch, then a G step on the same fake batch. Per
diffusion iteration (Ho et al. 2020): one step on the MSE of the noise at random timesteps.
Statistics stay on the device and are read once per ``log_every`` steps, so logging costs
no per-step host synchronisation.
"""
from __future__ import annotations

import copy
import csv
import io
import pickle
import random
import time
import zipfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.utils import save_image
from tqdm import tqdm

from . import config as config_lib
from .config import Config, OptimConfig
from .data import ImageData, load_data
from .diffusion import diffusion_loss
from .latent import per_class
from .losses import GANLoss, gradient_penalty
from .models import build_models, count_parameters
from .rundir import DIFFUSION_STATS, GAN_STATS, RunDir, log_columns, write_atomic

CHECKPOINT_KEYS = ("config", "epoch", "step", "generator", "optim_g", "fixed_z", "rng")  # and a GAN's D
GAN_KEYS = ("discriminator", "optim_d")
SNAPSHOT_KEYS = ("config", "epoch", "step", "generator", "generator_ema", "image_shape", "classes")
# settings that may change between a checkpoint and its resumption without changing the run
RESUMABLE_CHANGES = {"train.epochs", "train.sample_every", "train.checkpoint_every", "train.log_every",
                     "train.device", "train.threads", "train.progress", "data.workers", "data.root",
                     "data.download"}


class TrainingError(RuntimeError):
    """Training stopped: non-finite loss, or a checkpoint that cannot be used."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("train.device is cuda but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: an epoch's shuffling and noise depend only on (seed, epoch),
    so a run resumed at an epoch boundary draws exactly what the uninterrupted run drew."""
    return (seed * 1_000_003 + epoch) % 2**63


def make_optimizer(params, c: OptimConfig) -> torch.optim.Optimizer:
    if c.name == "adam":
        return torch.optim.Adam(params, lr=c.lr, betas=c.betas, eps=c.eps, weight_decay=c.weight_decay)
    return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)


class Trainer:
    """Trains ``config``'s GAN into ``run_dir`` (log.csv, samples/, checkpoints/, metrics.json).

    Args:
        config: the resolved config; the only source of hyperparameters.
        run_dir: where the run's files go; created if missing.
        data: an already loaded data set (default: ``load_data(config)``).
    """

    def __init__(self, config: Config, run_dir: str | Path, data: ImageData | None = None):
        t = config.train
        self.config, self.run = config, RunDir(run_dir)
        self.device = resolve_device(t.device)
        if t.precision == "fp16" and self.device.type != "cuda":
            raise TrainingError(f"train.precision fp16 needs CUDA (device is {self.device}); use bf16")
        if t.threads:
            torch.set_num_threads(t.threads)
        seed_everything(t.seed)
        self.data = (data or load_data(config)).to(self.device)
        self.G, self.D = (m if m is None else m.to(self.device)
                          for m in build_models(config, self.data.shape[0], self.data.classes))
        self.diffusion = self.D is None
        self.stats = DIFFUSION_STATS if self.diffusion else GAN_STATS  # the columns of log.csv
        if t.channels_last:
            self.G, self.D = (m if m is None else m.to(memory_format=torch.channels_last) for m in (self.G, self.D))
        # samples and scores come from an average of G's weights when train.ema is on
        # (Yazici et al. 2019, https://arxiv.org/abs/1806.04498)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if t.ema else None
        self.opt_g = make_optimizer(self.G.parameters(), config.optim_g)
        self.opt_d = None if self.diffusion else make_optimizer(self.D.parameters(), config.optim_d)
        self.loss = GANLoss(config.loss)
        self.scaler = torch.amp.GradScaler("cuda", enabled=t.precision == "fp16")
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.precision)
        self.autocast = (torch.autocast(self.device.type, dtype=dtype) if dtype else nullcontext())
        self.fixed_z, self.fixed_y, self.grid_columns = fixed_noise(config, self.G.latent_dim, self.G.label)
        self.fixed_z = self.fixed_z.to(self.device)
        self.steps_per_epoch = len(self.data) // t.batch_size
        self.epoch = self.step = self.d_steps = 0
        self._g_stats = torch.zeros(2, device=self.device)  # loss_g, D(G(z)) of the latest G step
        self.seconds = 0.0  # training time over all sessions of this run

    def summary(self) -> str:
        """One line: data, model sizes, device, steps."""
        c, t = self.config, self.config.train
        shape = "x".join(map(str, self.data.shape))
        d = c.diffusion
        model = (f"ddpm U-Net {count_parameters(self.G):,} params | T {d.timesteps} {d.schedule}, "
                 f"{self.G.steps or d.timesteps} sampling steps" if self.diffusion else
                 f"{c.model.arch} G {count_parameters(self.G):,} D {count_parameters(self.D):,} params, "
                 f"z {c.model.latent_dim} | {c.loss.kind}")
        return (f"{c.data.name} {len(self.data)}x{shape} | {model}{' | conditional' if c.model.conditional else ''}"
                f"{f', EMA {t.ema}' if t.ema else ''} | "
                f"{self.device} {t.precision} {torch.get_num_threads()} threads | {t.epochs} epochs x "
                f"{self.steps_per_epoch} steps of {t.batch_size} = {t.epochs * self.steps_per_epoch} steps "
                f"| -> {self.run.root}")

    # --- one iteration -------------------------------------------------------------------
    def train_step(self, real: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """One D step on a real batch (B, C, H, W), then a G step on the same fake batch
        (every ``train.n_critic``-th D step). A conditional GAN makes its fakes of the real
        batch's classes ``labels`` (B,), and D judges each image with its class.

        Returns (7,) on the device: loss_d, loss_g, D(x), D(G(z)) in the D step, D(G(z)) in
        the G step (pytorch/examples' D_G_z1 / D_G_z2), real accuracy, fake accuracy. With
        n_critic > 1 the G values are those of the latest G step.
        """
        real = real.to(self.device, non_blocking=True)
        if self.config.train.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        y = labels.to(self.device, non_blocking=True) if self.config.model.conditional else None
        if self.diffusion:
            return self._denoising_step(real, y)
        self.d_steps += 1
        g_step = self.d_steps % self.config.train.n_critic == 0
        z = torch.randn(real.shape[0], self.config.model.latent_dim, device=self.device)
        with self.autocast, torch.set_grad_enabled(g_step):
            fake = self.G(z, y)
        loss_d, real_logits, fake_logits = self._d_step(real, fake.detach(), y)
        if g_step:
            self._g_stats = self._g_step(fake, y)
            if self.G_ema is not None:
                self._update_ema()
        with torch.no_grad():
            p_real, p_fake = self.loss.prob(real_logits), self.loss.prob(fake_logits)
            return torch.stack([loss_d.detach(), self._g_stats[0], p_real.mean(), p_fake.mean(),
                                self._g_stats[1], (p_real > 0.5).float().mean(), (p_fake <= 0.5).float().mean()])

    def _optimize(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def _denoising_step(self, real: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """One step of a diffusion model on the noise-prediction MSE; returns (1,): the loss."""
        with self.autocast:
            loss = diffusion_loss(self.G.unet, self.G.schedule, real, y, self.config.diffusion.p_uncond).float()
        self._optimize(self.opt_g, loss)
        if self.G_ema is not None:
            self._update_ema()
        return loss.detach()[None]

    def _d_step(self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        real, fake = self._instance_noise(real), self._instance_noise(fake)
        with self.autocast:
            real_logits, fake_logits = self.D(real, y).float(), self.D(fake, y).float()
            loss_d = self.loss.d_loss(real_logits, fake_logits)
        if self.config.loss.kind == "wgan-gp":
            penalty = gradient_penalty(lambda x: self.D(x, y), real, fake)
            loss_d = loss_d + self.config.loss.gp_weight * penalty
        self._optimize(self.opt_d, loss_d)
        return loss_d, real_logits.detach(), fake_logits.detach()

    def _g_step(self, fake: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """G step through the updated D; returns (2,): loss_g and D(G(z))."""
        self.D.requires_grad_(False)  # G's gradient flows through D; D's own weight grads are not needed
        with self.autocast:
            fake_logits = self.D(self._instance_noise(fake), y).float()
            loss_g = self.loss.g_loss(fake_logits)
        self._optimize(self.opt_g, loss_g)
        self.D.requires_grad_(True)
        return torch.stack([loss_g.detach(), self.loss.prob(fake_logits.detach()).mean()])

    def _instance_noise(self, x: torch.Tensor) -> torch.Tensor:
        """D's input with Gaussian noise whose std falls linearly from ``train.instance_noise`` to 0
        over the run (Sønderby et al. 2016, https://arxiv.org/abs/1610.04490): real and fake
        distributions overlap early, so D cannot separate them perfectly and G gets gradients."""
        t = self.config.train
        std = t.instance_noise * max(0.0, 1.0 - self.step / (t.epochs * self.steps_per_epoch))
        return x + std * torch.randn_like(x) if std > 0 else x

    @torch.no_grad()
    def _update_ema(self) -> None:
        # warm-up as in diffusers' EMAModel: early on the average follows the weights closely,
        # so a short run does not sample from weights still near their initialisation
        weight = 1.0 - min(self.config.train.ema, (1 + self.step) / (10 + self.step))
        for averaged, current in zip(self.G_ema.parameters(), self.G.parameters()):
            averaged.lerp_(current, weight)
        for averaged, current in zip(self.G_ema.buffers(), self.G.buffers()):
            averaged.copy_(current)  # BatchNorm statistics: the current ones

    # --- the loop --------------------------------------------------------------------------
    def fit(self, progress: bool | None = None) -> dict[str, Any]:
        """Train to ``train.epochs`` from the current epoch; returns the final metrics."""
        t = self.config.train
        self.run.root.mkdir(parents=True, exist_ok=True)
        self.run.samples.mkdir(exist_ok=True)
        self.run.checkpoints.mkdir(exist_ok=True)
        config_lib.save(self.config, self.run.config)
        _truncate_log(self.run.log, self.step)  # rows of an interrupted epoch (or run) are redone
        show = t.progress if progress is None else progress
        bar = tqdm(total=t.epochs * self.steps_per_epoch, initial=self.step, disable=not show,
                   unit="step", dynamic_ncols=True, mininterval=1.0)
        with bar:
            for epoch in range(self.epoch + 1, t.epochs + 1):
                start = time.perf_counter()
                self._train_epoch(epoch, bar)
                self.epoch, self.seconds = epoch, self.seconds + time.perf_counter() - start
                bar.write(self._epoch_line())
                if epoch % t.sample_every == 0 or epoch == t.epochs:
                    self.save_samples(self.run.sample_grid(epoch))
                if epoch % t.checkpoint_every == 0 or epoch == t.epochs:
                    self.save_checkpoint()
        return self._write_metrics()

    def _epoch_line(self) -> str:
        rows = [r for r in read_log(self.run.log) if r["epoch"] == self.epoch]
        mean = {k: np.mean([r[k] for r in rows]) for k in (*self.stats, "images_per_s")}
        figures = (f"loss {mean['loss']:.4f}" if self.diffusion else
                   f"loss_d {mean['loss_d']:.3f} loss_g {mean['loss_g']:.3f} D(x) {mean['d_real']:.2f} "
                   f"D(G(z)) {mean['d_fake']:.2f}")
        return (f"epoch {self.epoch}/{self.config.train.epochs}: {figures} "
                f"| {mean['images_per_s']:.0f} img/s, {self.seconds:.0f} s in all")

    def _train_epoch(self, epoch: int, bar: tqdm) -> None:
        t = self.config.train
        seed_everything(epoch_seed(t.seed, epoch))
        self.G.train()
        if self.D is not None:
            self.D.train()
        window, count, tick = torch.zeros(len(self.stats), device=self.device), 0, time.perf_counter()
        with self.run.log.open("a", newline="") as f:
            writer = csv.writer(f)
            if f.tell() == 0:
                writer.writerow(log_columns(self.stats))
            batches = self.data.batches(t.batch_size, epoch_seed(t.seed, epoch))
            for i, (real, labels) in enumerate(batches, start=1):
                window += self.train_step(real, labels)
                count, self.step = count + 1, self.step + 1
                bar.update()
                if self.step % t.log_every == 0 or i == self.steps_per_epoch:
                    row = self._log_row(writer, epoch, window / count, count * t.batch_size,
                                        time.perf_counter() - tick)
                    f.flush()
                    bar.set_postfix(epoch=epoch, **{k: f"{v:.3f}" for k, v in zip(self.stats[:2], row[2:4])})
                    window.zero_()
                    count, tick = 0, time.perf_counter()

    def _log_row(self, writer, epoch: int, means: torch.Tensor, images: int, seconds: float) -> list:
        values = means.tolist()  # the one host synchronisation per log_every steps
        row = [epoch, self.step, *values, images / max(seconds, 1e-9), time.time()]
        writer.writerow([epoch, self.step, *(f"{v:.6g}" for v in values), f"{row[-2]:.1f}", f"{row[-1]:.3f}"])
        if not all(np.isfinite(values)):
            last = self.run.last_checkpoint
            kept = f"the last good checkpoint is {last} (epoch {self.epoch})" if last.exists() \
                else "no checkpoint was written yet"
            losses = ", ".join(f"{k}={v}" for k, v in zip(self.stats[:2], values))
            raise TrainingError(f"loss became non-finite ({losses}) at "
                                f"epoch {epoch}, step {self.step}; training stopped, {kept}")
        return row

    # --- outputs ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] from latents (B, latent_dim) [and class ids (B,)],
        G (or its EMA) in eval mode."""
        generator = self.G_ema if self.G_ema is not None else self.G
        was_training = generator.training
        generator.eval()
        try:
            return generator(z.to(self.device), None if y is None else y.to(self.device)).float()
        finally:
            generator.train(was_training)

    def save_samples(self, path: Path) -> None:
        """The fixed-noise grid as a PNG (one row per class for a conditional GAN)."""
        images = self.generate(self.fixed_z, self.fixed_y)
        save_image(images, path, nrow=self.grid_columns, normalize=True, value_range=(-1, 1), padding=2)

    def save_checkpoint(self) -> Path:
        """Write checkpoints/last.pt atomically (and a G snapshot for this epoch)."""
        self.run.checkpoints.mkdir(parents=True, exist_ok=True)
        state = {
            "config": self.config.to_dict(), "epoch": self.epoch, "step": self.step,
            "generator": self.G.state_dict(), "optim_g": self.opt_g.state_dict(),
            "scaler": self.scaler.state_dict(), "fixed_z": self.fixed_z.cpu(), "rng": rng_state(),
            "image_shape": list(self.data.shape), "classes": list(self.data.classes), "seconds": self.seconds,
            "g_stats": self._g_stats.cpu(),
        }
        if self.D is not None:
            state.update(discriminator=self.D.state_dict(), optim_d=self.opt_d.state_dict())
        if self.G_ema is not None:
            state["generator_ema"] = self.G_ema.state_dict()
        _save_atomic(state, self.run.last_checkpoint)
        _save_atomic({k: v for k, v in state.items() if k in SNAPSHOT_KEYS},
                     self.run.snapshot(self.epoch))
        return self.run.last_checkpoint

    def resume(self) -> bool:
        """Continue from checkpoints/last.pt if it exists; returns whether it did.

        Raises:
            TrainingError: the checkpoint is corrupt, incomplete or from another config.
        """
        path = self.run.last_checkpoint
        if not path.exists():
            return False
        state = load_checkpoint(path, CHECKPOINT_KEYS + (() if self.diffusion else GAN_KEYS))
        _check_same_run(path, state["config"], self.config)
        self.G.load_state_dict(state["generator"])
        self.opt_g.load_state_dict(state["optim_g"])
        if self.D is not None:
            self.D.load_state_dict(state["discriminator"])
            self.opt_d.load_state_dict(state["optim_d"])
        self.scaler.load_state_dict(state.get("scaler", {}))
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state["generator_ema"])
        self.fixed_z = state["fixed_z"].to(self.device)
        self.epoch, self.step, self.seconds = state["epoch"], state["step"], state.get("seconds", 0.0)
        self.d_steps = self.step  # one D step per training step
        self._g_stats = state.get("g_stats", self._g_stats.cpu()).to(self.device)
        set_rng_state(state["rng"])
        return True

    def _write_metrics(self) -> dict[str, Any]:
        rows = read_log(self.run.log)
        last = [r for r in rows if r["epoch"] == self.epoch]
        mean = lambda key, rs: float(np.mean([r[key] for r in rs])) if rs else float("nan")
        if self.diffusion:
            figures = {"final_loss": mean("loss", last), "mean_loss": mean("loss", rows)}
        else:
            figures = {"final_loss_d": mean("loss_d", last), "final_loss_g": mean("loss_g", last),
                       "mean_loss_d": mean("loss_d", rows), "mean_loss_g": mean("loss_g", rows),
                       "final_acc_real": mean("acc_real", last), "final_acc_fake": mean("acc_fake", last),
                       "discriminator_params": count_parameters(self.D)}
        return self.run.update_metrics(training={
            "epochs": self.epoch, "steps": self.step, "seconds": round(self.seconds, 1), **figures,
            "images_per_s": mean("images_per_s", last), "config_hash": self.config.hash(),
            "generator_params": count_parameters(self.G),
        })


def train(config: Config, run_dir: str | Path, resume: bool = True, progress: bool | None = None,
          log=print) -> dict[str, Any]:
    """Train ``config`` into ``run_dir``, resuming from its last checkpoint when ``resume``.

    Raises:
        TrainingError: ``run_dir`` holds a checkpoint but ``resume`` is false, or training failed.
    """
    trainer = Trainer(config, run_dir)
    log(trainer.summary())
    if not resume and trainer.run.last_checkpoint.exists():
        raise TrainingError(f"{run_dir} already holds a run ({trainer.run.last_checkpoint}); "
                            "resume it (--resume) or choose another output folder")
    if resume and trainer.resume():
        log(f"resumed from {trainer.run.last_checkpoint} at epoch {trainer.epoch}, step {trainer.step}")
    elif resume:
        log(f"no checkpoint in {trainer.run.checkpoints}: starting from scratch")
    return trainer.fit(progress)


def load_generator(checkpoint: str | Path, device: str = "cpu") -> tuple[nn.Module, Config]:
    """The generator of a checkpoint (last.pt or a snapshot), in eval mode, and its config.

    With ``train.ema`` on, this is the weight average, the generator samples are drawn from.
    """
    state = load_checkpoint(checkpoint, keys=("config", "generator", "image_shape"))
    config = config_lib.from_dict(state["config"], str(checkpoint))
    generator, _ = build_models(config, state["image_shape"][0], state.get("classes", ()))
    generator.load_state_dict(state.get("generator_ema", state["generator"]))
    return generator.to(device).eval(), config


def fixed_noise(config: Config, nz: int, label: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """The latents (of ``nz`` numbers) and classes (None if unconditional) of the fixed sample
    grid, drawn from ``train.seed`` alone, and its number of columns.

    Unconditional: ``train.num_samples`` latents in a square grid. Conditional (``label``, the
    generator's LabelCode): one row per trained class, the same latents in every row (so a
    column shows one z across classes).
    """
    t = config.train
    noise = torch.Generator().manual_seed(t.seed)
    if label is None:
        columns = int(np.ceil(np.sqrt(t.num_samples)))
        return torch.randn(t.num_samples, nz, generator=noise), None, columns
    classes = label.class_ids.cpu()
    columns = int(np.ceil(t.num_samples / len(classes)))
    return *per_class(torch.randn(columns, nz, generator=noise), classes), columns


def read_log(path: str | Path) -> list[dict[str, float]]:
    """Rows of a log.csv as dicts of numbers."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows written after the checkpoint (the interrupted epoch is trained again)."""
    if not path.exists():
        return
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    kept = [rows[0]] + [r for r in rows[1:] if int(r[1]) <= step]
    out = io.StringIO()
    csv.writer(out).writerows(kept)
    write_atomic(path, out.getvalue().encode())


# --- checkpoints ---------------------------------------------------------------------------
def _save_atomic(obj: dict[str, Any], path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | Path, keys: tuple[str, ...] = CHECKPOINT_KEYS) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check it holds ``keys``.

    Raises:
        TrainingError: the file is truncated, corrupt or not a gan_core checkpoint.
    """
    if not Path(path).is_file():
        raise TrainingError(f"no checkpoint at {path}: is {Path(path).parent.parent} a trained run?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        first_line = str(err).partition("\n")[0][:200]
        reason = f"{type(err).__name__}: {first_line}"
        raise TrainingError(f"{path} is corrupt or incomplete and was not used ({reason}); "
                            "delete it to train from scratch") from None
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if missing:
        raise TrainingError(f"{path} is not a complete gan_core checkpoint (missing {', '.join(missing)})")
    return state


def _check_same_run(path: Path, saved: dict[str, Any], config: Config) -> None:
    try:  # a checkpoint from before a key existed holds that key's default
        saved = config_lib.from_dict(saved, str(path)).to_dict()
    except config_lib.ConfigError:
        pass  # a key since removed: compare as saved, the difference is then named below
    old = config_lib.flatten(saved)
    new = config_lib.flatten(config.to_dict())
    changed = sorted(k for k in old.keys() | new.keys()
                     if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES
                     and not k.startswith("eval."))  # scoring settings do not touch training
    if changed:
        diffs = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise TrainingError(f"{path} was trained with another config ({diffs}); "
                            "use a new output folder for a new config")


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states, as tensors and plain types (``weights_only``-safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x
