"""A run's work in a process of its own: ``python -m gan_core.orchestration.worker RUN_DIR``.

The run's job (``job.execute_run``) starts it in a process group of its own and reads from its
standard output, one line each, the step it begins (``step training``) and, when a step raises,
why (``failed {"step": ..., "error": ...}``). Whatever else it says (progress, warnings, a
traceback) goes to the run's train.log. A worker that dies (killed, out of memory) or hangs
past the run's time limit fails its run alone: the job sees its exit or stops its group.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from ..rundir import RunDir

PROTOCOL = ("step", "failed")  # the first word of each line the job reads


def describe(err: BaseException) -> str:
    """One line on why a step failed, with what to do where the tool knows it."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":  # torch.cuda's
        return (f"out of memory ({type(err).__name__}); lower train.batch_size, or run fewer runs at a "
                "time (--jobs)")
    text = (str(err).strip().splitlines() or [repr(err)])[0][:300]
    return f"{type(err).__name__}: {text}"


def _say(word: str, value: Any) -> None:
    print(f"{word} {json.dumps(value)}", flush=True)


def _watch_parent() -> None:
    """Exit when the job that started this worker is gone (killed): a worker never trains on unseen."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str]) -> int:
    """Run every step of ``analysis.work`` for the run folder ``argv[0]``, in order."""
    _watch_parent()
    run = RunDir(Path(argv[0]))
    log = run.logger()
    warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: log(
        f"{category.__name__}: {message}")  # a library's warning: in the run's log
    from .. import config as config_lib
    from ..analysis import work
    step = "starting"
    try:
        config = config_lib.load(run.config)
        for step in work.STEPS:
            _say("step", step)
            work.run_step(step, run, config, log)
    except BaseException as err:  # noqa: BLE001  (a MemoryError too: the job reads why, the log the traceback)
        _say("failed", {"step": step, "error": describe(err)})
        with contextlib.suppress(OSError):  # a full disk may refuse the log too: the job has heard why
            log(f"{step} failed:\n{traceback.format_exc()}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
