"""A sweep survives any fault of one run (issue 32): the run fails alone, within seconds, its
status and the index say where and why, the other runs' results equal a sweep without the
fault, nothing it started outlives it, and ``--resume`` finishes it with the results an
uninterrupted run has.

One sweep holds every fault at once, one run each (tests/faults.py injects them through gan_core's
own code paths), beside a clean run, two at a time: each run has the same config, so each
compares with one reference sweep's run.
"""
import csv
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from .conftest import REPO, real_data_name

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("faults")]  # one worker runs the sweeps in turn

TIMEOUT_S = 45  # --run-timeout: a run here takes 10-20 s (30 on a loaded machine)
FAULTS = {  # run: (where it fails, what its status and the index say)
    "kill-training": ("training", "the run's worker was killed by SIGKILL (out of memory?)"),
    "kill-evaluation": ("evaluation", "the run's worker was killed by SIGKILL (out of memory?)"),
    "kill-job": ("training", "the run's job process was killed by SIGKILL (out of memory?)"),
    "hang": ("02_training", f"the run passed its time limit of {TIMEOUT_S} s (--run-timeout) during 02_training"),
    "disk-full": ("training", "file too large"),
    "memory": ("training", "out of memory (MemoryError); lower train.batch_size"),
    "kill-kernel": ("03_loss_analysis", "the notebook's kernel died (killed, or out of memory?)"),
}
TIMING = {"training_s", "reports_s", "images_per_s", "run", "configuration", "variant", "differs", "rank"}


def write(folder: Path, runs: list[str]) -> Path:
    """A sweep of ``runs``, all of one config (8 steps an epoch, 2 epochs), 2 notebooks."""
    (folder / "base.yaml").write_text(f"""
data: {{name: {real_data_name()}, subset: 128}}
model: {{latent_dim: 8}}
dcgan: {{ngf: 4, ndf: 4}}
train: {{epochs: 2, batch_size: 16, log_every: 2, num_samples: 16, threads: 1}}
eval: {{samples: 64, checkpoint_samples: 32, cache_dir: {folder / 'cache'}}}
""")
    path = folder / "faults.yaml"
    path.write_text("base: base.yaml\nvariants:\n" + "".join(f"  {run}: {{}}\n" for run in runs)
                    + "report: {notebooks: [02_training, 03_loss_analysis]}\n")
    return path


def sweep(path: Path, out: Path, *flags: str, faults: bool = False, mark: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "GAN_WORKBOOK_FAMILIES": "tests.faults",
           "GAN_WORKBOOK_FAULT_MARK": mark}  # every process of the sweep carries the mark
    env.pop("GAN_WORKBOOK_FAULTS", None)
    if faults:
        env["GAN_WORKBOOK_FAULTS"] = "1"
    return subprocess.run([sys.executable, "-m", "gan_core", "sweep", str(path), "--out", str(out), "--jobs", "2",
                           *flags], capture_output=True, text=True, env=env, timeout=600)


def marked(mark: str) -> list[str]:
    """The processes still alive that carry ``mark`` in their environment (a sweep's, orphaned)."""
    found = []
    for process in psutil.process_iter(["pid", "name"]):
        try:
            if process.environ().get("GAN_WORKBOOK_FAULT_MARK") == mark and process.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except (psutil.Error, OSError):
            continue
    return found


def results(run_dir: Path) -> dict:
    """What a run computed: its log's rows, its final scores and loss statistics."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with open(run_dir / "log.csv", newline="") as f:
        rows = [{k: v for k, v in row.items() if k not in ("images_per_s", "time_s")} for row in csv.DictReader(f)]
    scores = {k: v for k, v in metrics["evaluation"]["final"].items() if k != "seconds"}
    return {"log": rows, "scores": scores, "losses": metrics["loss_analysis"]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    done = sweep(write(folder, ["clean"]), folder / "reports")
    assert done.returncode == 0, done.stdout + done.stderr
    return results(folder / "reports" / "faults" / "clean")


@pytest.fixture(scope="module")
def faulted(tmp_path_factory):
    """The sweep with every fault, what it left (statuses, index, stray processes, its time),
    then the same command with --resume (no faults) and what that left."""
    folder = tmp_path_factory.mktemp("faulted")
    path, out, mark = write(folder, ["clean", *FAULTS]), folder / "reports", uuid.uuid4().hex
    began = time.monotonic()
    done = sweep(path, out, "--run-timeout", str(TIMEOUT_S), faults=True, mark=mark)
    seconds, sweep_dir = time.monotonic() - began, out / "faults"
    time.sleep(3)  # what a killed process's parent watch stops: its second
    state = {"code": done.returncode, "said": done.stdout + done.stderr, "seconds": seconds, "orphans": marked(mark),
             "status": {r: json.loads((sweep_dir / r / "status.json").read_text()) for r in ["clean", *FAULTS]},
             "index": (sweep_dir / "index.html").read_text(), "clean": results(sweep_dir / "clean"),
             "checkpoint": _newest_checkpoint(sweep_dir / "disk-full")}
    resumed = sweep(path, out, "--resume")
    state.update(resumed_code=resumed.returncode, resumed_said=resumed.stdout + resumed.stderr, sweep_dir=sweep_dir)
    return state


def _newest_checkpoint(run_dir: Path) -> int:
    """The epoch of the newest readable checkpoint of a run (what --resume continues from)."""
    from gan_core.models.checkpoint import read_checkpoint
    for name in ("last.pt", "previous.pt"):
        path = run_dir / "checkpoints" / name
        if path.exists():
            return read_checkpoint(path, ("epoch",))["epoch"]
    return 0


def test_the_faults_fail_their_runs_alone_and_the_sweep_goes_on(faulted, reference):
    assert faulted["code"] == 1, faulted["said"]  # the sweep ends, saying which runs failed
    assert f"{len(FAULTS)} of {len(FAULTS) + 1} runs failed" in faulted["said"], faulted["said"]
    assert faulted["status"]["clean"]["status"] == "ok"
    assert faulted["clean"] == reference  # the run beside the faults: as in a sweep without them
    assert faulted["seconds"] < TIMEOUT_S + 150, faulted["said"]  # nothing waited for a dead or hung run
    assert faulted["orphans"] == []  # no worker, kernel or child of a cell outlives its run


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_says_where_and_why_and_resume_finishes_the_run(faulted, reference, fault):
    where, why = FAULTS[fault]
    status = faulted["status"][fault]
    assert status["status"] == "failed" and status["failed_step"] == where, status
    assert why in status["error"], status
    if fault != "hang":  # noticed within seconds: a whole run here takes 10-20 s
        assert status.get("duration_s", 0) < 40, status
    index = faulted["index"]
    row = index[index.index(f"<b>{fault}</b>"):]
    row = row[:row.index("</tr>")]
    assert "<b>failed</b>" in row and f" in {where}<br" in row and why.split(" (")[0] in row, row
    # --resume finishes it, from its last checkpoint, with the results of an uninterrupted run
    assert faulted["resumed_code"] == 0, faulted["resumed_said"]
    run_dir = faulted["sweep_dir"] / fault
    assert json.loads((run_dir / "status.json").read_text())["status"] == "ok"
    assert results(run_dir) == reference
    if where == "training":
        assert "resumed from" in (run_dir / "train.log").read_text().split("no checkpoint")[-1]


def test_a_full_disk_keeps_the_last_good_checkpoint(faulted):
    assert faulted["checkpoint"] == 1  # the second epoch's could not be written; the first's stayed readable


def test_resume_leaves_finished_runs_as_they_are(faulted):
    assert "clean: complete and unchanged, skipped" in faulted["resumed_said"]
    assert f"{len(FAULTS)} to execute" in faulted["resumed_said"]
