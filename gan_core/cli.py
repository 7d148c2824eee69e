"""Command line: ``python -m gan_core train params/quick.yaml --out runs/quick``."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from . import config as config_lib
from .config import ConfigError
from .paths import preset

EXECUTORS = ("local", "dask", "slurm")  # orchestration.executors.NAMES, without importing it


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["train.epochs=3", "loss.kind=mse"]`` -> ``{"train.epochs": 3, "loss.kind": "mse"}``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. train.epochs=3")
        try:
            out[key.strip()] = config_lib.parse_yaml(value)
        except yaml.YAMLError as err:
            problem = str(err).splitlines()[0]
            raise ConfigError(f"--set {pair!r}: the value is not valid YAML ({problem})") from None
    return out


def generate(run_dir: str, count: int, class_name: str | None, seed: int, out: str | None) -> Path:
    """Write ``count`` samples of a run's generator (of one class) as a PNG grid; returns its path."""
    from .analysis.latent import class_samples
    from .evaluation import sample_images
    from .models import load_family
    from .rundir import RunDir
    from .training.trainer import save_grid
    if count < 1:
        raise ConfigError(f"--count must be >= 1 (got {count})")
    family, _ = load_family(RunDir(run_dir).last_checkpoint)
    if class_name is None:
        images = sample_images(family, count, seed)[0]
    elif family.label is None:
        raise ConfigError(f"{run_dir} holds an unconditional model: --class needs a run trained with "
                          "model.conditional: true")
    else:
        images = class_samples(family, class_name, count, seed)
    suffix = f"_{class_name}".replace("/", "-") if class_name else ""
    path = Path(out or Path(run_dir) / f"generated{suffix}.png")
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ConfigError(f"--out {str(path)!r}: write a .png or .jpg file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {str(path)!r}: cannot create its folder ({err.strerror})") from None
    save_grid(images, path, math.ceil(math.sqrt(count)))
    return path


def copy_notebooks(folder: str | Path, force: bool = False) -> list[Path]:
    """Copy the shipped notebooks into ``folder``, each naming this environment's kernelspec
    (``orchestration.job.kernel_spec``: JupyterLab then starts it without asking); returns the copies.

    Raises:
        ConfigError: a notebook of that name is there already (and not ``force``).
    """
    import json

    from .orchestration.job import kernel_spec
    from .paths import NOTEBOOKS
    from .rundir import write_atomic
    sources = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    targets = [Path(folder) / source.name for source in sources]
    if not force and (there := [t.name for t in targets if t.exists()]):
        raise ConfigError(f"{folder} already holds {', '.join(there)}: choose another folder or add --force")
    Path(folder).mkdir(parents=True, exist_ok=True)
    name, display = kernel_spec()
    for source, target in zip(sources, targets):
        notebook = json.loads(source.read_text())
        notebook["metadata"]["kernelspec"] = {"name": name, "display_name": display, "language": "python"}
        write_atomic(target, json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return targets


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def configure_logging(quiet: bool = False, verbose: bool = False) -> logging.Logger:
    """The ``gan_core`` logger the commands speak through: progress and results (INFO; DEBUG
    with ``verbose``) on stdout, warnings and errors on stderr; ``quiet``: warnings and errors only."""
    logger = logging.getLogger("gan_core")
    logger.handlers.clear()
    out, err = logging.StreamHandler(sys.stdout), logging.StreamHandler(sys.stderr)
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err.setLevel(logging.WARNING)
    for handler in (out, err):
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    return logger


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per verb, each with ``-q``/``-v``."""
    from . import __version__
    prog = "gan-workbook" if Path(sys.argv[0]).name == "gan-workbook" else "python -m gan_core"
    parser = argparse.ArgumentParser(prog=prog,
                                     description="GAN Workbook: train and report GANs and diffusion models.")
    parser.add_argument("--version", action="version", version=f"gan-workbook {__version__}")
    talk = argparse.ArgumentParser(add_help=False)  # every command's: how much it says
    loudness = talk.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true", help="say only warnings and errors")
    loudness.add_argument("-v", "--verbose", action="store_true",
                          help="say more (a sweep's progress line every few seconds)")
    sub = parser.add_subparsers(dest="command", required=True)
    add = lambda name, text: sub.add_parser(name, help=text, parents=[talk])  # noqa: E731
    overrides = {"action": "append", "default": [], "metavar": "KEY=VALUE"}
    p = add("train", "train one config into a run directory")
    p.add_argument("config", help="a YAML config, e.g. params/quick.yaml")
    p.add_argument("--out", required=True, help="run directory (log.csv, samples/, checkpoints/)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    p.add_argument("--set", **overrides, help="override a config value, e.g. --set train.epochs=1 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    s = add("sweep", "run a sweep's configurations through the notebooks into reports/")
    s.add_argument("sweep", help="a sweep file, e.g. params/sweeps/quick.yaml")
    s.add_argument("--jobs", type=int, default=1, help="runs in parallel (CPU threads are divided)")
    s.add_argument("--out", default="reports", help="reports folder (default: reports)")
    s.add_argument("--pdf", action="store_true", help="also print each report to PDF (headless Chromium)")
    s.add_argument("--page-size", metavar="SIZE",
                   help="the PDFs' pages: A4 (default, or the sweep's report.page_size), letter, A3 landscape, ...")
    s.add_argument("--force", action="store_true", help="rerun completed runs from scratch")
    s.add_argument("--resume", action="store_true",
                   help="finish only the runs that did not (failed, interrupted, not started), from their last "
                        "checkpoints; completed runs stay as they are, even where gan_core or the notebooks changed")
    s.add_argument("--run-timeout", type=float, default=0.0, metavar="SECONDS",
                   help="each run's time limit (work and pages); a run past it is stopped and fails alone, the "
                        "sweep goes on (default: 0, no limit)")
    s.add_argument("--only", help="run only these runs (comma-separated names or globs)")
    s.add_argument("--code", action="store_true", help="keep the code cells in the HTML reports")
    s.add_argument("--dry-run", action="store_true",
                   help="validate the sweep and list its runs, what each changes and its claims; run nothing")
    s.add_argument("--quick", action="store_true",
                   help="the sweep file's CPU-sized version (its quick: section), into OUT/NAME-quick")
    s.add_argument("--set", **overrides,
                   help="override a config value in every run, e.g. --set data.root=/data/flowers (repeatable)")
    s.add_argument("--executor", choices=EXECUTORS,
                   help="where runs execute (default: the sweep's executor.name, else local)")
    s.add_argument("--scheduler", metavar="ADDRESS", help="dask: scheduler address (default: a LocalCluster)")
    s.add_argument("--partition", help="slurm: the partition")
    s.add_argument("--time-min", type=int, help="slurm: time limit of one run in minutes")
    s.add_argument("--gpus-per-run", type=int, help="GPUs each run gets (local default: one when CUDA is there)")
    c = add("config", "print a config as it resolves (defaults, file, --set), validated")
    c.add_argument("config", help="a YAML config, e.g. params/quick.yaml")
    c.add_argument("--set", **overrides, help="override a config value")
    e = add("evaluate", "score a run's generator (FD, KID, precision/recall, classes)")
    e.add_argument("run_dir", help="a run directory with checkpoints/last.pt")
    e.add_argument("--samples", type=int, help="generated images to score (default: the config's eval.samples)")
    e.add_argument("--no-checkpoints", action="store_true", help="skip the scores per saved checkpoint")
    e.add_argument("--update", action="store_true",
                   help="replace the run's canonical scores (metrics.json), which its reports show; they are "
                        "then marked stale and the next sweep re-renders them (default: RUN_DIR/evaluations/)")
    g = add("generate", "draw samples from a trained run (of one class, for a conditional GAN)")
    g.add_argument("run_dir", help="a run directory with checkpoints/last.pt")
    g.add_argument("-n", "--count", type=int, default=16, help="images to draw (default: 16)")
    g.add_argument("--class", dest="class_name", metavar="CLASS",
                   help="conditional runs: the class, by name or id, e.g. --class Sneaker")
    g.add_argument("--seed", type=int, default=0, help="latent seed (default: 0)")
    g.add_argument("--out", help="PNG grid to write (default: RUN_DIR/generated[_CLASS].png)")
    n = add("notebooks", "copy the workbook's notebooks into a folder of yours (to open in JupyterLab)")
    n.add_argument("folder", help="where to put them; runs the notebooks train go beside them")
    n.add_argument("--force", action="store_true", help="overwrite notebooks already there")
    return parser


def train_command(args: argparse.Namespace, say: logging.Logger) -> int:
    from .training import train
    config = config_lib.load(preset(args.config), parse_overrides(args.set))
    config_lib.check_installed(config, args.config)
    metrics = train(config, args.out, resume=args.resume,
                    progress=False if args.no_progress or args.quiet else None, log=say.info)["training"]
    losses = ", ".join(f"{k[len('final_'):]} {v:.4g}" for k, v in metrics.items() if k.startswith("final_loss"))
    say.info(f"done: {metrics['epochs']} epochs, {metrics['steps']} steps, final {losses}; see {args.out}")
    return 0


def sweep_command(args: argparse.Namespace, say: logging.Logger) -> int:
    """Validate every run before anything executes; list them (--dry-run, no torch) or run them."""
    from .orchestration.executors import with_flags
    from .orchestration.runner import run_sweep, select
    from .orchestration.sweep import load_sweep
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops a sweep as Ctrl-C does
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1 (got {args.jobs})")
    sweep = load_sweep(preset(args.sweep), args.quick, parse_overrides(args.set))
    changes = {"code": True} if args.code else {}
    if args.page_size:
        from .reporting.html import page_size
        try:
            changes["page_size"] = page_size(args.page_size)
        except ValueError as err:
            raise ConfigError(f"--page-size: {err}") from None
    sweep = dataclasses.replace(sweep, **changes, executor=with_flags(
        sweep.executor, name=args.executor, address=args.scheduler, partition=args.partition,
        time_min=args.time_min, gpus_per_run=args.gpus_per_run))
    if args.dry_run:
        runs = select(sweep.runs, args.only)
        print(f"{sweep.path}: {len(runs)} runs into {Path(args.out) / sweep.name} "
              f"(notebooks: {', '.join(p.stem for p in sweep.notebooks)})")
        for run in runs:
            print(f"  {run.name}: " + (", ".join(f"{k}={v}" for k, v in run.overrides.items()) or "the base")
                  + (f" (compared with {run.reference})" if run.reference else ""))
        for claim in sweep.claims:
            print(f"  claim: {claim.words}: predicts {claim.prediction()}")
        return 0
    code = run_sweep(sweep, args.out, args.jobs, args.pdf, args.force, args.only, log=say.info,
                     resume=args.resume, run_timeout=args.run_timeout)
    if code:
        say.warning(f"{sweep.name}: some runs failed; the index says which and why: "
                    f"{Path(args.out) / sweep.name / 'index.html'}")
    return code


def config_command(args: argparse.Namespace, say: logging.Logger) -> int:
    config = config_lib.load(preset(args.config), parse_overrides(args.set))
    print(f"# {args.config}{' with --set ' + ', '.join(args.set) if args.set else ''}, resolved; hash {config.hash()}")
    print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
    return 0


def evaluate_command(args: argparse.Namespace, say: logging.Logger) -> int:
    from .evaluation import evaluate_run
    from .reporting.prose import score_reading
    from .rundir import RunDir
    if args.samples is not None and args.samples < 2:
        raise ConfigError(f"--samples must be >= 2 (got {args.samples})")
    run = RunDir(args.run_dir)
    save = None if args.update else run.evaluations / (
        f"{time.strftime('%Y%m%d-%H%M%S')}-{args.samples or 'default'}-samples.json")
    result = evaluate_run(args.run_dir, args.samples, not args.no_checkpoints, log=say.info, save=save)
    for line in score_reading(result):
        say.info(line)
    if args.update:
        run.done.unlink(missing_ok=True)  # the reports show the old scores: the sweep redoes them
        say.info("metrics.json updated; its reports are stale: run its sweep again to re-render them")
    else:
        say.info(f"wrote {save} (metrics.json and the reports are unchanged; --update replaces them)")
    return 0


def generate_command(args: argparse.Namespace, say: logging.Logger) -> int:
    say.info(f"wrote {generate(args.run_dir, args.count, args.class_name, args.seed, args.out)}")
    return 0


def notebooks_command(args: argparse.Namespace, say: logging.Logger) -> int:
    say.info(f"copied {len(copy_notebooks(args.folder, args.force))} notebooks to {args.folder}; "
             f"open them there (jupyter lab {args.folder})")
    return 0


COMMANDS = {"train": train_command, "sweep": sweep_command, "config": config_command, "evaluate": evaluate_command,
            "generate": generate_command, "notebooks": notebooks_command}


def user_errors() -> tuple[type[BaseException], ...]:
    """The errors a command reports in one line (exit 2) rather than a traceback; those of the
    heavy layers only where a command has loaded them (``config`` and ``sweep --dry-run``
    load no torch)."""
    from .evaluators import EvaluatorError
    from .rundir import CacheError, RunIncomplete
    errors: list[type[BaseException]] = [ConfigError, CacheError, RunIncomplete, EvaluatorError]
    for module, name in (("gan_core.data", "DataError"), ("gan_core.training.state", "TrainingError"),
                         ("gan_core.models.checkpoint", "CheckpointError")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    say = configure_logging(args.quiet, args.verbose)
    try:
        return COMMANDS[args.command](args, say)
    except KeyboardInterrupt as err:
        print(_interrupted(args), file=sys.stderr)
        return 143 if err.args == ("SIGTERM",) else 130
    except Exception as err:
        if not isinstance(err, user_errors()):
            raise
        say.error(f"error: {err}")
        return 2


def _interrupted(args: argparse.Namespace) -> str:
    if args.command == "sweep":
        return ("interrupted: the running runs were stopped; run the same command again to resume them "
                "from their last checkpoints")
    if args.command == "train" and (Path(args.out) / "checkpoints" / "last.pt").exists():
        return "interrupted; run again with --resume to continue from the last checkpoint"
    return "interrupted before any checkpoint; a rerun starts from the beginning"
