"""On a CUDA device: the trainer's steps run with no host synchronisation (issue 34, item 1).

    python benchmarks/gpu_sync_check.py params/quick.yaml params/ddpm_fashion.yaml --set data.root=...

For each config it builds the Trainer on CUDA (``auto`` measured as in training), runs a few
warm-up steps, then ``--steps`` steps of the trainer's loop body (``Trainer.train_step`` on the
epoch's batches, the window sum of the logged values) under ``torch.cuda.set_sync_debug_mode
("error")``: any copy to the host, ``.item()``, blocking copy or synchronising call inside a step
raises, and is printed with its config. The log row's one read every ``log_every`` steps is
outside what is checked. The CPU's version of this check is tests/test_gpu_paths.py.
"""
from __future__ import annotations

import argparse
import itertools
import tempfile
import traceback

import torch

from gan_core import config as config_lib
from gan_core.cli import parse_overrides
from gan_core.training.trainer import Trainer, epoch_seed

VARIANTS = {
    "": {},
    "conditional": {"model.conditional": True},
    "fp32": {"train.precision": "fp32", "train.channels_last": False},
    "bf16 + channels_last": {"train.precision": "bf16", "train.channels_last": True},
}


def check(config, steps: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, tmp)
        t = config.train
        batches = trainer.data.batches(t.batch_size, epoch_seed(t.seed, 1))
        window = torch.zeros(len(trainer.schema.columns), device=trainer.device)
        for real, labels in itertools.islice(batches, 5):  # warm-up: cuDNN's choices, Adam's state
            window += trainer.train_step(real, labels)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for real, labels in itertools.islice(batches, steps):
                window += trainer.train_step(real, labels)
                trainer.step += 1
        finally:
            torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
        return f"ok, {steps} steps without a host synchronisation ({trainer.precision.note})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: tests/test_gpu_paths.py is this check on the CPU")
    failed = 0
    for path in args.configs:
        for name, variant in VARIANTS.items():
            config = config_lib.load(path, {**parse_overrides(args.set), **variant, "train.progress": False,
                                            "data.subset": 64 * config_lib.load(path).train.batch_size})
            try:
                verdict = check(config, args.steps)
            except Exception:  # noqa: BLE001 -- every config is checked; each failure is printed
                failed += 1
                verdict = "FAILED\n" + traceback.format_exc(limit=-6)
            print(f"{path} {name or 'as given'}: {verdict}", flush=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
