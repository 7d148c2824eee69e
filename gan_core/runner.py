"""Executing a sweep: each run's notebooks through papermill, HTML/PDF, then the index.

A run is one process (its notebooks' kernels are its children), so runs go in parallel over
a process pool with the CPU threads divided between them, or over Dask or SLURM (executors.py).
Kernels talk over IPC sockets, not TCP ports, so parallel kernel start-ups cannot race for a port.
"""
from __future__ import annotations

import datetime
import fnmatch
import json
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from jupyter_client.manager import KernelManager
from traitlets import default

from . import config as config_lib
from . import executors, report
from .config import ConfigError
from .rundir import write_atomic
from .sweep import NOTEBOOKS, SUMMARY_NOTEBOOK, Run, Sweep, run_key, settings

DONE, STATUS = ".done", "status.json"


class IPCKernelManager(KernelManager):
    """A kernel on Unix sockets beside its connection file: no TCP port to race for."""

    @default("transport")
    def _transport_default(self) -> str:
        return "ipc"


@dataclass(frozen=True)
class Job:
    """Everything one run needs, picklable, so any executor can run it where the files are."""

    run_dir: str
    notebooks: tuple[str, ...]
    key: str
    code: bool
    pdf: bool
    threads: int


def execute_notebook(notebook: Path, out: Path, parameters: dict[str, Any], cwd: Path) -> None:
    """Run one notebook with papermill; the executed copy is written even when a cell fails."""
    import papermill
    declared = papermill.inspect_notebook(str(notebook))
    papermill.execute_notebook(
        str(notebook), str(out), parameters={k: v for k, v in parameters.items() if k in declared},
        cwd=str(cwd), kernel_name="python3", progress_bar=False, log_output=False,
        kernel_manager_class=IPCKernelManager)


def execute_run(job: Job) -> dict[str, Any]:
    """Execute a run's notebooks in order into its folder, render them, mark it done.

    A failing notebook is still rendered (papermill marks the failing cell); the notebooks
    after it are not run, since they read what it should have produced.
    """
    os.environ.update(OMP_NUM_THREADS=str(job.threads), MKL_NUM_THREADS=str(job.threads))
    run_dir = Path(job.run_dir).resolve()
    status: dict[str, Any] = {"status": "running", "started": _now(), "reports": [], "host": os.uname().nodename}
    write_status(run_dir, status)
    start = time.perf_counter()
    params = {"config_path": str(run_dir / "config.yaml"), "run_dir": str(run_dir), "progress": False}
    for notebook in map(Path, job.notebooks):
        executed, page = run_dir / notebook.name, run_dir / f"{notebook.stem}.html"
        try:
            execute_notebook(notebook, executed, params, run_dir)
        except Exception as err:  # a cell's exception, a dead kernel, a timeout: the run failed
            status.update(status="failed", failed_notebook=notebook.stem,
                          error=f"{type(err).__name__}: {_first_line(err)}",
                          failed_link=f"{page.name}#papermill-error-cell")
        if executed.exists():
            _render(executed, page, job, status)
        if status["status"] == "failed":
            break
    else:
        status["status"] = "ok"
    status["duration_s"] = round(time.perf_counter() - start, 1)
    write_status(run_dir, status)
    if status["status"] == "ok":
        (run_dir / DONE).write_text(job.key)
    return {"run": run_dir.name, **status}


def _render(executed: Path, page: Path, job: Job, status: dict[str, Any]) -> None:
    report.render_html(executed, page, code=job.code)
    status["reports"].append(page.name)
    _pdf(page, job.pdf)


def _pdf(page: Path, wanted: bool) -> None:
    """Print ``page`` to PDF beside it when asked and Chromium is there (run_sweep says when not)."""
    if wanted and report.chromium():
        report.render_pdf(page, page.with_suffix(".pdf"))


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("---")]
    return (lines[-1] if lines else repr(err))[:300]


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def write_status(run_dir: Path, status: dict[str, Any]) -> None:
    write_atomic(run_dir / STATUS, json.dumps(status, indent=2).encode())


def prepare_run(run: Run, sweep: Sweep, sweep_dir: Path, threads: int, force: bool,
                pdf: bool, log: Callable[[str], None]) -> Job | None:
    """Write the run's config.yaml and return its Job, or None when it is complete and unchanged.

    A run whose folder holds results of a different config is moved to ``_previous/`` first,
    never overwritten; ``force`` starts the run afresh.
    """
    run_dir = sweep_dir / run.name
    config = run.config.replace({"train.threads": run.config.train.threads or threads,
                                 "train.progress": False})
    key = run_key(config, sweep.notebooks, sweep.code)
    done = run_dir / DONE
    if not force and done.exists() and done.read_text() == key:
        for page in run_dir.glob("[0-9][0-9]_*.html"):
            _pdf(page, pdf and not page.with_suffix(".pdf").exists())
        return None
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    elif (run_dir / "config.yaml").exists() and not _same_config(run_dir / "config.yaml", config):
        target = sweep_dir / "_previous" / f"{run.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        target.parent.mkdir(exist_ok=True)
        run_dir.rename(target)
        log(f"{run.name}: config changed; earlier results moved to {target}")
    run_dir.mkdir(parents=True, exist_ok=True)
    done.unlink(missing_ok=True)
    config_lib.save(config, run_dir / "config.yaml")
    return Job(str(run_dir), tuple(str(p) for p in sweep.notebooks), key, sweep.code, pdf, threads)


def _same_config(path: Path, config: config_lib.Config) -> bool:
    """Whether config.yaml at ``path`` describes the same run (runtime settings aside)."""
    try:
        old = config_lib.load(path)
    except ConfigError:
        return False
    return settings(old) == settings(config)


def select(runs: list[Run], only: str | None) -> list[Run]:
    """Runs whose names match ``only`` (comma-separated names or globs); all when None."""
    if not only:
        return runs
    patterns = [p.strip() for p in only.split(",")]
    chosen = [r for r in runs if any(fnmatch.fnmatch(r.name, p) for p in patterns)]
    if not chosen:
        raise ConfigError(f"--only {only!r} matches no run (runs: {', '.join(r.name for r in runs)})")
    return chosen


def run_sweep(sweep: Sweep, out: str | Path = "reports", jobs: int = 1, pdf: bool = False,
              force: bool = False, only: str | None = None, log: Callable[[str], None] = print) -> int:
    """Run a sweep's missing or changed runs, then build its index; returns 0 if all runs are ok."""
    engine = replace(sweep.executor, jobs=jobs)
    executors.require(engine)  # a missing engine stops the sweep before any run is touched
    sweep_dir = Path(out) / sweep.name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    runs = select(sweep.runs, only)
    if pdf and not report.chromium():
        log("--pdf: Chromium not found, PDFs skipped (install it with 'apt-get install chromium')")
    threads = engine.cpus_per_run or (executors.SLURM_CPUS if engine.name == "slurm" else
                                      max(1, (os.cpu_count() or 1) // max(1, min(jobs, len(runs)))))
    jobs_todo = {}
    for run in runs:
        job = prepare_run(run, sweep, sweep_dir, threads, force, pdf, log)
        if job is None:
            log(f"{run.name}: complete and unchanged, skipped (--force reruns it)")
        else:
            jobs_todo[run.name] = job
    _write_sweep_file(sweep, sweep_dir)
    if jobs_todo and any("evaluation" in p.stem for p in sweep.notebooks):
        _prepare_evaluators([r for r in runs if r.name in jobs_todo], log)
    log(f"{sweep.path}: {len(runs)} runs, {len(jobs_todo)} to execute, {executors.describe(engine)}, "
        f"{threads} threads each -> {sweep_dir}")
    results = executors.submit_jobs(list(jobs_todo.values()), engine, log)
    index = build_index(sweep, sweep_dir, pdf)
    failed = [r for r in results if r["status"] != "ok"]
    log(f"index: {index.resolve()}")
    if failed:
        log(f"{len(failed)} of {len(runs)} runs failed: " + "; ".join(
            f"{r['run']} ({r.get('failed_notebook')}: {r.get('error')})" for r in failed))
        return 1
    return 0


def _prepare_evaluators(runs: list[Run], log: Callable[[str], None]) -> None:
    """Train (or find cached) each evaluator once here, before parallel runs would each want it."""
    from . import metrics
    done = set()
    for run in runs:
        if run.config.data.name in metrics.EVALUATOR_SIZES:
            key = metrics.recipe_hash(metrics.evaluator_recipe(run.config)), run.config.eval.cache_dir
            if key not in done:
                metrics.load_evaluator(run.config, log)
                done.add(key)


def _write_sweep_file(sweep: Sweep, sweep_dir: Path) -> None:
    """sweep.json: the runs in order and what each changes, for the index."""
    info = {"sweep": str(sweep.path), "base": str(sweep.base),
            "runs": [{"name": r.name, "overrides": r.overrides} for r in sweep.runs]}
    write_atomic(sweep_dir / "sweep.json", json.dumps(info, indent=2, default=str).encode())


def build_index(sweep: Sweep, sweep_dir: Path, pdf: bool = False) -> Path:
    """Execute the summary notebook over the sweep's folder into index.html (and summary.csv)."""
    notebook = NOTEBOOKS / f"{SUMMARY_NOTEBOOK}.ipynb"
    executed, page = sweep_dir / "index.ipynb", sweep_dir / "index.html"
    try:
        execute_notebook(notebook, executed, {"sweep_dir": str(sweep_dir.resolve())}, sweep_dir)
    finally:
        if executed.exists():
            report.render_html(executed, page, code=sweep.code)
            _pdf(page, pdf)
    return page
