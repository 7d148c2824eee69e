"""Where a sweep's runs execute: local processes (one per run, ``local``), a Dask cluster, or SLURM through submitit.

Every engine runs the same ``job.Job`` through ``job.execute_run`` (locally: one process per
run, ``python -m gan_core.orchestration.job``), in the run's
own folder (shared storage beyond one machine), so a run lands in ``reports/<sweep>/<run>/``
whichever engine ran it, and the index is built when all are done. A worker that dies or a job
that is preempted leaves its run resumable: training continues from checkpoints/last.pt and
completed runs are skipped, so running the sweep again loses and repeats nothing.

Which engine and what each run gets: ``settings``.
"""
from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

from .job import Job, execute_run
from .local import cuda_devices, gpu_note, gpu_slot, outcome, run_local, stop_processes
from .settings import (NAMES, SLURM_CPUS, ExecutorSettings, engine_module, dask_connect, describe, parse_settings,
                       require, with_flags)


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


def _dask(jobs: list[Job], settings: ExecutorSettings, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Dask distributed: the scheduler at ``address``, or a LocalCluster on loopback.

    A run whose worker dies is rescheduled by Dask on another worker (up to its
    ``distributed.scheduler.allowed-failures``) and resumes from its checkpoint there.
    GPUs are Dask worker resources: start each worker with ``--resources GPU=1`` and its own
    CUDA_VISIBLE_DEVICES; the LocalCluster started here does both.
    """
    distributed = engine_module("dask")
    resources = {"GPU": settings.gpus_per_run} if settings.gpus_per_run else None
    with ExitStack() as stack:
        if settings.address:
            client, devices = dask_connect(distributed, settings.address), []
            stack.callback(client.close)
            log(f"dask: scheduler {settings.address}, {len(client.nthreads())} workers")
            if resources and not _gpu_workers(client):
                log("dask: no worker offers a GPU yet (start them with --resources GPU=1); the runs wait for one")
        else:
            devices = cuda_devices() if settings.gpus_per_run else []
            gpu_note(settings, devices, log)
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=min(settings.jobs, len(jobs)), threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=None, resources=resources,
                silence_logs=logging.ERROR))  # a worker outlives close() by seconds: the kill warning is noise
            client = stack.enter_context(distributed.Client(cluster))
            log(f"dask: LocalCluster {cluster.scheduler_address}, {len(cluster.workers)} workers of 1 thread")
        futures = {client.submit(_dask_task, job, devices, settings.gpus_per_run or 1,
                                 pure=False, resources=resources): job for job in jobs}
        return [outcome(futures[future], future.result, log)
                for future in distributed.as_completed(futures)]


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
    submitit = engine_module("slurm")
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
    return [outcome(job, remote.result, log) for remote, job in zip(submitted, jobs)]


ENGINES: dict[str, Callable[[list[Job], ExecutorSettings, Callable[[str], None]], list[dict[str, Any]]]] = {
    "local": run_local, "dask": _dask, "slurm": _slurm}


__all__ = ["ENGINES", "NAMES", "SLURM_CPUS", "ExecutorSettings", "RequeueRun", "cuda_devices", "describe",
           "gpu_slot", "parse_settings", "require", "stop_processes", "submit_jobs", "with_flags"]
