"""How a sweep's runs execute: the engine (local processes, Dask, SLURM through submitit) and
each run's resources, from a sweep file's ``executor:`` section and the CLI's flags, checked
before any run (``require``). The engines themselves: ``executors`` (and ``local``).

A sweep file chooses the engine (CLI flags override it)::

    executor: {name: dask, address: "tcp://host:8786", gpus_per_run: 1}
    executor: {name: slurm, partition: gpu, time_min: 240, gpus_per_run: 1, cpus_per_run: 8,
               array_parallelism: 4}
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import ConfigError

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
    module = engine_module(settings.name)
    if settings.name == "dask" and settings.address:
        dask_connect(module, settings.address).close()
    if settings.name == "slurm" and (settings.cluster or "slurm") == "slurm" and not shutil.which("sbatch"):
        raise ConfigError("the slurm executor submits with sbatch, which is not on PATH here: run the sweep "
                          "on a SLURM login node, or set executor.cluster: local to try it on this machine")


def engine_module(name: str) -> Any:
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


def dask_connect(distributed: Any, address: str) -> Any:
    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as err:
        raise ConfigError(f"no Dask scheduler answered at {address!r} in {CONNECT_TIMEOUT_S} s "
                          f"({type(err).__name__}); start one with 'dask scheduler' "
                          "and workers with 'dask worker ADDRESS', or leave the address out for a "
                          "LocalCluster") from None
