"""A run's work once its config is written: training, evaluation and loss statistics, each
writing its section of the run folder's metrics.json (``training``, ``evaluation``,
``loss_analysis``). Notebooks render what these wrote; none of them computes a number the index
needs, so a page left out of a sweep never removes a score.

A sweep's job runs every step in a worker process of its own (``orchestration.worker``); a
notebook opened in JupyterLab runs the steps its run lacks (``pending``). Importing this module
loads no torch (the pages' readers ask ``pending``); running a step does.
"""
from __future__ import annotations

from typing import Any, Callable

from ..config import Config
from ..rundir import RunDir, RunIncomplete
from .losses import load_log, loss_stats

STEPS = ("training", "evaluation", "analysis")


def pending(run: RunDir) -> list[str]:
    """The steps whose results ``run`` lacks or that are older than its training: all of them
    until training has finished; then evaluation unless it scored the last trained step, and
    the loss statistics unless they read the whole log. No torch."""
    try:
        training = run.require_trained()
    except RunIncomplete:
        return list(STEPS)
    metrics = run.read_metrics()
    stale = [("evaluation", metrics.get("evaluation", {}).get("trained_steps")),
             ("analysis", metrics.get("loss_analysis", {}).get("steps"))]
    return [step for step, steps in stale if steps != training["steps"]]


def run_step(step: str, run: RunDir, config: Config, log: Callable[[str], None] = print,
             progress: bool = False) -> dict[str, Any]:
    """Run one of ``STEPS`` for ``run`` (training resumes from its last checkpoint); returns the
    section of metrics.json it wrote."""
    if step == "training":
        from ..training import train
        return train(config, run.root, resume=True, progress=progress, log=log)["training"]
    if step == "evaluation":
        from ..evaluation import evaluate_run
        steps = run.require_trained()["steps"]
        result = evaluate_run(run.root, log=log)
        return run.update_metrics(evaluation={**result, "trained_steps": steps})["evaluation"]
    if step == "analysis":
        return analyse(run)
    raise ValueError(f"unknown step {step!r} (steps: {', '.join(STEPS)})")


def analyse(run: RunDir) -> dict[str, Any]:
    """The loss statistics of a trained run (``losses.loss_stats``), written as metrics.json's
    ``loss_analysis``: what the loss page reads and the index's stability scores use."""
    run.require_trained()
    schema = run.schema()
    return run.update_metrics(loss_analysis=loss_stats(load_log(run, schema), schema))["loss_analysis"]


def complete(run: RunDir, config: Config, steps: tuple[str, ...] = STEPS, log: Callable[[str], None] = print,
             progress: bool = False) -> list[str]:
    """Run those of ``steps`` that ``run`` lacks (``pending``; training first when it lacks
    that), in order; returns them."""
    missing = [step for step in pending(run) if step in steps or step == "training"]
    for step in missing:
        run_step(step, run, config, log, progress)
    return missing
