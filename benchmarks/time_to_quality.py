"""Time to quality: FD against wall-clock training seconds and images seen, one line per seed.

    python benchmarks/time_to_quality.py params/quick.yaml --seeds 0 1 2 --epochs 4
    python benchmarks/time_to_quality.py params/quick.yaml --set train.ema_halflife=0.05 --out ttq-ema

For each seed it trains the config with the workbook's own Trainer (a snapshot every
``train.checkpoint_every`` epochs), then scores every snapshot with the project's evaluator on
``--samples`` samples against the test split (the same scores as a run's evaluation), and
writes ``OUT/time_to_quality.csv`` (config, seed, epoch, images, training seconds, FD,
precision, recall, classes covered) and ``OUT/time_to_quality.png`` (FD against seconds and
against images, one line per seed). Training seconds are the trainer's own (sampling grids,
checkpoints and scoring are not in them); ``--threads`` sets the CPU threads of training, and
``--jobs 2`` trains two seeds at a time, one thread each, as the main job does.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def train_one(config_path: str, overrides: list[str], seed: int, epochs: int, run_dir: Path, threads: int) -> None:
    """Train one seed in a process of its own (so parallel seeds do not share torch's threads)."""
    command = [sys.executable, "-m", "gan_core", "train", "-q", config_path, "--out", str(run_dir), "--resume",
               "--no-progress", "--set", f"train.seed={seed}", "--set", f"train.epochs={epochs}",
               "--set", f"train.threads={threads}", *[a for o in overrides for a in ("--set", o)]]
    subprocess.run(command, check=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))


def score_snapshots(run_dir: Path, samples: int) -> list[dict]:
    """FD and the other scores of every epoch snapshot of a run, with its training seconds."""
    from gan_core.evaluation import Scorer, sample_images
    from gan_core.models import load_family
    from gan_core.models.checkpoint import read_checkpoint
    from gan_core.rundir import RunDir, epoch_of
    run = RunDir(run_dir)
    rows, scorer = [], None
    for path in run.snapshots():
        family, config = load_family(path)
        scorer = scorer or Scorer(config, log=lambda line: None)
        state = read_checkpoint(path, ("step", "seconds"))
        scores = scorer.score(*sample_images(family, samples, config.train.seed + 12345), detail=False)
        rows.append({"seed": config.train.seed, "epoch": epoch_of(path), "images": state["step"] * config.train.batch_size,
                     "seconds": round(state["seconds"], 1), "fd": scores["fd"], "precision": scores["precision"],
                     "recall": scores["recall"], "classes": scores["classes_covered"], "class_kl": scores["class_kl"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="e.g. params/quick.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=4, help="epochs to train (a snapshot scored after each)")
    parser.add_argument("--samples", type=int, default=10000, help="generated images per score (default 10,000)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per training (default 1)")
    parser.add_argument("--jobs", type=int, default=2, help="seeds trained at a time (default 2)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--out", default="benchmarks/results/time_to_quality", help="output folder")
    parser.add_argument("--name", help="the config's name in the table (default: the file and overrides)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.name or " ".join([Path(args.config).stem, *args.set])
    runs = {seed: out / f"seed{seed}" for seed in args.seeds}
    pending = list(runs.items())
    while pending:  # --jobs seeds at a time, each its own process
        batch, pending = pending[:args.jobs], pending[args.jobs:]
        workers = [subprocess.Popen([sys.executable, __file__, "--_train", args.config, str(seed), str(args.epochs),
                                     str(run), str(args.threads), *args.set]) for seed, run in batch]
        if any(w.wait() for w in workers):
            raise SystemExit("a training failed")
    rows = [{"config": name, **row} for run in runs.values() for row in score_snapshots(run, args.samples)]
    table = pd.DataFrame(rows)
    from gan_core.rundir import write_atomic
    write_atomic(out / "time_to_quality.csv", table.to_csv(index=False, float_format="%.5g"))
    print(table.to_string(index=False))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for seed, rows_of_seed in table.groupby("seed"):
        for ax, x in zip(axes, ("seconds", "images")):
            ax.plot(rows_of_seed[x], rows_of_seed["fd"], marker="o", label=f"seed {seed}")
    for ax, x in zip(axes, ("training seconds (wall clock)", "images seen")):
        ax.set_xlabel(x)
        ax.set_ylabel("FD (lower is better)")
        ax.legend()
    fig.suptitle(f"Time to quality: {name} ({args.samples:,} samples per score)")
    fig.savefig(out / "time_to_quality.png", dpi=110)  # written by this benchmark alone


if __name__ == "__main__":
    if sys.argv[1:2] == ["--_train"]:
        config, seed, epochs, run, threads, *overrides = sys.argv[2:]
        train_one(config, overrides, int(seed), int(epochs), Path(run), int(threads))
    else:
        main()
