"""Issue 33: how fast an evaluator trained from a user's folder is (run on 2 CPU cores).

    nice python benchmarks/evaluator_speed.py [--images 10000] [--large 2000] [--epochs 2] [--subset N]

Generates the folders (tests/images.py: distinct shapes and colours) in a temporary folder,
then times: the 10,000-image 64x64 RGB labelled folder's evaluator (target <= 120 s), scoring
10,000 samples at 64x64 (features + classes; target <= 15 s), and the 2,000-image 128x128
one-folder (SimCLR) evaluator (target <= 180 s). Prints the machine's load beside the figures.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gan_core.config import Config, from_dict  # noqa: E402
from gan_core.evaluation import trained  # noqa: E402
from gan_core.evaluation.evaluator import features_and_classes  # noqa: E402
from tests.images import one_folder, shapes_folder  # noqa: E402


def config(root: Path, cache: Path, size: int, epochs: int, subset: int | None = None) -> Config:
    """The config a user's folder gets: its evaluator is trained as a sweep's would be."""
    return from_dict({"data": {"name": "imagefolder", "root": str(root), "image_size": size},
                      "eval": {"cache_dir": str(cache), "evaluator_epochs": epochs, "evaluator_subset": subset}})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--large", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--large-epochs", type=int, default=2)
    ap.add_argument("--subset", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    load = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: E731
    print(f"threads {torch.get_num_threads()}, cores {os.cpu_count()}; {load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shapes_folder(tmp / "small", per_class=args.images // 3 + 1, size=64)
        one_folder(tmp / "large", count=args.large, size=128)
        c = config(tmp / "small", tmp / "cache", 64, args.epochs, args.subset)
        start = time.perf_counter()
        model, info = trained.load_trained(c, print)
        t_small = time.perf_counter() - start
        print(f"64x64 RGB, {args.images} images, labelled: {t_small:.1f} s (target 120); {info['source']}, {info['held_out_name']} {info['held_out']:.1%}; {load()}",
              flush=True)
        x = trained.decode(trained.own_data(c), torch.arange(min(10000, args.images)))
        start = time.perf_counter()
        features_and_classes(model, x)
        t_score = time.perf_counter() - start
        print(f"scoring {len(x)} samples at 64x64: {t_score:.1f} s (target 15); {load()}", flush=True)
        c = config(tmp / "large", tmp / "cache", 128, args.large_epochs)
        start = time.perf_counter()
        _, info = trained.load_trained(c, print)
        t_large = time.perf_counter() - start
        print(f"128x128 RGB, {args.large} images, one folder (SimCLR): {t_large:.1f} s (target 180); "
              f"{info['source']}, {info['held_out_name']} {info['held_out']:.1%}; {load()}", flush=True)


if __name__ == "__main__":
    main()
