"""Sweeps: a base config and a grid or list of overrides, run through the notebooks.

    base: ../quick.yaml              # the base config (relative to this file)
    set: {train.epochs: 3}           # overrides for every run (optional)
    grid:                            # every combination; run names like bs64-z10
      train.batch_size: [64, 128]
      model.latent_dim: [10, 100]
    variants:                        # named override sets (optional; crossed with the grid)
      lsgan: {loss.kind: mse}
    seeds: [0, 1, 2]                 # each configuration once per train.seed: runs bs64-z10-s0, ...
    reference: bce                   # the variant the others are compared with (default: the one
                                     #   without overrides, else the first)
    claims:                          # what the sweep is expected to show, declared before it runs
      - {claim: "LSGAN beats BCE", source: "a course report", predicts: {better: lsgan-bs64-z10,
         than: bce-bs64-z10, score: fd}}   # see gan_core.analysis.claims
    report: {code: false, notebooks: [01_architecture, 02_training],
             parameters: {sample_class: Bag},    # the notebooks' own parameters (optional)
             page_size: letter}                  # of the PDFs (--pdf): A4 (default), letter, A3 landscape, ...
    quick:                           # --quick: a CPU-sized version (optional)
      set: {train.epochs: 1}         #   joins set: (the variants and grid still override it)
      grid: {train.batch_size: [64]} #   replaces these axes of the grid
      variants: {lsgan: {train.epochs: 2}}  # joins these variants' overrides
      claims: [...]                  #   replaces claims: (where the quick grid renames configurations)
    executor: {name: dask, address: "tcp://host:8786"}   # where runs execute (executors.py)

Each run is one self-contained unit: ``reports/<sweep>/<run>/`` holds its config.yaml, its
executed notebooks and their HTML, and ``.done`` with the hash of config, notebooks and code,
so an unchanged, completed run is skipped and an interrupted one resumes from its checkpoint.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config as config_lib
from .. import families
from ..analysis import claims as claims_lib
from ..analysis.claims import CHECKPOINT_SCORES, Claim
from ..analysis.comparison import SCORE_DIRECTIONS
from ..config import RUNTIME_KEYS, Config, ConfigError
from ..paths import NOTEBOOKS, PACKAGE, REPO
from ..reporting.html import page_size
from .executors import ExecutorSettings, parse_settings

SUMMARY_NOTEBOOK = "07_sweep_summary"
EXPLORER_NOTEBOOK = "08_explore"  # interactive: not a page of each run's report unless asked for
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,99}")  # a run's folder: no '/', '..', HTML or spaces
SWEEP_KEYS = {"base", "set", "grid", "variants", "seeds", "report", "executor", "quick", "reference", "claims"}
QUICK_KEYS = {"set", "grid", "variants", "seeds", "claims"}
REPORT_KEYS = {"code", "notebooks", "parameters", "page_size"}
RUN_PARAMETERS = {"config_path", "run_dir", "progress", "compute"}  # set by the runner, or for JupyterLab alone
SHORT_NAMES = {"train.batch_size": "bs", "model.latent_dim": "z", "train.epochs": "ep",
               "optim_g.lr": "glr", "optim_d.lr": "dlr", "loss.kind": "", "loss.real_label": "real",
               "model.arch": "", "train.precision": "", "train.seed": "seed", "data.image_size": "px", "model.conditional": "cond"}


@dataclass(frozen=True)
class Run:
    """One run of a sweep: a readable name, what differs from the base, the config, and its
    configuration (everything but the seed: runs of one configuration differ only in seed)."""

    name: str
    overrides: dict[str, Any]
    config: Config
    configuration: str = ""
    seed: int | None = None  # set by the sweep's seeds:, else None
    variant: str = ""  # the sweep's variant it belongs to ("" without variants)
    reference: str = ""  # the configuration it is compared with (its reference variant's), "" if none


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    runs: list[Run]
    notebooks: list[Path]
    code: bool = False
    base: Path = field(default=Path())
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)  # runtime: not in run_key
    parameters: dict[str, Any] = field(default_factory=dict)  # report.parameters: the notebooks' own
    page_size: str = "A4"  # report.page_size: the PDFs' pages (runtime: not in run_key)
    claims: list[Claim] = field(default_factory=list)  # declared before the runs (analysis.claims)


def load_sweep(path: str | Path, quick: bool = False, overrides: dict[str, Any] | None = None) -> Sweep:
    """Read a sweep file and resolve and validate every run before anything executes.

    Args:
        quick: apply the file's ``quick`` section; the sweep is then named ``<name>-quick``.
        overrides: dotted-key overrides for every run (the CLI's ``--set``), applied last.
        Precedence: base < set (with quick.set) < variants < grid < overrides.

    Raises:
        ConfigError: naming the sweep file, the run and the key.
    """
    path = Path(path)
    raw = config_lib.read_yaml(path, "sweep")
    if quick:
        raw = _quick(path, raw)
    if "base" not in raw:
        raise ConfigError(f"{path}: a sweep needs 'base: CONFIG.yaml' (and 'grid' or 'variants')")
    if unknown := set(raw) - SWEEP_KEYS:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]} (known: {', '.join(sorted(SWEEP_KEYS))})")
    executor = parse_settings(raw.get("executor"), path)
    base_path = _find(path, raw["base"], "base")
    settings = _mapping(path, raw, "set")
    base = config_lib.load(base_path, settings, origin=f"{path}: set" + (" and quick.set" * quick))
    overrides = overrides or {}
    if overrides:
        base.replace(overrides, f"{path} with --set {', '.join(overrides)}")  # errors name --set, not the file
    seeds = _seeds(path, raw, overrides)
    runs = []
    for configuration in expand(path, raw):
        for seed in seeds or [None]:
            name, seeded = ((configuration.name, configuration.overrides) if seed is None else
                            (f"{configuration.name}-s{seed}", {**configuration.overrides, "train.seed": seed}))
            # set again with the run's own: a family section the base lacks (diffusion.* on a DCGAN
            # base) is checked there and dropped, and must reach the runs of that family
            config = base.replace({**settings, **seeded, **overrides}, f"{path} (run {name})")
            runs.append(Run(name, seeded, config, configuration.name, seed, configuration.variant,
                            configuration.reference))
    for run in runs:
        if not SAFE_NAME.fullmatch(run.name) or run.name.startswith("_"):
            raise ConfigError(f"{path}: run name {run.name!r} is not a safe folder name (letters, digits, "
                              f"'.', '_', '-', '+', '=', starting with a letter or digit, at most 100 characters; "
                              f"rename the variant or the grid value)")
    for run in runs:
        config_lib.check_installed(run.config, f"{path} (run {run.name})")
    if len({r.name for r in runs}) != len(runs):
        raise ConfigError(f"{path}: two runs share a name: {[r.name for r in runs]}")
    report = _mapping(path, raw, "report")
    if unknown := set(report) - REPORT_KEYS:
        raise ConfigError(f"{path}: unknown key report.{sorted(unknown)[0]}")
    wanted = report.get("notebooks") or sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")
                                               if p.stem not in (SUMMARY_NOTEBOOK, EXPLORER_NOTEBOOK))
    notebooks = [_find_notebook(path, name) for name in wanted]
    parameters = _notebook_parameters(path, _mapping(path, report, "parameters"), notebooks)
    try:
        page = page_size(report.get("page_size", "A4"))
    except ValueError as err:
        raise ConfigError(f"{path}: report.page_size: {err}") from None
    return Sweep(path.stem + ("-quick" if quick else ""), path, runs, notebooks, bool(report.get("code", False)),
                 base_path, executor=executor, parameters=parameters, page_size=page, claims=_claims(path, raw, runs))


def _claims(path: Path, raw: dict[str, Any], runs: list[Run]) -> list[Claim]:
    """The sweep's ``claims:``, their configurations, scores and logged values checked."""
    schemas = [families.family_of(r.config.model.arch).log_schema(r.config) for r in runs]
    losses = {k for s in schemas for k in s.losses}
    scores = {*SCORE_DIRECTIONS, *(f"{p}_{k}" for p in ("final", "mean") for k in losses)}
    variables = {*CHECKPOINT_SCORES, *(k for s in schemas for k in s.columns)}
    configurations = list(dict.fromkeys(r.configuration for r in runs))
    return claims_lib.parse(raw.get("claims"), str(path), configurations, scores, variables)


def _notebook_parameters(path: Path, parameters: dict[str, Any], notebooks: list[Path]) -> dict[str, Any]:
    """``report.parameters``: values for the notebooks' own parameters (e.g. the gallery's
    ``sample_class``), each declared by one of the sweep's notebooks and a plain value."""
    if not parameters:
        return {}
    import papermill
    declared = {name: nb.stem for nb in notebooks for name in papermill.inspect_notebook(str(nb))}
    for key, value in parameters.items():
        if key in RUN_PARAMETERS:
            raise ConfigError(f"{path}: report.parameters.{key} is set by the runner for each run")
        if key not in declared:
            known = ", ".join(sorted(set(declared) - RUN_PARAMETERS)) or "none"
            raise ConfigError(f"{path}: report.parameters.{key}: no notebook of this sweep has that parameter "
                              f"(they have: {known})")
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"{path}: report.parameters.{key} must be a string, number or true/false (got {value!r})")
    return parameters


_DATA_SIZES: dict[Any, int | str] = {}  # data section -> its image count, or why it does not load; once per process


def data_size(config: Config) -> int | str:
    """How many images ``config.data`` gives, or why it does not load here (counted once per
    data section and process)."""
    from ..data import DataError, data_size as count
    if config.data not in _DATA_SIZES:
        try:
            _DATA_SIZES[config.data] = count(config)
        except (DataError, ConfigError) as err:
            _DATA_SIZES[config.data] = str(err)
    return _DATA_SIZES[config.data]


def check_data_sizes(path: Path, runs: list[Run]) -> None:
    """Refuse a run whose batch is larger than its data (after data.subset and data.classes),
    which would train no step: each distinct data section is counted once, before any run
    (``runner.preflight``). Data that does not load here is refused there for local runs; on
    other machines it may be there."""
    for run in runs:
        size, data = data_size(run.config), run.config.data
        if isinstance(size, int) and run.config.train.batch_size > size:
            raise ConfigError(f"{path} (run {run.name}): train.batch_size = {run.config.train.batch_size} is larger "
                              f"than the data ({size} images of {data.name} after data.subset/classes): it would "
                              f"train no step; use train.batch_size <= {size}")


def _seeds(path: Path, raw: dict[str, Any], overrides: dict[str, Any]) -> list[int]:
    """``seeds: [0, 1, 2]``: every configuration once per seed (``train.seed``)."""
    if "seeds" not in raw:
        return []
    seeds = raw["seeds"]
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"{path}: seeds must be a non-empty list of integers, e.g. [0, 1, 2] (got {seeds!r})")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"{path}: seeds: {seed!r} is not a non-negative integer")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{path}: seeds: {seeds} repeats a seed")
    places = {"grid": _mapping(path, raw, "grid"), "set": _mapping(path, raw, "set"), "--set": overrides,
              **{f"variants.{n}": v for n, v in _mapping(path, raw, "variants").items() if isinstance(v, dict)}}
    for where, values in places.items():
        if "train.seed" in values:
            raise ConfigError(f"{path}: {where} sets train.seed ({values['train.seed']!r}) and seeds: {seeds} sets it "
                              "too: use one of them")
    return seeds


def _quick(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """The sweep with its ``quick`` section applied: set joins set, grid axes replace the file's,
    variants join the file's variants of the same name."""
    if "quick" not in raw:
        raise ConfigError(f"{path}: --quick needs a 'quick:' section (set, grid, variants) in the sweep file")
    quick = _mapping(path, raw, "quick")
    if unknown := set(quick) - QUICK_KEYS:
        raise ConfigError(f"{path}: unknown key quick.{sorted(unknown)[0]} (known: {', '.join(sorted(QUICK_KEYS))})")
    grid, variants = _mapping(path, raw, "grid"), _mapping(path, raw, "variants")
    if extra := set(_mapping(path, quick, "grid")) - set(grid):
        raise ConfigError(f"{path}: quick.grid.{sorted(extra)[0]} is not an axis of the grid (axes: {list(grid)})")
    if extra := set(_mapping(path, quick, "variants")) - set(variants):
        raise ConfigError(f"{path}: quick.variants.{sorted(extra)[0]} is not a variant (variants: {list(variants)})")
    return {**raw, **{key: quick[key] for key in ("seeds", "claims") if key in quick},  # these replace the file's
            "set": {**_mapping(path, raw, "set"), **_mapping(path, quick, "set")},
            "grid": {**grid, **_mapping(path, quick, "grid")},
            "variants": {name: {**changes, **quick.get("variants", {}).get(name, {})}
                         for name, changes in variants.items()}}


@dataclass(frozen=True)
class Configuration:
    """A configuration of a sweep (before seeds): its name, overrides, variant and reference."""

    name: str
    overrides: dict[str, Any]
    variant: str = ""
    reference: str = ""


def expand(path: Path, raw: dict[str, Any]) -> list[Configuration]:
    """The configurations: the grid's combinations, crossed with the variants, each variant but
    the reference compared with the reference variant at the same grid point."""
    grid = _mapping(path, raw, "grid")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid.{key} must be a non-empty list (got {values!r})")
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    variants = _mapping(path, raw, "variants")
    for name, overrides in variants.items():
        if not isinstance(overrides, dict):
            raise ConfigError(f"{path}: variants.{name} must be a mapping of overrides (got {overrides!r})")
    reference = _reference(path, raw, variants)
    named = list(variants.items()) or [("", {})]

    def name_of(variant: str, combo: dict[str, Any]) -> str:
        return "-".join(part for part in [variant, *(_short(k, v) for k, v in combo.items())] if part) or "base"

    return [Configuration(name_of(variant, combo), {**overrides, **combo}, variant,
                          name_of(reference, combo) if reference and variant != reference else "")
            for (variant, overrides), combo in itertools.product(named, combos)]


def _reference(path: Path, raw: dict[str, Any], variants: dict[str, Any]) -> str:
    """The variant the others are compared with: ``reference:``, else the one without
    overrides, else the first ("" without variants)."""
    if "reference" in raw:
        if raw["reference"] not in variants:
            raise ConfigError(f"{path}: reference: {raw['reference']!r} is not a variant (variants: {list(variants)})")
        return raw["reference"]
    return next((name for name, changes in variants.items() if not changes), next(iter(variants), ""))


def _short(key: str, value: Any) -> str:
    label = SHORT_NAMES.get(key, key.rsplit(".", 1)[-1].replace("_", ""))
    if isinstance(value, bool):  # cond / no-cond
        return label if value else f"no-{label}"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", f"{label}{text}")  # a value's '/' or spaces name no folder


def _mapping(path: Path, raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {key} must be a mapping (got {value!r})")
    return value


def _find(sweep_path: Path, name: str, key: str) -> Path:
    for candidate in (sweep_path.parent / name, Path(name), REPO / name):
        if candidate.is_file():
            return Path(os.path.normpath(candidate))
    raise ConfigError(f"{sweep_path}: {key}: no such file {name!r} (relative to {sweep_path.parent} or {REPO})")


def _find_notebook(sweep_path: Path, name: str) -> Path:
    matches = sorted(NOTEBOOKS.glob(f"{name}*.ipynb"))
    if not matches:
        raise ConfigError(f"{sweep_path}: report.notebooks: no notebook {name!r} in {NOTEBOOKS}")
    return matches[0]


def settings(config: Config) -> dict[str, Any]:
    """The config's flat settings that decide a run's results (runtime keys left out)."""
    return {k: v for k, v in config_lib.flatten(config.to_dict()).items() if k not in RUNTIME_KEYS}


def run_key(config: Config, notebooks: list[Path], code: bool, parameters: dict[str, Any] | None = None) -> str:
    """Hash of what a run's results depend on: config, notebooks and their parameters,
    gan_core's code, report options."""
    digest = hashlib.sha256()
    digest.update(json.dumps([settings(config), parameters or {}], sort_keys=True).encode())
    for path in [*notebooks, *sorted(PACKAGE.rglob("*.py"))]:
        digest.update(str(path.relative_to(path.parent.parent)).encode() + path.read_bytes())
    digest.update(str(code).encode())
    return digest.hexdigest()[:16]

