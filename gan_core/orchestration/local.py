"""The local engine: one process per run on this machine (``python -m gan_core.orchestration.job``),
``--jobs`` at a time, each in its own process group, with a progress line over the sweep; and
what every engine shares: a run's outcome as its engine reports it, or as its folder says when
its worker was lost, and the GPUs of each worker slot."""
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
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from ..rundir import RunDir, RunIncomplete, write_atomic
from .job import Job
from .settings import ExecutorSettings

PROGRESS_EVERY_S = 30  # a line on the running runs at least this often (a sweep is never silent for long)
PROGRESS_VERBOSE_S = 5  # the same with --verbose (the gan_core logger at DEBUG)
BAR_WIDTH = 20


def outcome(job: Job, result: Callable[[], dict[str, Any]], log: Callable[[str], None]) -> dict[str, Any]:
    """The job's result, or a failed one when the engine lost it; logged either way."""
    try:
        outcome = result()
    except Exception as err:  # the worker died, the job was killed or cancelled: the run stays resumable
        outcome = lost(job, err)
    name = outcome["run"]
    log(f"{name}: {outcome['status']} in {outcome.get('duration_s', '?')} s"
        + (f" ({outcome.get('failed_step')}: {outcome.get('error')})" if outcome["status"] != "ok" else ""))
    return outcome


def lost(job: Job, err: Exception) -> dict[str, Any]:
    """A run whose job never answered: done if its .done says so, else failed where its status
    last was (the step under way) and resumable."""
    run = RunDir(job.run_dir)
    status = run.read_status()
    if run.done.exists() and run.done.read_text() == job.key:  # it finished; only its answer was lost
        return {"run": run.name, **status}
    if isinstance(err, (KeyboardInterrupt, SystemExit)):
        error = "interrupted: the sweep was stopped"
    elif isinstance(err, RunProcessDied):
        error = str(err)
    else:
        error = f"{type(err).__name__}: {(str(err).strip().splitlines() or [repr(err)])[0][:300]}"
    where = status.get("step") if status.get("status") == "running" else None
    status.update(status="failed", failed_step=where or "executor", failed_link="",
                  error=f"{error}; run the sweep again with --resume to resume it from its last checkpoint")
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


def gpu_note(settings: ExecutorSettings, devices: list[str], log: Callable[[str], None]) -> None:
    if devices:
        log(f"{len(devices)} CUDA devices, {settings.gpus_per_run or 1} per run (CUDA_VISIBLE_DEVICES per worker)")
    elif settings.gpus_per_run:
        log(f"gpus_per_run {settings.gpus_per_run}: no CUDA device is visible here; runs use the CPU")


# --- the engines -----------------------------------------------------------------------------


def run_local(jobs: list[Job], settings: ExecutorSettings, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """One process per run on this machine, ``settings.jobs`` at a time, each in its own
    process group: a run whose process dies (killed, out of memory) fails alone and stays
    resumable; Ctrl-C or SIGTERM of the sweep stops every running run's group before it returns."""
    devices = cuda_devices() if settings.gpus_per_run != 0 else []
    gpu_note(settings, devices, log)
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
                results.append(outcome(job, lambda: _finished(job, process), log))
    except BaseException as err:  # Ctrl-C, SIGTERM, any failure here: no run goes on unseen
        stop_processes(list(running))
        for job, _, _ in running.values():
            log(f"{lost(job, err)['run']}: interrupted; running the sweep again resumes it")
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _progress(running: list[tuple[Job, float]], total: int, finished: int) -> str:
    """One line: a bar over the sweep's runs, then each running run (``(job, start time)``) with
    its step (training with its epoch, evaluation, analysis, a notebook n of N) and its time so far."""
    filled = round(BAR_WIDTH * finished / total) if total else 0
    parts = []
    for job, started in running:
        run = RunDir(job.run_dir)
        step = run.read_status().get("step", "starting")
        stems = [Path(p).stem for p in job.notebooks]
        where = f"notebook {stems.index(step) + 1}/{len(stems)} {step}" if step in stems else step
        elapsed = int(time.monotonic() - started)
        parts.append(f"{run.name}: {where}{_epoch(run) if step == 'training' else ''}, "
                     f"{elapsed // 60}:{elapsed % 60:02d}")
    return (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {finished}/{total} runs done, {len(running)} running"
            + (f" | {'; '.join(parts)}" if parts else ""))


def _epoch(run: RunDir) -> str:
    """", epoch 3/5": the epoch of the newest row of the run's log.csv, of the epochs its trainer
    planned (family.json)."""
    try:
        with open(run.log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            epoch = int(f.read().splitlines()[-1].split(b",")[0])
        epochs = run.family()["epochs"]
    except (OSError, ValueError, IndexError, KeyError, TypeError, RunIncomplete):
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
        raise RunProcessDied(f"the run's job process was killed by {signal.Signals(-code).name}"
                             + (" (out of memory?)" if code == -signal.SIGKILL else ""))
    stderr = Path(process.args[-1]).with_name("stderr").read_text(errors="replace").strip().splitlines()
    raise RunProcessDied(f"the run's job process exited with {code}: {stderr[-1] if stderr else 'no message'}")


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
