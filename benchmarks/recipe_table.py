"""The recipe table of docs/reference/time-to-quality.md from a finished recipe sweep:

    python benchmarks/recipe_table.py reports/quick_recipe
    python benchmarks/recipe_table.py reports/quick_recipe --doc   # writes it into that page

One row per configuration (recipe): its steps of what batch, training images/s and seconds
(medians over its seeds: a seed that shared the CPU with other work shows in the spread, not in
the row), FD mean +/- sd over the seeds with the classes covered, and FD per CPU minute (the
recipe's mean FD times its training CPU minutes: at equal time the order of FD; lower is
better). Printed as a Markdown table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gan_core import config as config_lib
from gan_core.reporting.index import sweep_table
from gan_core.rundir import RunDir


REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "reference" / "time-to-quality.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="a recipe sweep's reports folder, e.g. reports/quick_recipe")
    parser.add_argument("--doc", action="store_true", help=f"also write the table into {DOC.relative_to(REPO)} "
                        "(block recipes)")
    args = parser.parse_args()
    lines = table_lines(args.sweep_dir)
    print("\n".join(lines))
    if args.doc:
        sys.path.insert(0, str(REPO / "docs"))
        from make_reference import write_block
        sys.path.insert(0, str(REPO / "benchmarks"))
        from train_throughput import commit, machine
        write_block(DOC, "recipes", "\n".join([f"Machine: {machine()}; commit {commit()}. Command: "
                                               f"`python benchmarks/recipe_table.py {args.sweep_dir} --doc`", "", *lines]))
        print(f"wrote {DOC.relative_to(REPO)} (block recipes)")


def table_lines(sweep_dir: str) -> list[str]:
    """The Markdown table, one row per recipe (configuration) with finished runs."""
    table = sweep_table(sweep_dir)
    configs = {run: config_lib.load(RunDir(Path(sweep_dir) / run).config).train for run in table["run"]}
    lines = ["| recipe | steps x batch | images/s | training s | FD mean +/- sd (seeds) | classes | FD x CPU min |",
             "|---|---|---|---|---|---|---|"]
    for name, runs in table[table["fd"].notna()].groupby("configuration", sort=False):  # finished runs
        seconds, rate = runs["training_s"].median(), runs["images_per_s"].median()
        train = configs[runs["run"].iloc[0]]
        steps = train.steps or train.epochs * -(-60000 // train.batch_size)  # all of Fashion-MNIST's training split
        fd = runs["fd"]
        lines.append(f"| {name} | {steps:,} x {train.batch_size} | {rate:,.0f} | {seconds:.0f} | {fd.mean():.1f} +/- "
                     f"{fd.std():.1f} ({len(fd)}) | {int(runs['classes'].min())}-{int(runs['classes'].max())} | "
                     f"{fd.mean() * seconds / 60:.0f} |")
    return lines


if __name__ == "__main__":
    main()
