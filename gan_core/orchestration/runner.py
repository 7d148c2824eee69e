"""Executing a sweep: each run's job (its work, then its pages: ``job``), then the sweep's
tables across runs (``reporting.aggregate``) and its index page.

A run is one process (its work in a worker process, its notebooks in one kernel, both its
children), so runs go in parallel as processes on this machine with the CPU threads divided
between them, or over Dask or SLURM (executors.py). Kernels talk over IPC sockets in private
temporary folders, not TCP ports, so parallel kernel start-ups cannot race for a port. One
sweep at a time holds a sweep folder.
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from .. import config as config_lib
from .. import evaluators
from ..analysis import claims
from ..config import ConfigError
from ..paths import shown
from ..reporting import aggregate
from ..reporting import html as report
from ..rundir import RunDir, SweepDir, unwritable, write_json
from . import executors
from .job import Job, execute_notebook, print_pdf, started_kernel
from .sweep import NOTEBOOKS, SUMMARY_NOTEBOOK, Run, Sweep, check_data_sizes, data_size, run_key, settings


@dataclass(frozen=True)
class Options:
    """How a sweep's runs execute (the CLI's flags), beside what the sweep file says."""

    threads: int = 1  # CPU threads per run
    force: bool = False  # every run afresh
    resume: bool = False  # only the runs that did not finish; finished ones stay as they are
    pdf: str = ""  # the PDFs' page size, "" for none
    timeout_s: float = 0.0  # each run's time limit (--run-timeout); 0: none


def prepare_run(run: Run, sweep: Sweep, sweep_dir: Path, options: Options,
                log: Callable[[str], None]) -> Job | None:
    """Write the run's config.yaml and return its Job, or None when it is complete and unchanged
    (with ``options.resume``: complete, even where gan_core's code or the notebooks changed since).

    A run whose folder holds results of a different config is moved to ``_previous/`` first,
    never overwritten; ``options.force`` starts the run afresh.
    """
    threads, force, pdf = options.threads, options.force, options.pdf
    run_dir = sweep_dir / run.name
    config = run.config.replace({"train.threads": run.config.train.threads or threads,
                                 "train.progress": False})
    key = run_key(config, sweep.notebooks, sweep.code, sweep.parameters)
    files = RunDir(run_dir)
    done = files.done
    finished = done.exists() and (done.read_text() == key or options.resume and _same_config(files.config, config))
    if not force and finished:
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
               tuple(sweep.parameters.items()), options.timeout_s)


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
              force: bool = False, only: str | None = None, log: Callable[[str], None] = print,
              resume: bool = False, run_timeout: float = 0.0) -> int:
    """Run a sweep's missing or changed runs, then build its index; returns 0 if all runs are ok.

    Args:
        pdf: also print every page to PDF, on the sweep's ``report.page_size`` pages.
        force: run every selected run afresh. resume: only the runs that did not finish.
        run_timeout: each run's time limit in seconds (0: none); a run past it fails alone.
    """
    if force and resume:
        raise ConfigError("--force reruns every run from scratch and --resume only the unfinished ones: choose one")
    if run_timeout < 0:
        raise ConfigError(f"--run-timeout must be >= 0 seconds (0: no limit; got {run_timeout:g})")
    engine = replace(sweep.executor, jobs=jobs)
    executors.require(engine)  # a missing engine stops the sweep before any run is touched
    runs = select(sweep.runs, only)
    preflight(sweep, runs, Path(out), pdf, engine)
    sweep_dir = Path(out) / sweep.name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with sweep_lock(sweep_dir):
        options = Options(threads_per_run(engine, len(runs)), force, resume, sweep.page_size if pdf else "",
                          run_timeout)
        return _run_locked(sweep, sweep_dir, runs, engine, options, log)


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
        try:  # a shipped evaluator asked for where none ships, or damaged; a data set without files
            scored = evaluators.unscored(run.config) is None
            if scored:
                evaluators.identity(run.config)
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


def threads_per_run(engine: executors.ExecutorSettings, runs: int) -> int:
    """CPU threads each run gets: the engine's, else this machine's cores divided between the
    runs that execute at once."""
    if engine.cpus_per_run:
        return engine.cpus_per_run
    if engine.name == "slurm":
        return executors.SLURM_CPUS
    return max(1, (os.cpu_count() or 1) // max(1, min(engine.jobs, runs)))


def _run_locked(sweep: Sweep, sweep_dir: Path, runs: list[Run], engine: executors.ExecutorSettings,
                options: Options, log: Callable[[str], None]) -> int:
    jobs_todo = {}
    for run in runs:
        job = prepare_run(run, sweep, sweep_dir, options, log)
        if job is None:
            log(f"{run.name}: complete and unchanged, skipped (--force reruns it)")
        else:
            jobs_todo[run.name] = job
    _write_sweep_file(sweep, sweep_dir)
    background = _prepare_references([jobs_todo[r.name] for r in runs if r.name in jobs_todo], log)
    if engine.name != "local":  # other machines share the cache, not necessarily its lock: prepare first
        for process in background:
            process.wait()
    counts = sorted({job.threads for job in jobs_todo.values()}) or [options.threads]
    log(f"{sweep.path}: {len(runs)} runs, {len(jobs_todo)} to execute, {executors.describe(engine)}, "
        f"{'/'.join(map(str, counts))} threads each"
        f"{f', at most {options.timeout_s:g} s each' if options.timeout_s else ''} -> {sweep_dir}")
    try:
        results = executors.submit_jobs(list(jobs_todo.values()), engine, log)
    except BaseException:  # Ctrl-C, SIGTERM, an engine's failure: the index still tells what happened
        executors.stop_processes(background)
        with contextlib.suppress(Exception):
            log(f"index: {build_index(sweep, sweep_dir, options.pdf).resolve()}")
        raise
    executors.stop_processes(background)  # done by now: the runs' evaluations waited for them
    index = build_index(sweep, sweep_dir, options.pdf)
    failed = [r for r in results if r["status"] != "ok"]
    log(f"index: {index.resolve()}")
    if failed:
        log(f"{len(failed)} of {len(runs)} runs failed: " + "; ".join(
            f"{r['run']} ({r.get('failed_step')}: {r.get('error')})" for r in failed)
            + "; run the same command with --resume to finish them")
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
        if evaluators.unscored(config):
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
    """sweep.json, for the index: the runs in order with what each changes, its configuration,
    seed, variant and reference, and its values of the settings some run changes (what the index
    shows before a run has its config.yaml, the one copy of a run's config); the claims."""
    varied = list(dict.fromkeys(k for r in sweep.runs for k in r.overrides if k != "train.seed"))
    write_json(SweepDir(sweep_dir).sweep_file, {
        "sweep": shown(sweep.path, sweep_dir), "base": shown(sweep.base, sweep_dir),  # pages show no machine path
        "runs": [{"name": r.name, "overrides": r.overrides, "configuration": r.configuration, "seed": r.seed,
                  "variant": r.variant, "reference": r.reference,
                  "settings": {k: config_lib.flatten(r.config.to_dict()).get(k) for k in varied}}
                 for r in sweep.runs],
        "varied": varied, "claims": [claims.to_dict(c) for c in sweep.claims]})


def build_index(sweep: Sweep, sweep_dir: Path, pdf: str = "") -> Path:
    """The sweep's tables across runs (``reporting.aggregate``: summary, comparison, claims and
    verdicts CSVs), then the summary notebook that renders them into index.html, and index.pdf on
    ``pdf`` pages unless ``pdf`` is ""."""
    notebook = NOTEBOOKS / f"{SUMMARY_NOTEBOOK}.ipynb"
    files = SweepDir(sweep_dir)
    aggregate.write(sweep_dir)
    try:
        with started_kernel(sweep_dir) as kernel:
            execute_notebook(notebook, files.index_notebook, {"sweep_dir": str(sweep_dir.resolve()), "compute": False},
                             sweep_dir, kernel)
    finally:
        if files.index_notebook.exists():
            report.quiet(files.index_notebook, lambda line: None, sweep_dir)
            report.render_html(files.index_notebook, files.index, code=sweep.code)
            print_pdf(files.index, pdf)
    return files.index
