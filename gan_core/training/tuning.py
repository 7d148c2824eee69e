"""``train.precision`` and ``train.channels_last`` ``auto`` on CUDA, chosen by measurement.

On an H200 the CPU's rule (bf16 + channels_last where bf16 is native) was slower than fp32 for
both DCGANs (issue 34), and which is faster depends on the model and the GPU. So on CUDA the
trainer times a few training steps of each candidate (``Precision.candidates``: fp32 with TF32
and bf16 autocast, NCHW and channels_last, cuDNN's benchmark mode on), trains with the fastest,
and says so with the figures::

    fp32/TF32 (auto, measured on NVIDIA H200: fp32/TF32 1.70 ms, bf16 2.10 ms, ... per step: fp32/TF32)

A candidate replaces the reference (the first: fp32/TF32, NCHW) only when it is faster by more
than ``NOISE``, so the choice is never slower than fp32 beyond the timing's noise. The figures
are measured once per model shape, device and torch version and kept in
``eval.cache_dir``/precision.json; a later run of the same shape reads them. Elsewhere (the CPU,
Apple's MPS) ``auto`` is ``Precision.choose``'s rule, unmeasured.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .. import families, models
from ..config import Config
from ..models import Precision
from ..rundir import file_lock, read_json, write_json
from .step import StepContext

NOISE = 0.05  # a candidate beats the reference only by more than this share of its time
WARMUP, STEPS, ROUNDS = 3, 10, 3  # per candidate: untimed steps, then rounds of timed steps (the best counts)
CACHE_FILE = "precision.json"

# (config, image shape, classes, candidates) -> milliseconds per training step, by candidate name
Measure = Callable[[Config, Sequence[int], Sequence[str], list[Precision]], dict[str, float]]


def choose_precision(config: Config, shape: Sequence[int], classes: Sequence[str], device: torch.device,
                     measure: Measure | None = None) -> Precision:
    """The precision and memory format ``config.train`` asks for on ``device``: measured on
    CUDA where either is ``auto`` (``measure``, default ``time_candidates``; the figures cached),
    ``Precision.choose``'s rule elsewhere."""
    t = config.train
    if device.type != "cuda" or "auto" not in (t.precision, t.channels_last):
        return Precision.choose(device, t.precision, t.channels_last, families.family_of(config.model.arch),
                                t.compile)
    candidates = Precision.candidates(device, t.precision, t.channels_last, t.compile)
    names = [c.name for c in candidates]
    if len(candidates) == 1:  # e.g. auto on a GPU without bf16, channels_last given
        candidates[0].note = f"{candidates[0].name} (auto: {models.base.native_bf16(device)[1]}; nothing to measure)"
        return candidates[0]
    path, key = cache_path(config), tuning_key(config, shape, classes, device)
    with _locked(path):  # a sweep's runs on one GPU: one measures, the others read its figures
        ms, how = _cached(path, key), "cached"
        if not set(names) <= set(ms):
            ms, how = (measure or time_candidates)(config, shape, classes, candidates), "measured"
            store(path, key, ms)
    best = fastest({n: ms[n] for n in names}, names[0])
    chosen = candidates[names.index(best)]
    figures = ", ".join(f"{n} {ms[n]:.2f} ms" for n in names)
    chosen.note = f"{best} (auto, {how} on {device_name(device)}: {figures} per step: {best})"
    return chosen


def fastest(ms: dict[str, float], reference: str) -> str:
    """The candidate of fewest milliseconds per step, if it beats ``reference`` by more than
    ``NOISE``; else ``reference``."""
    best = min(ms, key=ms.__getitem__)
    return best if ms[best] < (1 - NOISE) * ms[reference] else reference


def time_candidates(config: Config, shape: Sequence[int], classes: Sequence[str],
                    candidates: list[Precision], steps: int = STEPS, rounds: int = ROUNDS) -> dict[str, float]:
    """Milliseconds per training step of each candidate: a model of each is built and warmed
    up, then ``rounds`` rounds time ``steps`` steps of each in turn (a slow moment of the
    machine falls on all of them alike); each candidate's best round counts. The RNG states
    are left as they were, so the run trains as it would unmeasured."""
    device = candidates[0].device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        runs = {c.name: _stepper(config, shape, classes, c) for c in candidates}
        best = dict.fromkeys(runs, math.inf)
        for _ in range(rounds):
            for name, run in runs.items():
                best[name] = min(best[name], run(steps))
    return {name: 1000 * seconds / steps for name, seconds in best.items()}


def _stepper(config: Config, shape: Sequence[int], classes: Sequence[str],
             precision: Precision) -> Callable[[int], float]:
    """A fresh model of ``precision`` on a random batch, warmed up; returns ``run(n)``: the
    seconds of ``n`` training steps, synchronised."""
    family = models.build(config, shape, classes, precision)
    ctx = StepContext(family, config, precision, total_steps=1_000_000)
    device, batch = precision.device, config.train.batch_size
    real = torch.rand(batch, *shape, device=device) * 2 - 1  # the speed does not depend on the images
    labels = family.default_labels(batch)
    labels = None if labels is None else labels.to(device)
    family.train()
    done = 0

    def run(n: int) -> float:
        nonlocal done
        precision.apply()
        _sync(device)
        start = time.perf_counter()
        for _ in range(n):
            ctx.begin(done)
            family.training_step(real, labels, ctx)
            done += 1
        _sync(device)
        return time.perf_counter() - start

    run(WARMUP)  # cuDNN's benchmark mode picks its kernels here
    return run


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def tuning_key(config: Config, shape: Sequence[int], classes: Sequence[str], device: torch.device) -> str:
    """What the step's speed depends on: the device and its software, the model (its sections),
    the loss, the image shape, the batch; readable in front, a digest of all of it behind."""
    raw = config.to_dict()
    family = families.family_of(config.model.arch)
    what = {"device": device_name(device), "torch": torch.__version__, "cuda": torch.version.cuda,
            "shape": list(shape), "classes": len(classes), "batch": config.train.batch_size,
            "n_critic": config.train.n_critic, "compile": config.train.compile, "model": raw["model"],
            "family": raw.get(family.section), "loss": raw["loss"]}
    digest = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return (f"{what['device']} | torch {torch.__version__} | {config.model.arch} "
            f"{'x'.join(map(str, shape))} batch {config.train.batch_size} | {digest}")


def cache_path(config: Config) -> Path:
    return Path(config.eval.cache_dir).expanduser() / CACHE_FILE


def _cached(path: Path, key: str) -> dict[str, float]:
    try:
        return read_json(path).get(key, {}).get("ms", {})
    except (OSError, ValueError):  # an unreadable cache is measured anew
        return {}


def store(path: Path, key: str, ms: dict[str, float]) -> None:
    """Add one measurement to the cache file (other keys kept); a cache that cannot be written
    costs only a measurement per run."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = read_json(path)
        entries[key] = {"ms": {k: round(v, 4) for k, v in ms.items()}, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
        write_json(path, entries)
    except (OSError, ValueError):  # (rundir.CacheError is an OSError)
        pass


def _locked(path: Path) -> contextlib.AbstractContextManager:
    """``rundir.file_lock`` beside ``path``; none where the cache folder cannot be written (then
    each run measures for itself: a cost, no harm)."""
    lock = path.with_name(path.name + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.touch()
    except OSError:
        return contextlib.nullcontext()
    return file_lock(lock)
