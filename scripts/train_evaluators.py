"""Make the evaluators that ship with gan_core: one small classifier per data set available
offline (Fashion-MNIST, digits), trained from a fixed seed by the package's own recipe, saved
to gan_core/evaluators/<data>-v<version>.pt with its sha256 and test accuracy in manifest.json.

    python scripts/train_evaluators.py                # every shipped data set
    python scripts/train_evaluators.py digits         # one

Every machine then scores with the same weights (FD, KID, precision/recall and classes are
comparable between machines), and a first run trains nothing. Rerun it only when the network
or its recipe changes (bump gan_core.evaluators.VERSION): the scores of older runs then no
longer compare with new ones.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import platform

import torch

from gan_core import evaluators
from gan_core.config import from_dict
from gan_core.evaluation.evaluator import train_evaluator
from gan_core.models.checkpoint import to_bytes
from gan_core.rundir import read_json, write_atomic, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="*", help=f"data sets (default: all of {', '.join(evaluators.SHIPPED)})")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    args = parser.parse_args()
    if unknown := set(args.data) - set(evaluators.SHIPPED):
        parser.error(f"no evaluator ships for {', '.join(sorted(unknown))} (only for {', '.join(evaluators.SHIPPED)})")
    torch.set_num_threads(args.threads)
    manifest = read_json(evaluators.FOLDER / "manifest.json")
    for name in args.data or list(evaluators.SHIPPED):
        recipe = evaluators.shipped_recipe(name)
        config = from_dict({"data": {"name": name}, "eval": {"evaluator": "train", "evaluator_epochs": recipe["epochs"]}})
        state = train_evaluator(config, recipe)
        data = to_bytes(state)
        path = evaluators.shipped_file(name)
        write_atomic(path, data)
        manifest[path.name] = {"sha256": hashlib.sha256(data).hexdigest(), "test_accuracy": state["test_accuracy"],
                               "recipe": recipe, "bytes": len(data), "torch": torch.__version__,
                               "made": datetime.date.today().isoformat(), "machine": platform.machine()}
        print(f"{path}: test accuracy {state['test_accuracy']:.2%}, {len(data) / 1e6:.1f} MB")
    write_json(evaluators.FOLDER / "manifest.json", manifest)


if __name__ == "__main__":
    main()
