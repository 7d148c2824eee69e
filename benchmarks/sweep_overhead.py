"""Where a finished sweep's time went: training against everything else, per run and in all.

    python benchmarks/sweep_overhead.py reports/quick

Reads each run's status.json (seconds per step and notebook, and its reports' time: all of the run's
time but its training: the processes' starts, the scores and the pages included) and metrics.json (the
training time over all of the run's invocations) and prints them with the share of the time
spent outside training.
"""
from __future__ import annotations

import argparse

import pandas as pd

from gan_core.reporting.index import durations_table, sweep_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="a sweep's reports folder, e.g. reports/quick")
    args = parser.parse_args()
    table = durations_table(args.sweep_dir, sweep_table(args.sweep_dir))
    if table.empty:
        raise SystemExit(f"{args.sweep_dir}: no run has recorded its notebook times yet")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.to_string())
    training, reports = table["training"].sum(), table["reports"].sum()
    print(f"\nall runs: {training:.0f} s training, {reports:.0f} s everything else "
          f"({reports / (training + reports):.0%} overhead)")


if __name__ == "__main__":
    main()
