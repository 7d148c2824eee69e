"""Which run a notebook shows: the one its parameters name (a sweep passes each run's folder),
or, opened in JupyterLab with its defaults, one worth looking at: the main job's first finished
run (``reports/quick/``, found from the folder the notebook runs in or above it), else the lab
run (``runs/lab/`` beside the notebook, trained once from ``params/lab.yaml`` in about a minute
on 2 cores, then reused: ``reporting.html.open_run`` computes what a run lacks). A notebook never
shows an untrained generator by default, and says in its first output which run it shows and how
to open another.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import config as config_lib
from ..config import Config
from ..paths import notebook_path, work_path
from ..rundir import RunDir, SweepDir

MAIN_JOB = Path("reports") / "quick"  # make report's sweep folder
LAB_RUN = Path("runs") / "lab"  # beside the notebook
# the lab run's config; the notebooks' own test (make test) sets a smaller one explicitly
LAB_CONFIG = os.environ.get("GAN_WORKBOOK_LAB_CONFIG", "params/lab.yaml")


@dataclass(frozen=True)
class Chosen:
    """A notebook's run, its config, and a sentence on which run it is and how to open another."""

    config: Config
    run: RunDir
    note: str


def main_job_run(start: Path | None = None) -> RunDir | None:
    """The first finished run of the main job, in ``reports/quick`` of the current folder or
    one above it (a notebook of the checkout runs in ``notebooks/``), or None."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        sweep = SweepDir(folder / MAIN_JOB)
        for run in sweep.read_sweep().get("runs", []) if sweep.sweep_file.exists() else []:
            if sweep.run(run["name"]).done.exists():
                return sweep.run(run["name"])
    return None


def sweep_folder(sweep_dir: str = "") -> Path:
    """The sweep a summary shows: ``sweep_dir``, else the main job's (``reports/quick`` from
    here or above) when it has run, else the runs beside the notebook (``runs/``)."""
    if sweep_dir:
        return notebook_path(sweep_dir)
    found = main_job_run()
    return found.root.parent if found is not None else Path.cwd() / "runs"


def run_roots() -> list[Path]:
    """Where a notebook finds trained runs: ``reports/`` of the folder it runs in or the nearest
    one above it, and ``runs/`` beside it."""
    here = Path.cwd().resolve()
    reports = next((f / "reports" for f in (here, *here.parents) if (f / "reports").is_dir()), here / "reports")
    return [reports, here / "runs"]


def choose(run_dir: str = "", config_path: str = "") -> Chosen:
    """The run a notebook shows (see the module docstring) and its config: ``config_path``, else
    the run's own config.yaml; with the defaults and no main job, the lab run (trained or not)."""
    if run_dir:
        run = RunDir(work_path(run_dir))
        config = config_lib.load(notebook_path(config_path) if config_path else run.config)
        return Chosen(config, run, "")
    if config_path:
        raise config_lib.ConfigError(f"config_path = {config_path!r} needs run_dir: the folder to train it into")
    if (found := main_job_run()) is not None:
        sweep = Path(os.path.relpath(found.root.parent, Path.cwd()))  # from the folder the notebook runs in
        return Chosen(config_lib.load(found.config), found,
                      f"This notebook shows `{found.root.name}`, the main job's first run (`{sweep}`). "
                      "To open another run, set `run_dir` in the parameters cell to its folder, e.g. "
                      f"`\"{sweep / 'z100-s0'}\"`, or explore every run with 08_explore.")
    return Chosen(config_lib.load(notebook_path(LAB_CONFIG)), RunDir(work_path(LAB_RUN)),
                  f"This notebook shows the lab run (`{LAB_RUN}` beside it, trained once from {LAB_CONFIG}): there "
                  "is no main job yet (make report runs it; its runs are then shown). To open another run, set "
                  "`run_dir` in the parameters cell to its folder.")
