"""Command line: ``python -m gan_core train params/quick.yaml --out runs/quick``."""
from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from . import config as config_lib
from .config import ConfigError
from .data import DataError
from .train import TrainingError, train


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["train.epochs=3", "loss.kind=mse"]`` -> ``{"train.epochs": 3, "loss.kind": "mse"}``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. train.epochs=3")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gan_core", description="GAN Workbook: train and report GANs.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train one config into a run directory")
    p.add_argument("config", help="a YAML config, e.g. params/quick.yaml")
    p.add_argument("--out", required=True, help="run directory (log.csv, samples/, checkpoints/)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=1 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            config = config_lib.load(args.config, parse_overrides(args.set))
            metrics = train(config, args.out, resume=args.resume,
                            progress=False if args.no_progress else None)["training"]
            print(f"done: {metrics['epochs']} epochs, {metrics['steps']} steps, final loss_d "
                  f"{metrics['final_loss_d']:.3f}, loss_g {metrics['final_loss_g']:.3f}; see {args.out}")
    except (ConfigError, DataError, TrainingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run again with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130
    return 0
