"""Training throughput: the Trainer against a bare loop of the same D-then-G step.

    python benchmarks/train_throughput.py params/quick.yaml --steps 100
    python benchmarks/train_throughput.py params/quick.yaml --doc   # also writes docs/reference/performance.md


For each variant (fp32, auto, bf16 autocast, channels_last) it times ``Trainer.fit`` over one epoch
of ``--steps`` steps (logging, progress bar, sample grid and checkpoint included) and a bare
loop that calls the same ``Trainer.train_step`` on the same batches with nothing else, and
prints images/s for both and their ratio. Best of ``--repeats`` alternating runs.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from gan_core import config as config_lib
from gan_core.cli import parse_overrides
from gan_core.training.trainer import Trainer, epoch_seed, seed_everything

VARIANTS = {
    "fp32": {"train.precision": "fp32", "train.channels_last": False},
    "bf16": {"train.precision": "bf16", "train.channels_last": False},
    "channels_last": {"train.precision": "fp32", "train.channels_last": True},
    "bf16+channels_last": {"train.precision": "bf16", "train.channels_last": True},
    "auto": {"train.precision": "auto", "train.channels_last": "auto"},
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_loop(trainer: Trainer) -> float:
    """Seconds for one epoch of bare ``train_step`` calls."""
    t = trainer.config.train
    seed_everything(epoch_seed(t.seed, 1))
    sync(trainer.device)
    start = time.perf_counter()
    for real, _ in trainer.data.batches(t.batch_size, epoch_seed(t.seed, 1)):
        trainer.train_step(real)
    sync(trainer.device)
    return time.perf_counter() - start


def full_trainer(trainer: Trainer) -> float:
    """Seconds for ``Trainer.fit`` over one epoch (log rows, bar, grid, checkpoint)."""
    start = time.perf_counter()
    trainer.fit(progress=True)
    sync(trainer.device)
    return time.perf_counter() - start


REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "reference" / "performance.md"


def machine() -> str:
    """The CPU's model, cores and the flags that decide the precision (bf16 native or not)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    shown = [f for f in ("amx_bf16", "avx512_bf16", "avx2") if f in flags]
    cores = len(os.sched_getaffinity(0))
    return f"{model}, {cores} cores" + (f" ({', '.join(shown)})" if shown else "")


def commit() -> str:
    try:
        git = ["git", "-C", str(REPO)]
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        changed = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        return head.stdout.strip() + ("+dirty" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_doc(rows: list[str], command: str, timed: str) -> None:
    """The table as the "throughput-cpu" block of docs/reference/performance.md."""
    sys.path.insert(0, str(REPO / "docs"))
    from make_reference import write_block
    load = os.getloadavg()[0]  # other work on the machine slows every row alike
    text = "\n".join([f"Machine: {machine()}; commit {commit()}; threads {torch.get_num_threads()}; "
                      f"torch {torch.__version__}; load average {load:.1f} when it ended; {timed}. Command: `{command}`", "",
                      "| variant | bare loop img/s | trainer img/s | ratio | precision picked |", "|---|---|---|---|---|",
                      *rows])
    write_block(DOC, "throughput-cpu", text)
    print(f"wrote {DOC.relative_to(REPO)} (block throughput-cpu)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--steps", type=int, default=100, help="steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default="fp32,auto", help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--doc", action="store_true", help=f"also write the table into {DOC.relative_to(REPO)}")
    args = parser.parse_args()
    rows = []
    base = config_lib.load(args.config, parse_overrides(args.set))
    images = args.steps * base.train.batch_size
    print(f"{args.config}: {args.steps} steps of {base.train.batch_size}, threads {torch.get_num_threads()}")
    print(f"{'variant':<20}{'bare img/s':>12}{'trainer img/s':>15}{'ratio':>8}")
    for name in args.variants.split(","):
        config = base.replace({**VARIANTS[name], "data.subset": images, "train.epochs": 1})
        bare, full = float("inf"), float("inf")
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                trainer = Trainer(config, tmp)
                trainer.train_step(trainer.data.images[: config.train.batch_size])  # warm-up
                bare = min(bare, bare_loop(trainer))
                full = min(full, full_trainer(trainer))  # same warm trainer: trains its epoch 1
        print(f"{name:<20}{images / bare:>12.0f}{images / full:>15.0f}{bare / full:>8.3f}  {trainer.precision.note}")
        rows.append(f"| {name} | {images / bare:,.0f} | {images / full:,.0f} | {bare / full:.3f} | "
                    f"{trainer.precision.note} |")
    if args.doc:
        write_doc(rows, "python " + " ".join(["benchmarks/train_throughput.py", *sys.argv[1:]]),
                  f"{args.steps} steps of {base.train.batch_size} images per timing, best of {args.repeats}")


if __name__ == "__main__":
    main()
