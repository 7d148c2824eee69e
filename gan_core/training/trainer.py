"""The trainer: one loop for every model family, seeded, logged, sampled, checkpointed, resumable.

It knows nothing of GANs or diffusion: per batch it calls ``family.training_step`` with its
step context (``step.StepContext``: optimizers, precision, scaling, EMA, the learning rate's
decay), which returns the values to log (the family's ``LogSchema``). Statistics stay on the
device and are read once per ``log_every`` steps, so logging costs no per-step host
synchronisation. The run folder is the contract with everything after training: besides the
log, grids and checkpoints, the trainer writes ``family.json`` (what a reader needs to know of
the family: its log schema, kind, classes, grid layout, evaluator) for readers without torch.
"""
from __future__ import annotations

import contextlib
import csv
import io
import itertools
import random
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm  # in JupyterLab: the notebook's live bar (ipywidgets)

from .. import config as config_lib
from .. import evaluators, families, grids, models
from ..config import Config
from ..data import ImageData, load_data
from ..models import CheckpointError, ModelFamily, count_parameters
from ..models.checkpoint import write_checkpoint
from ..rundir import RunDir, write_atomic, write_json
from . import state as state_lib
from .board import Board
from .state import TrainingError
from .step import StepContext
from .tuning import choose_precision

# snapshots hold what scores and samples need, not what resuming needs
SNAPSHOT_KEYS = ("config", "epoch", "step", "generator", "generator_ema", "image_shape", "classes", "seconds")


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


def log_columns(config: Config) -> tuple[str, ...]:
    """The header of a run's log.csv."""
    return ("epoch", "step", *families.family_of(config.model.arch).log_schema(config).columns, "images_per_s",
            "time_s")


class Trainer:
    """Trains ``config``'s model into ``run_dir`` (log.csv, samples/, checkpoints/, metrics.json).

    Args:
        config: the resolved config; the only source of hyperparameters.
        run_dir: where the run's files go; created if missing.
        data: an already loaded data set (default: ``load_data(config)``).
    """

    def __init__(self, config: Config, run_dir: str | Path, data: ImageData | None = None):
        t = config.train
        self.config, self.run = config, RunDir(run_dir)
        config_lib.check_installed(config, f"the config of {self.run.root}")
        self.device = resolve_device(t.device)
        if t.precision == "fp16" and self.device.type != "cuda":
            raise TrainingError(f"train.precision fp16 needs CUDA (device is {self.device}); use bf16")
        if t.threads:
            torch.set_num_threads(t.threads)
        seed_everything(t.seed)
        self.data = (data or load_data(config)).to(self.device)
        self.precision = choose_precision(config, self.data.shape, self.data.classes, self.device)
        self.precision.apply()
        if self.precision.slow:
            warnings.warn(f"train.precision bf16 on {self.device}: {self.precision.note}", stacklevel=2)
        self.family: ModelFamily = models.build(config, self.data.shape, self.data.classes, self.precision)
        self.schema = self.family.log_schema()
        self.fixed_z, self.fixed_y, self.grid_columns = fixed_noise(config, self.family)
        self.steps_per_epoch = len(self.data) // t.batch_size
        if self.steps_per_epoch == 0:  # a full batch is one step; a smaller data set makes none
            raise TrainingError(f"train.batch_size = {t.batch_size} is larger than the data ({len(self.data)} "
                                f"images of {config.data.name} after data.subset/classes): an epoch would make "
                                f"no step; use train.batch_size <= {len(self.data)}")
        self.total_steps = t.steps or t.epochs * self.steps_per_epoch  # train.steps: a budget, the last epoch in part
        self.last_epoch = -(-self.total_steps // self.steps_per_epoch)
        self.ctx = StepContext(self.family, config, self.precision, self.total_steps)
        if t.compile:  # in place: the state dicts keep their keys
            for network in self.family.networks.values():
                network.compile()
        self.epoch = self.step = 0
        self.seconds = 0.0  # training time over all sessions of this run
        self.board: Board | None = None  # train.tensorboard: opened by fit(), where the run continues

    def summary(self) -> str:
        """One line: data, model sizes, device, steps."""
        c, t = self.config, self.config.train
        shape = "x".join(map(str, self.data.shape))
        if self.data.images is not None and not self.data.on_device:
            shape += f" (held on the host: too large for {self.device})"
        average = f", EMA {t.ema}" if t.ema else f", EMA half-life {t.ema_halflife:g} of the images" if t.ema_halflife else ""
        return (f"{c.data.name} {len(self.data)}x{shape} | {self.family.summary()}"
                f"{' | conditional' if c.model.conditional else ''}{average}"
                f"{f', lr {t.lr_decay} to 0' if t.lr_decay != 'none' else ''} | "
                f"{self.device} {self.precision.note} {torch.get_num_threads()} threads | {self.last_epoch} epochs x "
                f"{self.steps_per_epoch} steps of {t.batch_size} = {self.total_steps} steps")

    def train_step(self, real: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """One step of the family on a batch; returns the logged values (k,) on the device."""
        self.ctx.begin(self.step)
        values = self.family.training_step(real, labels, self.ctx)
        return torch.stack([values[k] for k in self.schema.columns])

    # --- the loop --------------------------------------------------------------------------
    def fit(self, progress: bool | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
        """Train to ``train.epochs`` (or ``train.steps``) from the current step; returns the final metrics."""
        t = self.config.train
        for folder in (self.run.root, self.run.samples, self.run.checkpoints):
            folder.mkdir(parents=True, exist_ok=True)
        config_lib.save(self.config, self.run.config, f"train.precision {t.precision}, channels_last "
                        f"{t.channels_last}: {self.precision.note}, {torch.get_num_threads()} threads")
        write_json(self.run.family_file, self.family_record())
        _truncate_log(self.run.log, self.step)  # rows of an interrupted epoch (or run) are redone
        show = t.progress if progress is None else progress
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not show,
                   unit="step", dynamic_ncols=True, mininterval=1.0)
        begun = self.seconds  # of an earlier session, when resumed
        if t.tensorboard and self.step < self.total_steps:  # (a finished run's train() trains nothing)
            self.board = Board(self.run.tensorboard, {k: self.family.spec.tag(k, self.schema) for k in self.schema.columns},
                               self.step)
        with bar, contextlib.closing(self.board) if self.board else contextlib.nullcontext(), \
                _interrupt_between_steps() as self.interrupted:
            for epoch in range(self.epoch + 1, self.last_epoch + 1):
                start, first = time.perf_counter(), (epoch - 1) * self.steps_per_epoch
                try:
                    self._train_epoch(epoch, bar, self.step - first, min(self.steps_per_epoch, self.total_steps - first))
                except KeyboardInterrupt:  # Ctrl-C, a kernel's stop button: keep what was trained
                    self._save_interrupted(start, log)
                    raise
                self.epoch, self.seconds = epoch, self.seconds + time.perf_counter() - start
                (bar.write if show else log)(self._epoch_line())
                if epoch % t.sample_every == 0 or epoch == self.last_epoch:
                    self.save_samples(self.run.sample_grid(epoch))
                if epoch % t.checkpoint_every == 0 or epoch == self.last_epoch:
                    self.save_checkpoint()
        return self._write_metrics(self.seconds - begun)

    def _save_interrupted(self, start: float, log: Callable[[str], None]) -> None:
        """A checkpoint of an epoch interrupted part-way (last.pt only, no epoch snapshot): the
        run resumes at that step, with the RNG states of that moment, so its weights match an
        uninterrupted run's (only the log row in progress restarts)."""
        if self.step == self.epoch * self.steps_per_epoch:
            return  # nothing trained since the last checkpoint
        self.seconds += time.perf_counter() - start
        state_lib.write_last(self.run, self.checkpoint_state())
        log(f"interrupted at step {self.step} of epoch {self.epoch + 1}: saved {self.run.last_checkpoint}; "
            "train again with resume to continue from there")

    def _epoch_line(self) -> str:
        rows = [r for r in read_log(self.run.log) if r["epoch"] == self.epoch]
        mean = {k: np.mean([r[k] for r in rows]) for k in (*self.schema.columns, "images_per_s")}
        shown = self.schema.losses + next((p.columns for p in self.schema.panels), ())
        figures = " ".join(f"{k} {mean[k]:.4g}" for k in shown)
        return (f"epoch {self.epoch}/{self.last_epoch}: {figures} "
                f"| {mean['images_per_s']:.0f} img/s, {self.seconds:.0f} s in all")

    def _train_epoch(self, epoch: int, bar: tqdm, start_at: int = 0, stop_at: int | None = None) -> None:
        """One epoch, from its batch ``start_at`` (> 0: an epoch interrupted part-way, resumed
        with the RNG states saved at that step) to ``stop_at`` (the budget of ``train.steps``)."""
        t = self.config.train
        if not start_at:
            seed_everything(epoch_seed(t.seed, epoch))
        self.family.train()
        columns = self.schema.columns
        window, count, tick = torch.zeros(len(columns), device=self.device), 0, time.perf_counter()
        with self.run.log.open("a", newline="") as f:
            writer = csv.writer(f)
            if f.tell() == 0:
                writer.writerow(log_columns(self.config))
            stop_at = stop_at or self.steps_per_epoch
            batches = itertools.islice(self.data.batches(t.batch_size, epoch_seed(t.seed, epoch)), start_at, stop_at)
            for i, (real, labels) in enumerate(batches, start=start_at + 1):
                window += self.train_step(real, labels)
                count, self.step = count + 1, self.step + 1
                bar.update()
                if self.interrupted():  # a step is never cut in half: weights, step and RNG agree
                    raise KeyboardInterrupt("SIGINT")
                if self.step % t.log_every == 0 or i == stop_at:
                    row = self._log_row(writer, epoch, window / count, count * t.batch_size,
                                        time.perf_counter() - tick)
                    f.flush()
                    bar.set_postfix(epoch=epoch, **{k: f"{v:.3f}" for k, v in zip(self.schema.losses, row[2:])})
                    window.zero_()
                    count, tick = 0, time.perf_counter()

    def _log_row(self, writer, epoch: int, means: torch.Tensor, images: int, seconds: float) -> list:
        values = means.tolist()  # the one host synchronisation per log_every steps
        row = [epoch, self.step, *values, images / max(seconds, 1e-9), time.time()]
        writer.writerow([epoch, self.step, *(f"{v:.6g}" for v in values), f"{row[-2]:.1f}", f"{row[-1]:.3f}"])
        if self.board:
            self.board.row(self.step, dict(zip(self.schema.columns, values)), row[-2])
        if not all(np.isfinite(values)):
            last = self.run.last_checkpoint
            kept = f"the last good checkpoint is {last} (epoch {self.epoch})" if last.exists() \
                else "no checkpoint was written yet"
            losses = ", ".join(f"{k}={v}" for k, v in zip(self.schema.columns, values) if k in self.schema.losses)
            raise TrainingError(f"loss became non-finite ({losses}) at "
                                f"epoch {epoch}, step {self.step}; training stopped, {kept}")
        return row

    # --- outputs ---------------------------------------------------------------------------
    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] from latents (B, latent_dim) [and class ids (B,)],
        from the sampling weights (the EMA when on), in eval mode."""
        return self.family.generate(z, y)

    def save_samples(self, path: Path) -> None:
        """The fixed-noise grid as a PNG (one row per class for a conditional model)."""
        images = self.generate(self.fixed_z, self.fixed_y)
        save_grid(images, path, self.grid_columns)
        if self.board:
            self.board.grid(self.step, images, self.grid_columns)

    def family_record(self) -> dict[str, Any]:
        """family.json: what a reader of the run folder needs to know of its family, without torch."""
        spec = self.family.spec
        return {"arch": spec.arch, "name": spec.name, "kind": spec.kind, "log": self.schema.to_dict(),
                "tags": {key: spec.tag(key, self.schema) for key in self.schema.columns},
                "classes": list(self.data.classes), "trained_classes": self.family.trained_classes(),
                "image_shape": list(self.data.shape), "latent_dim": self.family.latent_dim,
                "epochs": self.last_epoch, "steps": self.total_steps,
                "latent_note": self.family.latent_note,
                "grid": {"columns": self.grid_columns, "rows": self.family.trained_classes() or None},
                "evaluator": evaluators.described(self.config)}

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything a resumed run needs, and what the reports read back."""
        return {"config": self.config.to_dict(), "epoch": self.epoch, "step": self.step,
                **self.family.state_dict(), **self.ctx.state_dict(), "fixed_z": self.fixed_z.cpu(),
                "rng": state_lib.rng_state(),
                "image_shape": list(self.data.shape), "classes": list(self.data.classes), "seconds": self.seconds}

    def save_checkpoint(self) -> Path:
        """The epoch's generator snapshot, then checkpoints/last.pt (the one before it kept as
        previous.pt), each written atomically: a kill at any moment leaves a readable checkpoint
        and never loses a snapshot."""
        state = self.checkpoint_state()
        self.run.checkpoints.mkdir(parents=True, exist_ok=True)
        write_checkpoint({k: v for k, v in state.items() if k in SNAPSHOT_KEYS},
                                           self.run.snapshot(self.epoch))
        state_lib.write_last(self.run, state)
        return self.run.last_checkpoint

    def resume(self, log: Callable[[str], None] = print) -> bool:
        """Continue from the newest readable full checkpoint (last.pt, else previous.pt); returns
        whether there was one.

        Raises:
            TrainingError: the checkpoints are unreadable or from another config.
        """
        found = state_lib.newest_checkpoint(self.run, self.family.state_keys + self.ctx.state_keys, log)
        if found is None:
            return False
        path, state = found
        state_lib.check_same_run(path, state["config"], self.config)
        self.family.load_state_dict(state)
        self.ctx.load_state_dict(state)
        if state["fixed_z"].shape == self.fixed_z.shape:  # a grid laid out otherwise by older code: drawn anew
            self.fixed_z = state["fixed_z"].to(self.device)
        self.epoch, self.step, self.seconds = state["epoch"], state["step"], state.get("seconds", 0.0)
        state_lib.set_rng_state(state["rng"])
        self.resumed_from = path
        return True

    def _write_metrics(self, session: float) -> dict[str, Any]:
        """metrics.json's training section; ``session``: the seconds this call of fit trained
        (``seconds`` counts every session of the run)."""
        rows = read_log(self.run.log)
        last = [r for r in rows if r["epoch"] == self.epoch]
        mean = lambda key, rs: float(np.mean([r[key] for r in rs])) if rs else None
        figures = {}
        for key in self.schema.losses:
            figures.update({f"final_{key}": mean(key, last), f"mean_{key}": mean(key, rows)})
        figures.update({f"final_{key}": mean(key, last) for key in self.schema.last_epoch})
        params = {f"{name}_params": count_parameters(net) for name, net in self.family.networks.items()}
        return self.run.update_metrics(training={
            "epochs": self.epoch, "steps": self.step, "total_steps": self.total_steps, "seconds": round(self.seconds, 1),
            "session_seconds": round(session, 1), **figures,
            "images_per_s": mean("images_per_s", last), "config_hash": self.config.hash(), **params,
            "precision": self.precision.note, "threads": torch.get_num_threads()})


def train(config: Config, run_dir: str | Path, resume: bool = True, progress: bool | None = None,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``config`` into ``run_dir``, resuming from its last checkpoint when ``resume``.

    Raises:
        TrainingError: ``run_dir`` holds a checkpoint but ``resume`` is false, or training failed.
    """
    trainer = Trainer(config, run_dir)
    log(f"{trainer.summary()} | -> {run_dir}")
    if not resume and state_lib.has_checkpoint(trainer.run):
        raise TrainingError(f"{run_dir} already holds a run ({trainer.run.last_checkpoint}); "
                            "resume it (--resume) or choose another output folder")
    if resume and trainer.resume(log):
        log(f"resumed from {trainer.resumed_from} at epoch {trainer.epoch}, step {trainer.step}")
    elif resume:
        log(f"no checkpoint in {trainer.run.checkpoints}: starting from scratch")
    return trainer.fit(progress, log)


@contextlib.contextmanager
def _interrupt_between_steps() -> Iterator[Callable[[], bool]]:
    """While training: Ctrl-C (or a kernel's stop button, which sends SIGINT) is noted, and the
    loop stops after the step under way; a second one interrupts at once. Off the main thread
    (where signals cannot be caught) or where SIGINT is ignored on purpose, nothing changes."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield lambda: False
        return
    hit: list[int] = []

    def note(signum: int, frame: Any) -> None:
        hit.append(signum)
        signal.signal(signal.SIGINT, restore)  # a second Ctrl-C stops at once

    previous = signal.signal(signal.SIGINT, note)
    restore = signal.default_int_handler if previous is None else previous  # None: not set from Python
    try:
        yield lambda: bool(hit)
    finally:
        signal.signal(signal.SIGINT, restore)


def fixed_noise(config: Config, family: ModelFamily) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """The latents and classes (None if unconditional) of the fixed sample grid, drawn from
    ``train.seed`` alone, and its number of columns, laid out by the family (``Family.grid``).

    Unconditional: ``train.num_samples`` latents. Conditional: one row per trained class, the
    same latents in every row (a column shows one z across classes).
    """
    t = config.train
    noise = torch.Generator().manual_seed(t.seed)
    classes = family.label.class_ids.cpu() if family.label is not None else None
    _, columns = family.spec.grid(t.num_samples, 0 if classes is None else len(classes))
    if classes is None:
        return family.latents(t.num_samples, noise), None, columns
    z = family.latents(columns, noise)
    return z.repeat(len(classes), 1), classes.repeat_interleave(len(z)), columns


def save_grid(images: torch.Tensor, path: str | Path, columns: int) -> None:
    """Images (N, C, H, W) in [-1, 1] as a PNG grid of ``columns``, written atomically."""
    write_atomic(path, grids.png(images, columns))


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


__all__ = ["CheckpointError", "Trainer", "TrainingError", "epoch_seed", "fixed_noise", "log_columns", "read_log",
           "resolve_device", "save_grid", "seed_everything", "train"]
