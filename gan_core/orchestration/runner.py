"""Executing a sweep: each run's notebooks through papermill, HTML/PDF, then the index.

A run is one process (its notebooks share one kernel, its child), so runs go in parallel as
processes on this machine with the CPU threads divided between them, or over Dask or SLURM
(executors.py). Kernels talk over IPC sockets in private temporary folders, not TCP ports, so
parallel kernel start-ups cannot race for a port. One sweep at a time holds a sweep folder.
"""
from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable

from .. import config as config_lib
from .. import evaluators
from ..analysis import claims
from ..config import ConfigError
from ..evaluators import SIZES as EVALUATOR_SIZES
from ..paths import shown
from ..reporting import html as report
from ..rundir import RunDir, SweepDir, unwritable, write_json
from . import executors
from .job import Job, execute_notebook, pdf as print_pdf, started_kernel
from .sweep import NOTEBOOKS, SUMMARY_NOTEBOOK, Run, Sweep, check_data_sizes, data_size, run_key, settings


def prepare_run(run: Run, sweep: Sweep, sweep_dir: Path, threads: int, force: bool,
                pdf: str, log: Callable[[str], None]) -> Job | None:
    """Write the run's config.yaml and return its Job, or None when it is complete and unchanged.

    A run whose folder holds results of a different config is moved to ``_previous/`` first,
    never overwritten; ``force`` starts the run afresh.
    """
    run_dir = sweep_dir / run.name
    config = run.config.replace({"train.threads": run.config.train.threads or threads,
                                 "train.progress": False})
    key = run_key(config, sweep.notebooks, sweep.code, sweep.parameters)
    files = RunDir(run_dir)
    done = files.done
    if not force and done.exists() and done.read_text() == key:
        for page in files.pages():
            print_pdf(page, "" if page.with_suffix(".pdf").exists() else pdf)
        return None
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    elif files.config.exists() and not _same_config(files.config, config):
        target = SweepDir(sweep_dir).previous / f"{run.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        target.parent.mkdir(exist_ok=True)
        run_dir.rename(target)
        log(f"{run.name}: config changed; earlier results moved to {target}")
    run_dir.mkdir(parents=True, exist_ok=True)
    done.unlink(missing_ok=True)
    config_lib.save(config, files.config)
    return Job(str(run_dir), tuple(str(p) for p in sweep.notebooks), key, sweep.code, pdf, config.train.threads,
               tuple(sweep.parameters.items()))


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
    """Run a sweep's missing or changed runs, then build its index; returns 0 if all runs are ok.
    ``pdf``: also print every page to PDF, on the sweep's ``report.page_size`` pages."""
    engine = replace(sweep.executor, jobs=jobs)
    executors.require(engine)  # a missing engine stops the sweep before any run is touched
    runs = select(sweep.runs, only)
    preflight(sweep, runs, Path(out), pdf, engine)
    sweep_dir = Path(out) / sweep.name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with sweep_lock(sweep_dir):
        return _run_locked(sweep, sweep_dir, runs, engine, sweep.page_size if pdf else "", force, log)


REPORTS_MB = 100  # free space a sweep's reports folder needs at the least (checkpoints, pages)
CACHE_MB = 50  # and the evaluators' cache folder (an evaluator, test features, floors)


def preflight(sweep: Sweep, runs: list[Run], out: Path, pdf: bool, engine: executors.ExecutorSettings) -> None:
    """What would fail on first use, refused before any work: --pdf without Chromium, data that
    does not load here (local runs), a reports or cache folder that is read-only or full.

    Raises:
        ConfigError: naming the flag, or the sweep file, run, key and value, and the remedy.
    """
    if pdf and not report.chromium():
        raise ConfigError("--pdf prints the reports with headless Chromium, which is not installed: install it with "
                          "'apt-get install chromium' (make setup does, as root), or run without --pdf")
    if engine.name == "local":
        for run in runs:
            if isinstance(problem := data_size(run.config), str):
                raise ConfigError(f"{sweep.path} (run {run.name}): {problem}")
    check_data_sizes(sweep.path, runs)
    if problem := unwritable(out, REPORTS_MB):
        raise ConfigError(f"--out {out}: {problem}; choose another folder with --out")
    for run in runs:
        scored = run.config.data.name in EVALUATOR_SIZES and any("evaluation" in p.stem for p in sweep.notebooks)
        if scored:
            try:
                evaluators.identity(run.config)  # a shipped evaluator asked for where none ships, or damaged
            except evaluators.EvaluatorError as err:
                raise ConfigError(f"{sweep.path} (run {run.name}): {err}") from None
        if scored and (problem := unwritable(run.config.eval.cache_dir, CACHE_MB)):
            raise ConfigError(f"{sweep.path} (run {run.name}): eval.cache_dir = {run.config.eval.cache_dir}: {problem}; "
                              "set eval.cache_dir (or --set eval.cache_dir=FOLDER) to a folder you can write")


@contextmanager
def sweep_lock(sweep_dir: Path) -> Iterator[None]:
    """Hold the sweep folder for this process: a second sweep into it is refused. The lock is
    the operating system's (flock), so a sweep that crashed or was killed holds nothing.

    Raises:
        ConfigError: another process holds the folder (naming it).
    """
    path = SweepDir(sweep_dir).lock
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(f"{sweep_dir}: another sweep is running into this folder ({holder}); wait for it "
                              "to finish or stop it, or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {platform.node()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_locked(sweep: Sweep, sweep_dir: Path, runs: list[Run], engine: executors.ExecutorSettings, pdf: str,
                force: bool, log: Callable[[str], None]) -> int:
    jobs = engine.jobs
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
    background = []  # evaluators trained while the first runs train
    if jobs_todo and any("evaluation" in p.stem for p in sweep.notebooks):
        background = _prepare_references([jobs_todo[r.name] for r in runs if r.name in jobs_todo], log)
        if engine.name != "local":  # other machines share the cache, not necessarily its lock: train first
            for process in background:
                process.wait()
    counts = sorted({job.threads for job in jobs_todo.values()}) or [threads]
    log(f"{sweep.path}: {len(runs)} runs, {len(jobs_todo)} to execute, {executors.describe(engine)}, "
        f"{'/'.join(map(str, counts))} threads each -> {sweep_dir}")
    try:
        results = executors.submit_jobs(list(jobs_todo.values()), engine, log)
    except BaseException:  # Ctrl-C, SIGTERM, an engine's failure: the index still tells what happened
        executors.stop_processes(background)
        with contextlib.suppress(Exception):
            log(f"index: {build_index(sweep, sweep_dir, pdf).resolve()}")
        raise
    executors.stop_processes(background)  # done by now: the runs' evaluations waited for them
    index = build_index(sweep, sweep_dir, pdf)
    failed = [r for r in results if r["status"] != "ok"]
    log(f"index: {index.resolve()}")
    if failed:
        log(f"{len(failed)} of {len(runs)} runs failed: " + "; ".join(
            f"{r['run']} ({r.get('failed_notebook')}: {r.get('error')})" for r in failed))
        return 1
    return 0


def _prepare_references(jobs: list[Job], log: Callable[[str], None]) -> list[subprocess.Popen]:
    """Make each missing real side of the runs' scores (the evaluator, the test split's features,
    their k-NN radii and the floor: ``evaluators.reference_stamp``) before a run needs it, so no
    run computes it or waits idle on another that does. A shipped evaluator's takes seconds:
    made here, on every core, before the runs start. One trained here takes minutes: made in a
    process of its own (one thread) while the first runs train; a run's evaluation that needs it
    waits on the cache's lock. Returns those processes."""
    started, processes = set(), []
    for job in jobs:
        config = config_lib.load(RunDir(job.run_dir).config)
        if config.data.name not in EVALUATOR_SIZES:
            continue  # no scores to prepare
        stamp, _ = evaluators.reference_stamp(config)
        if stamp.exists() or stamp in started:
            continue
        started.add(stamp)
        name, cached = config.data.name, f"(once; cached in {stamp.parent})"
        if evaluators.uses_shipped(config):
            from ..evaluation.run import prepare_reference
            start = time.perf_counter()
            prepare_reference(config, log=lambda line: None)
            log(f"prepared the {name} evaluator's test features and floor in {time.perf_counter() - start:.0f} s {cached}")
            continue
        log(f"training the {name} evaluator and preparing its test features and floor in the background {cached}")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "gan_core.evaluation.run", str(RunDir(job.run_dir).config)],
            env=dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    return processes


def _write_sweep_file(sweep: Sweep, sweep_dir: Path) -> None:
    """sweep.json, for the index: the runs in order, what each changes, the value each ran with
    of every setting some run changes (None where its family has no such key), its configuration, variant and reference; the claims."""
    varied = list(dict.fromkeys(k for r in sweep.runs for k in r.overrides if k != "train.seed"))
    write_json(SweepDir(sweep_dir).sweep_file, {
        "sweep": shown(sweep.path, sweep_dir), "base": shown(sweep.base, sweep_dir),  # pages show no machine path
        "runs": [{"name": r.name, "overrides": r.overrides, "configuration": r.configuration, "seed": r.seed,
                  "variant": r.variant, "reference": r.reference,
                  "settings": {k: config_lib.flatten(r.config.to_dict()).get(k) for k in varied}} for r in sweep.runs],
        "claims": [claims.to_dict(c) for c in sweep.claims]})


def build_index(sweep: Sweep, sweep_dir: Path, pdf: str = "") -> Path:
    """Execute the summary notebook over the sweep's folder into index.html (and summary.csv),
    and index.pdf on ``pdf`` pages unless ``pdf`` is ""."""
    notebook = NOTEBOOKS / f"{SUMMARY_NOTEBOOK}.ipynb"
    files = SweepDir(sweep_dir)
    executed, page = files.index_notebook, files.index
    try:
        with started_kernel(sweep_dir) as kernel:
            execute_notebook(notebook, executed, {"sweep_dir": str(sweep_dir.resolve())}, sweep_dir, kernel)
    finally:
        if executed.exists():
            report.render_html(executed, page, code=sweep.code)
            print_pdf(page, pdf)
    return page
