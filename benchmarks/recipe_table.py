"""The recipe table of the README (Time to quality) from a finished recipe sweep:

    python benchmarks/recipe_table.py reports/quick_recipe

One row per configuration (recipe): its steps of what batch, training images/s and seconds
(medians over its seeds: a seed that shared the CPU with other work shows in the spread, not in
the row), FD mean +/- sd over the seeds with the classes covered, and FD per CPU minute (the
recipe's mean FD times its training CPU minutes: at equal time the order of FD; lower is
better). Printed as a Markdown table.
"""
from __future__ import annotations

import argparse

from pathlib import Path

from gan_core import config as config_lib
from gan_core.reporting.index import sweep_table
from gan_core.rundir import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="a recipe sweep's reports folder, e.g. reports/quick_recipe")
    args = parser.parse_args()
    table = sweep_table(args.sweep_dir)
    configs = {run: config_lib.load(RunDir(Path(args.sweep_dir) / run).config).train for run in table["run"]}
    print("| recipe | steps x batch | images/s | training s | FD mean +/- sd (seeds) | classes | FD x CPU min |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in table[table["fd"].notna()].groupby("configuration", sort=False):  # finished runs
        seconds, rate = runs["training_s"].median(), runs["images_per_s"].median()
        train = configs[runs["run"].iloc[0]]
        steps = train.steps or train.epochs * -(-60000 // train.batch_size)  # all of Fashion-MNIST's training split
        fd = runs["fd"]
        print(f"| {name} | {steps:,} x {train.batch_size} | {rate:,.0f} | {seconds:.0f} | {fd.mean():.1f} +/- {fd.std():.1f} "
              f"({len(fd)}) | {int(runs['classes'].min())}-{int(runs['classes'].max())} | "
              f"{fd.mean() * seconds / 60:.0f} |")


if __name__ == "__main__":
    main()
