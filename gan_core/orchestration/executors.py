"""Where a sweep's runs execute: local processes (one per run), a Dask cluster, or SLURM through submitit.

Every engine runs the same ``job.Job`` through ``job.execute_run`` (locally: one process per
run, ``python -m gan_core.orchestration.job``), in the run's
own folder (shared storage beyond one machine), so a run lands in ``reports/<sweep>/<run>/``
whichever engine ran it, and the index is built when all are done. A worker that dies or a job
that is preempted leaves its run resumable: training continues from checkpoints/last.pt and
completed runs are skipped, so running the sweep again loses and repeats nothing.

A sweep file chooses the engine (CLI flags override it)::

    executor: {name: dask, address: "tcp://host:8786", gpus_per_run: 1}
    executor: {name: slurm, partition: gpu, time_min: 240, gpus_per_run: 1, cpus_per_run: 8,
               array_parallelism: 4}
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from ..config import ConfigError
from ..rundir import RunDir, write_atomic
from .job import Job, execute_run

NAMES = ("local", "dask", "slurm")
COMMON_KEYS = {"name", "gpus_per_run", "cpus_per_run"}
ENGINE_KEYS = {"local": set(), "dask": {"address"},
               "slurm": {"partition", "time_min", "array_parallelism", "folder", "cluster"}}
KEY_TYPES = {"name": str, "address": str, "partition": str, "folder": str, "cluster": str,
             "gpus_per_run": int, "cpus_per_run": int, "time_min": int, "array_parallelism": int}
MINIMUM = {"gpus_per_run": 0, "cpus_per_run": 1, "time_min": 1, "array_parallelism": 1}
CLUSTERS = ("slurm", "local", "debug")  # submitit's: SLURM, a subprocess each, or in this process
FLAGS = {"name": "--executor", "address": "--scheduler", "partition": "--partition",
         "time_min": "--time-min", "gpus_per_run": "--gpus-per-run"}
CONNECT_TIMEOUT_S = 20
PROGRESS_EVERY_S = 30  # a line on the running runs at least this often (a sweep is never silent for long)
PROGRESS_VERBOSE_S = 5  # the same with --verbose (the gan_core logger at DEBUG)
BAR_WIDTH = 20
SLURM_CPUS = 4  # CPUs of a SLURM task when cpus_per_run is not set (the submitting node's count means nothing there)


@dataclass(frozen=True)
class ExecutorSettings:
    """The engine and the resources of each run; from a sweep's ``executor:`` and the CLI."""

    name: str = "local"
    gpus_per_run: int | None = None  # None: local gives each run one GPU when CUDA is there; dask/slurm none
    cpus_per_run: int | None = None  # None: this machine's cores divided between the parallel runs
    address: str | None = None  # dask: the scheduler's address; None starts a LocalCluster on loopback
    partition: str | None = None  # slurm: None is the cluster's default partition
    time_min: int = 240  # slurm: time limit of one run; a run cut off there is requeued and resumes
    array_parallelism: int | None = None  # slurm: runs at a time; None: --jobs
    folder: str | None = None  # slurm: submitit's scripts, pickles and logs; None: reports/<sweep>/_slurm
    cluster: str | None = None  # slurm: submitit's slurm (None), local or debug (both on this machine)
    jobs: int = 1  # --jobs: runs at a time locally, the LocalCluster's workers, the default array parallelism


def parse_settings(raw: Any, origin: str | Path) -> ExecutorSettings:
    """Validate a sweep file's ``executor:`` mapping (None: local processes).

    Raises:
        ConfigError: naming ``origin``, the key and the value.
    """
    if raw is None:
        return ExecutorSettings()
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: executor must be a mapping, e.g. {{name: dask}} (got {raw!r})")
    values = {k: v for k, v in raw.items() if v is not None}
    name = _checked("name", values.get("name", "local"), f"{origin}: executor.name")
    for key in sorted(set(values) - COMMON_KEYS - ENGINE_KEYS[name]):
        owner = next((n for n, keys in ENGINE_KEYS.items() if key in keys), None)
        hint = (f"a setting of the {owner} executor, this one is {name}" if owner else
                f"known for {name}: {', '.join(sorted(COMMON_KEYS | ENGINE_KEYS[name]))}")
        raise ConfigError(f"{origin}: unknown key executor.{key} ({hint})")
    return ExecutorSettings(**{k: _checked(k, v, f"{origin}: executor.{k}") for k, v in values.items()})


def with_flags(settings: ExecutorSettings, **flags: Any) -> ExecutorSettings:
    """``settings`` overridden by CLI flags (``name``, ``address``, ...; None: flag not given).

    A flag naming another engine drops the file's settings that belong to the file's engine.

    Raises:
        ConfigError: naming the flag and its value.
    """
    flags = {k: _checked(k, v, FLAGS[k]) for k, v in flags.items() if v is not None}
    name = flags.get("name", settings.name)
    if name != settings.name:
        settings = ExecutorSettings(name=name, gpus_per_run=settings.gpus_per_run,
                                    cpus_per_run=settings.cpus_per_run, jobs=settings.jobs)
    for key in sorted(set(flags) - COMMON_KEYS - ENGINE_KEYS[name]):
        owner = next(n for n, keys in ENGINE_KEYS.items() if key in keys)
        raise ConfigError(f"{FLAGS[key]} is a setting of the {owner} executor (add --executor {owner})")
    return replace(settings, **flags)


def _checked(key: str, value: Any, where: str) -> Any:
    kind = KEY_TYPES[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where} must be an integer (got {value!r})")
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string (got {value!r})")
    if key in MINIMUM and value < MINIMUM[key]:
        raise ConfigError(f"{where} must be >= {MINIMUM[key]} (got {value!r})")
    for allowed in ((NAMES,) if key == "name" else (CLUSTERS,) if key == "cluster" else ()):
        if value not in allowed:
            raise ConfigError(f"{where} must be one of {', '.join(allowed)} (got {value!r})")
    return value


def require(settings: ExecutorSettings) -> None:
    """Check the engine can take runs (its package, the scheduler, sbatch) before any run starts.

    Raises:
        ConfigError: naming the pip extra, the address or the missing command.
    """
    module = _engine_module(settings.name)
    if settings.name == "dask" and settings.address:
        _dask_connect(module, settings.address).close()
    if settings.name == "slurm" and (settings.cluster or "slurm") == "slurm" and not shutil.which("sbatch"):
        raise ConfigError("the slurm executor submits with sbatch, which is not on PATH here: run the sweep "
                          "on a SLURM login node, or set executor.cluster: local to try it on this machine")


def _engine_module(name: str) -> Any:
    try:
        if name == "dask":
            import distributed
            return distributed
        if name == "slurm":
            import submitit
            return submitit
    except ImportError as err:
        package = "dask.distributed" if name == "dask" else "submitit"
        raise ConfigError(f"the {name} executor needs {package}: pip install '.[{name}]' in the repository "
                          f"({type(err).__name__}: {err})") from None
    return None


def describe(settings: ExecutorSettings) -> str:
    """How the runs execute, for the sweep's opening log line."""
    if settings.name == "dask":
        return f"on Dask {settings.address}" if settings.address else \
            f"on a Dask LocalCluster, {settings.jobs} at a time"
    if settings.name == "slurm":
        return (f"on {settings.cluster or 'SLURM'} through submitit"
                f"{f' (partition {settings.partition})' if settings.partition else ''}, "
                f"{settings.array_parallelism or settings.jobs} at a time")
    return f"{settings.jobs} at a time"


def submit_jobs(jobs: list[Job], settings: ExecutorSettings,
                log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Execute ``jobs`` on the settings' engine and wait for all of them.

    Returns:
        One result per job (``execute_run``'s), in completion order; a job whose worker died,
        was cancelled or failed for good is a ``failed`` result, and its status.json says so.
    """
    if not jobs:
        return []
    return ENGINES[settings.name](jobs, settings, log)


def _outcome(job: Job, result: Callable[[], dict[str, Any]], log: Callable[[str], None]) -> dict[str, Any]:
    """The job's result, or a failed one when the engine lost it; logged either way."""
    try:
        outcome = result()
    except Exception as err:  # the worker died, the job was killed or cancelled: the run stays resumable
        outcome = _lost(job, err)
    name = outcome["run"]
    log(f"{name}: {outcome['status']} in {outcome.get('duration_s', '?')} s"
        + (f" ({outcome.get('failed_notebook')}: {outcome.get('error')})" if outcome["status"] != "ok" else ""))
    return outcome


def _lost(job: Job, err: Exception) -> dict[str, Any]:
    """A run whose worker never answered: done if its .done says so, else failed and resumable."""
    run = RunDir(job.run_dir)
    status = run.read_status()
    if run.done.exists() and run.done.read_text() == job.key:  # it finished; only its answer was lost
        return {"run": run.name, **status}
    if isinstance(err, (KeyboardInterrupt, SystemExit)):
        error = "interrupted: the sweep was stopped"
    else:
        error = f"{type(err).__name__}: {(str(err).strip().splitlines() or [repr(err)])[0][:300]}"
    status.update(status="failed", failed_notebook="executor", failed_link="",
                  error=f"{error}; run the sweep again to resume it from its last checkpoint")
    run.write_status(status)
    return {"run": run.name, **status}


# --- GPUs: one set per worker slot -----------------------------------------------------------
def cuda_devices() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES names them ([] without CUDA)."""
    import torch
    count = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [d.strip() for d in visible.split(",") if d.strip()] if visible else [str(i) for i in range(count)]
    return names[:count]


def gpu_slot(devices: list[str], per_run: int, slot: int) -> list[str]:
    """The devices of worker ``slot``: ``per_run`` of them, round-robin over ``devices``."""
    start = slot * per_run
    return list(dict.fromkeys(devices[(start + k) % len(devices)] for k in range(min(per_run, len(devices)))))


def _gpu_note(settings: ExecutorSettings, devices: list[str], log: Callable[[str], None]) -> None:
    if devices:
        log(f"{len(devices)} CUDA devices, {settings.gpus_per_run or 1} per run (CUDA_VISIBLE_DEVICES per worker)")
    elif settings.gpus_per_run:
        log(f"gpus_per_run {settings.gpus_per_run}: no CUDA device is visible here; runs use the CPU")


# --- the engines -----------------------------------------------------------------------------
def _local(jobs: list[Job], settings: ExecutorSettings, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """One process per run on this machine, ``settings.jobs`` at a time, each in its own
    process group: a run whose process dies (killed, out of memory) fails alone and stays
    resumable; Ctrl-C or SIGTERM of the sweep stops every running run's group before it returns."""
    devices = cuda_devices() if settings.gpus_per_run != 0 else []
    _gpu_note(settings, devices, log)
    per_run = settings.gpus_per_run or 1
    free = list(range(min(settings.jobs, len(jobs))))  # worker slots: each its own GPUs
    queue, running, results = list(jobs), {}, []
    scratch = Path(tempfile.mkdtemp(prefix="gan-sweep-"))  # job files and stderr, not in run folders
    every = PROGRESS_VERBOSE_S if logging.getLogger("gan_core").isEnabledFor(logging.DEBUG) else PROGRESS_EVERY_S
    last_note = time.monotonic()
    try:
        while queue or running:
            if time.monotonic() - last_note > every:
                log(_progress([(job, started) for job, _, started in running.values()], len(jobs), len(results)))
                last_note = time.monotonic()
            while queue and free:
                job, slot = queue.pop(0), free.pop(0)
                running[_start(job, scratch / f"{len(queue)}-{slot}", gpu_slot(devices, per_run, slot)
                               if devices else [])] = (job, slot, time.monotonic())
            time.sleep(0.2)
            for process in [p for p in running if p.poll() is not None]:
                job, slot, _ = running.pop(process)
                free.append(slot)
                results.append(_outcome(job, lambda: _finished(job, process), log))
    except BaseException as err:  # Ctrl-C, SIGTERM, any failure here: no run goes on unseen
        stop_processes(list(running))
        for job, _, _ in running.values():
            log(f"{_lost(job, err)['run']}: interrupted; running the sweep again resumes it")
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _progress(running: list[tuple[Job, float]], total: int, finished: int) -> str:
    """One line: a bar over the sweep's runs, then each running run (``(job, start time)``) with
    its notebook (n of N), its epoch while it trains, and its time so far."""
    filled = round(BAR_WIDTH * finished / total) if total else 0
    parts = []
    for job, started in running:
        run = RunDir(job.run_dir)
        notebook = run.read_status().get("notebook")
        stems = [Path(p).stem for p in job.notebooks]
        where = f"notebook {stems.index(notebook) + 1}/{len(stems)} {notebook}" if notebook in stems else "starting"
        elapsed = int(time.monotonic() - started)
        parts.append(f"{run.name}: {where}{_epoch(run) if notebook == '02_training' else ''}, "
                     f"{elapsed // 60}:{elapsed % 60:02d}")
    return (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {finished}/{total} runs done, {len(running)} running"
            + (f" | {'; '.join(parts)}" if parts else ""))


def _epoch(run: RunDir) -> str:
    """", epoch 3/5": the epoch of the newest row of the run's log.csv, of the config's epochs."""
    try:
        with open(run.log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            epoch = int(f.read().splitlines()[-1].split(b",")[0])
        epochs = yaml.safe_load(run.config.read_text())["train"]["epochs"]
    except (OSError, ValueError, IndexError, KeyError, TypeError, yaml.YAMLError):
        return ""  # no row yet, or the header only
    return f", epoch {epoch}/{epochs}"


def _start(job: Job, files: Path, gpus: list[str]) -> subprocess.Popen:
    """Start ``job`` as ``python -m gan_core.orchestration.job`` in a new process group."""
    files.mkdir()
    write_atomic(files / "job.json", json.dumps(asdict(job)))
    env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": ",".join(gpus)} if gpus else {}))
    with open(files / "stderr", "wb") as stderr:  # the child's own stderr in a private folder: not shared
        return subprocess.Popen([sys.executable, "-m", "gan_core.orchestration.job", str(files / "job.json")],
                                env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)


def _finished(job: Job, process: subprocess.Popen) -> dict[str, Any]:
    """The run's status as its process left it; an error when the process died."""
    code = process.returncode
    if code == 0:
        return {"run": RunDir(job.run_dir).name, **RunDir(job.run_dir).read_status()}
    if code < 0:
        raise RunProcessDied(f"the run's process was killed by {signal.Signals(-code).name}"
                             + (" (out of memory?)" if code == -signal.SIGKILL else ""))
    stderr = Path(process.args[-1]).with_name("stderr").read_text(errors="replace").strip().splitlines()
    raise RunProcessDied(f"the run's process exited with {code}: {stderr[-1] if stderr else 'no message'}")


class RunProcessDied(RuntimeError):
    """A run's process ended without finishing the run."""


def stop_processes(processes: list[subprocess.Popen], grace_s: float = 10.0) -> None:
    """SIGTERM each process group, SIGKILL what is left after ``grace_s`` (kernels follow their run)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, sig)
        deadline = time.monotonic() + grace_s
        while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
            time.sleep(0.1)


def _dask(jobs: list[Job], settings: ExecutorSettings, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Dask distributed: the scheduler at ``address``, or a LocalCluster on loopback.

    A run whose worker dies is rescheduled by Dask on another worker (up to its
    ``distributed.scheduler.allowed-failures``) and resumes from its checkpoint there.
    GPUs are Dask worker resources: start each worker with ``--resources GPU=1`` and its own
    CUDA_VISIBLE_DEVICES; the LocalCluster started here does both.
    """
    distributed = _engine_module("dask")
    resources = {"GPU": settings.gpus_per_run} if settings.gpus_per_run else None
    with ExitStack() as stack:
        if settings.address:
            client, devices = _dask_connect(distributed, settings.address), []
            stack.callback(client.close)
            log(f"dask: scheduler {settings.address}, {len(client.nthreads())} workers")
            if resources and not _gpu_workers(client):
                log("dask: no worker offers a GPU yet (start them with --resources GPU=1); the runs wait for one")
        else:
            devices = cuda_devices() if settings.gpus_per_run else []
            _gpu_note(settings, devices, log)
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=min(settings.jobs, len(jobs)), threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=None, resources=resources,
                silence_logs=logging.ERROR))  # a worker outlives close() by seconds: the kill warning is noise
            client = stack.enter_context(distributed.Client(cluster))
            log(f"dask: LocalCluster {cluster.scheduler_address}, {len(cluster.workers)} workers of 1 thread")
        futures = {client.submit(_dask_task, job, devices, settings.gpus_per_run or 1,
                                 pure=False, resources=resources): job for job in jobs}
        return [_outcome(futures[future], future.result, log)
                for future in distributed.as_completed(futures)]


def _dask_connect(distributed: Any, address: str) -> Any:
    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as err:
        raise ConfigError(f"no Dask scheduler answered at {address!r} in {CONNECT_TIMEOUT_S} s "
                          f"({type(err).__name__}); start one with 'dask scheduler' "
                          "and workers with 'dask worker ADDRESS', or leave the address out for a "
                          "LocalCluster") from None


def _gpu_workers(client: Any) -> list[str]:
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return [address for address, info in workers.items() if info.get("resources", {}).get("GPU")]


def _dask_task(job: Job, devices: list[str], per_run: int) -> dict[str, Any]:
    """execute_run on a Dask worker; on our LocalCluster, pinned to the GPUs of the worker's number."""
    if devices:  # one single-threaded worker process per slot: the environment is the run's
        from distributed import get_worker
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_slot(devices, per_run, int(get_worker().name)))
    return execute_run(job)


class RequeueRun:
    """execute_run for submitit, requeued on preemption or timeout.

    submitit calls ``checkpoint`` when SLURM signals a preemption or the time limit
    (``submitit.helpers.Checkpointable``'s protocol); resubmitting the same job is enough,
    since the run resumes from checkpoints/last.pt and its finished notebooks are cheap.
    """

    def __call__(self, job: Job) -> dict[str, Any]:
        return execute_run(job)

    def checkpoint(self, job: Job) -> Any:
        import submitit
        return submitit.helpers.DelayedSubmission(self, job)


def _slurm(jobs: list[Job], settings: ExecutorSettings, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """SLURM through submitit: one array job, a task per run, one node and task each."""
    submitit = _engine_module("slurm")
    folder = Path(settings.folder) if settings.folder else Path(jobs[0].run_dir).parent / "_slurm"
    executor = submitit.AutoExecutor(folder=folder, cluster=settings.cluster or "slurm")
    executor.update_parameters(
        name=f"gan-{Path(jobs[0].run_dir).parent.name}", timeout_min=settings.time_min, nodes=1,
        tasks_per_node=1, cpus_per_task=jobs[0].threads,
        gpus_per_node=settings.gpus_per_run or 0, slurm_partition=settings.partition,
        slurm_array_parallelism=settings.array_parallelism or settings.jobs)
    submitted = executor.map_array(RequeueRun(), jobs)
    log(f"{executor.cluster}: submitted {len(submitted)} jobs "
        f"({', '.join(j.job_id for j in submitted[:4])}{' ...' if len(submitted) > 4 else ''}); logs in {folder}")
    return [_outcome(job, remote.result, log) for remote, job in zip(submitted, jobs)]


ENGINES: dict[str, Callable[[list[Job], ExecutorSettings, Callable[[str], None]], list[dict[str, Any]]]] = {
    "local": _local, "dask": _dask, "slurm": _slurm}
