"""Sweep executors: Dask and submitit give the local pool's results; a killed worker's run resumes."""
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest

from gan_core.orchestration import executors, settings
from gan_core.cli import main
from gan_core.orchestration.executors import ExecutorSettings, gpu_slot, parse_settings, with_flags
from gan_core.orchestration.runner import run_sweep
from gan_core.orchestration.sweep import load_sweep

from .test_sweep import write_sweep

SMOKE = "grid:\n  model.latent_dim: [8, 16]\nset: {train.threads: 1}  # engines give runs different CPU counts\nreport: {notebooks: [02_training]}\n"
TIMING_COLUMNS = ("training_s", "reports_s", "images_per_s")  # differ between any two executions


def summary(sweep_dir):
    """summary.csv's rows without the timing columns."""
    with open(sweep_dir / "summary.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def assert_same_rows(rows, expected, runs=("z8", "z16")):
    """Rows of ``runs`` equal the reference's (numbers to float precision), all ok."""
    rows = {r["run"]: r for r in rows}
    expected = {r["run"]: r for r in expected}
    for run in runs:
        row, ref = rows[run], expected[run]
        assert row.keys() == ref.keys()
        for key in ref:
            try:
                assert np.isclose(float(row[key]), float(ref[key]), rtol=1e-6), (run, key)
            except ValueError:  # text: run, differs, status, error
                assert row[key] == ref[key], (run, key)
        assert row["status"] == "ok"


# --- settings ------------------------------------------------------------------------------
def test_executor_section_is_read(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, SMOKE + """executor: {name: slurm, partition: gpu, time_min: 30,
  gpus_per_run: 1, cpus_per_run: 8, array_parallelism: 4, folder: /shared/slurm, cluster: debug}
"""))
    assert sweep.executor == ExecutorSettings(name="slurm", partition="gpu", time_min=30, gpus_per_run=1,
                                              cpus_per_run=8, array_parallelism=4, folder="/shared/slurm",
                                              cluster="debug")
    assert load_sweep(write_sweep(tmp_path, SMOKE)).executor == ExecutorSettings()


@pytest.mark.parametrize("section, message", [
    ("{name: spark}", "s.yaml: executor.name must be one of local, dask, slurm (got 'spark')"),
    ("{name: dask, adress: 'tcp://h:8786'}", "s.yaml: unknown key executor.adress (known for dask: address,"),
    ("{name: dask, partition: gpu}", "executor.partition (a setting of the slurm executor, this one is dask)"),
    ("{partition: gpu}", "unknown key executor.partition (a setting of the slurm executor, this one is local)"),
    ("{name: slurm, time_min: 4h}", "s.yaml: executor.time_min must be an integer (got '4h')"),
    ("{name: slurm, gpus_per_run: -1}", "s.yaml: executor.gpus_per_run must be >= 0 (got -1)"),
    ("{name: slurm, cpus_per_run: true}", "executor.cpus_per_run must be an integer (got True)"),
    ("{name: slurm, cluster: pbs}", "executor.cluster must be one of slurm, local, debug (got 'pbs')"),
    ("{name: dask, address: 8786}", "executor.address must be a string (got 8786)"),
    ("dask", "s.yaml: executor must be a mapping, e.g. {name: dask} (got 'dask')"),
])
def test_bad_executor_section_stops_before_any_work(tmp_path, capsys, section, message):
    path = write_sweep(tmp_path, f"{SMOKE}executor: {section}\n")
    assert main(["sweep", str(path), "--out", str(tmp_path / "reports")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize("flags, message", [
    (["--partition", "gpu"], "--partition is a setting of the slurm executor (add --executor slurm)"),
    (["--executor", "slurm", "--scheduler", "tcp://h:8786"], "--scheduler is a setting of the dask executor"),
    (["--gpus-per-run", "-1"], "--gpus-per-run must be >= 0 (got -1)"),
    (["--executor", "slurm", "--time-min", "0"], "--time-min must be >= 1 (got 0)"),
])
def test_bad_executor_flags_stop_before_any_work(tmp_path, capsys, flags, message):
    path = write_sweep(tmp_path, SMOKE)
    assert main(["sweep", str(path), "--out", str(tmp_path / "reports"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


def test_flags_override_the_file():
    file = parse_settings({"name": "slurm", "partition": "gpu", "gpus_per_run": 1}, "s.yaml")
    assert with_flags(file, time_min=30, partition=None) == ExecutorSettings(
        name="slurm", partition="gpu", gpus_per_run=1, time_min=30)
    # another engine: the file's SLURM settings go, the resources per run stay
    assert with_flags(file, name="dask", address="tcp://h:8786") == ExecutorSettings(
        name="dask", address="tcp://h:8786", gpus_per_run=1)


@pytest.mark.parametrize("name, module, package", [
    ("dask", "distributed", "dask.distributed"), ("slurm", "submitit", "submitit")])
def test_missing_engine_package_is_named(tmp_path, capsys, monkeypatch, name, module, package):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: importing it fails
    path = write_sweep(tmp_path, SMOKE)
    assert main(["sweep", str(path), "--out", str(tmp_path / "reports"), "--executor", name]) == 2
    err = capsys.readouterr().err
    assert f"the {name} executor needs {package}: pip install '.[{name}]' in the repository" in err
    assert not (tmp_path / "reports").exists()


def test_slurm_without_sbatch_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    path = write_sweep(tmp_path, SMOKE + "executor: {name: slurm, partition: gpu}\n")
    assert main(["sweep", str(path), "--out", str(tmp_path / "reports")]) == 2
    assert "the slurm executor submits with sbatch, which is not on PATH here" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


def test_unreachable_scheduler_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(settings, "CONNECT_TIMEOUT_S", 1)
    path = write_sweep(tmp_path, SMOKE)
    assert main(["sweep", str(path), "--out", str(tmp_path / "reports"), "--executor", "dask",
                 "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "no Dask scheduler answered at 'tcp://127.0.0.1:9' in 1 s" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


def test_gpus_round_robin_over_worker_slots():
    devices = ["0", "1", "2", "3"]
    assert [gpu_slot(devices, 1, slot) for slot in range(6)] == [["0"], ["1"], ["2"], ["3"], ["0"], ["1"]]
    assert [gpu_slot(devices, 2, slot) for slot in range(3)] == [["0", "1"], ["2", "3"], ["0", "1"]]
    assert gpu_slot(["GPU-a", "GPU-b"], 3, 1) == ["GPU-b", "GPU-a"]  # never more than there are


def test_requeue_resubmits_the_same_run():
    pytest.importorskip("submitit")
    job = object()
    delayed = executors.RequeueRun().checkpoint(job)
    assert isinstance(delayed.function, executors.RequeueRun) and delayed.args == (job,)


# --- engines -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_rows(tmp_path_factory):
    """The two-run smoke sweep through the local process pool: the reference."""
    tmp = tmp_path_factory.mktemp("local")
    assert run_sweep(load_sweep(write_sweep(tmp, SMOKE)), tmp / "reports", jobs=2, log=print) == 0
    return summary(tmp / "reports" / "s")


@pytest.mark.slow
@pytest.mark.xdist_group("local_rows")  # one worker runs the reference
def test_dask_local_cluster_gives_the_local_results(tmp_path, local_rows):
    path = write_sweep(tmp_path, SMOKE + "executor: {name: dask}\n")
    lines = []
    assert run_sweep(load_sweep(path), tmp_path / "reports", jobs=2, log=lines.append) == 0, lines
    assert any("dask: LocalCluster tcp://127.0.0.1:" in line and "2 workers" in line for line in lines)
    sweep_dir = tmp_path / "reports" / "s"
    assert_same_rows(summary(sweep_dir), local_rows)
    index = (sweep_dir / "index.html").read_text()
    assert "z8/02_training.html" in index and "z16/02_training.html" in index
    assert all((sweep_dir / run / ".done").exists() for run in ("z8", "z16"))


@pytest.mark.slow
@pytest.mark.xdist_group("local_rows")  # one worker runs the reference
def test_submitit_local_runs_a_sweep(tmp_path, local_rows):
    path = write_sweep(tmp_path, SMOKE + "executor: {name: slurm, cluster: local, time_min: 10}\n")
    lines = []  # one run of the two keeps it short: a job is a fresh process, as on SLURM
    assert run_sweep(load_sweep(path), tmp_path / "reports", jobs=2, only="z8", log=lines.append) == 0, lines
    sweep_dir = tmp_path / "reports" / "s"
    assert any(line.startswith("local: submitted 1 jobs") for line in lines), lines
    assert list((sweep_dir / "_slurm").glob("*_submitted.pkl"))  # submitit's own files, beside the runs
    assert list((sweep_dir / "_slurm").glob("*_result.pkl"))
    assert_same_rows(summary(sweep_dir), local_rows, runs=["z8"])
    assert "z8/02_training.html" in (sweep_dir / "index.html").read_text()


def workers(process):
    """The processes a run's job started (its worker, and later its kernel)."""
    return [p for p in process.children(recursive=True) if "worker" in " ".join(p.cmdline())
            or "ipykernel" in " ".join(p.cmdline())]


@pytest.mark.slow
def test_killed_run_fails_alone_and_the_next_sweep_resumes_it(tmp_path):
    path = write_sweep(tmp_path, """variants: {long: {data.subset: 256, train.epochs: 12}, short: {}}
report: {notebooks: [02_training]}
""")
    run_dir = tmp_path / "reports" / "s" / "long"
    lines, code = [], []
    sweep = threading.Thread(target=lambda: code.append(
        run_sweep(load_sweep(path), tmp_path / "reports", jobs=2, log=lines.append)))
    sweep.start()
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / "last.pt").exists():  # training is under way
        assert time.monotonic() < deadline and sweep.is_alive(), lines
        time.sleep(0.05)
    job = next((p for p in psutil.Process().children()
                if any(k.cwd() == str(run_dir.resolve()) for k in workers(p))), None)
    assert job, "no run process with a worker in the long run's folder"
    orphans = workers(job)
    job.kill()  # SIGKILL, as the out-of-memory killer would: the run's process dies mid-training
    psutil.wait_procs(orphans, timeout=15)  # the worker sees its parent gone and stops training
    assert not any(p.is_running() for p in orphans)
    sweep.join(180)
    assert code == [1], lines  # the sweep goes on to its index and reports the run failed
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and status["failed_step"] == "training"  # where it was
    assert "killed by SIGKILL" in status["error"] and "resume it from its last checkpoint" in status["error"]
    short = json.loads((run_dir.parent / "short" / "status.json").read_text())
    assert short["status"] == "ok", short  # the other run, in parallel, is untouched
    assert "long: failed" in "\n".join(lines) and not (run_dir / ".done").exists()
    assert "killed by SIGKILL" in (tmp_path / "reports" / "s" / "index.html").read_text()
    with open(run_dir / "log.csv") as f:
        steps_before = [int(row["step"]) for row in csv.DictReader(f)]
    assert steps_before[-1] < 12 * 16, lines  # cut off before the end (16 steps an epoch)

    lines.clear()
    assert run_sweep(load_sweep(path), tmp_path / "reports", jobs=1, log=lines.append) == 0, lines
    assert any("1 to execute" in line for line in lines), lines
    said = (run_dir / "train.log").read_text()  # what training printed: the run's log, not its page
    assert "resumed from" in said.split("no checkpoint")[-1], said
    with open(run_dir / "log.csv") as f:
        steps = [int(row["step"]) for row in csv.DictReader(f)]
    assert steps == sorted(set(steps)) and steps[-1] == 12 * 16  # continued: no step twice or lost
    metrics = json.loads((run_dir / "metrics.json").read_text())["training"]
    assert metrics["epochs"] == 12 and metrics["steps"] == 12 * 16
    assert (run_dir / ".done").exists()
    # the index's times span both invocations: all the training, the reports as made in the last
    assert 0 < metrics["session_seconds"] < metrics["seconds"]  # trained in two invocations
    row = next(r for r in csv.DictReader(open(run_dir.parent / "summary.csv")) if r["run"] == "long")
    status = json.loads((run_dir / "status.json").read_text())
    assert float(row["training_s"]) == metrics["seconds"] and float(row["reports_s"]) == status["reports_s"]
    assert status["reports_s"] == pytest.approx(status["duration_s"] - metrics["session_seconds"], abs=0.2)
    assert status["duration_s"] >= sum(status["step_s"].values())  # the processes' starts included


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_sweep_its_runs_and_kernels(tmp_path, sig, code):
    """Ctrl-C or SIGTERM of the CLI: every run's process and kernel stop within seconds, the
    index is written and says the runs were interrupted, and a rerun resumes them."""
    path = write_sweep(tmp_path, """grid: {train.epochs: [300, 301, 302]}  # two running, one queued; never done in time
set: {data.subset: 256}
report: {notebooks: [02_training]}
""")
    out = tmp_path / "reports"
    # as from a terminal: Ctrl-C's SIGINT handled by Python (a test worker may have left it ignored, and a
    # child inherits an ignored signal)
    sweep = psutil.Popen([sys.executable, "-m", "gan_core", "sweep", str(path), "--out", str(out), "--jobs", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while len(list(out.glob("s/*/checkpoints/last.pt"))) < 2:
        assert time.monotonic() < deadline and sweep.poll() is None, sweep.communicate()
        time.sleep(0.1)
    family = sweep.children(recursive=True)
    started = time.monotonic()
    assert sweep.poll() is None, sweep.communicate()  # still running: the signal is what stops it
    sweep.send_signal(sig)
    _, stderr = sweep.communicate(timeout=60)
    assert sweep.returncode == code, stderr
    psutil.wait_procs(family, timeout=15)
    assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert time.monotonic() - started < 45
    assert "run the same command again to resume" in stderr
    statuses = list(out.glob("s/*/status.json"))
    assert len(statuses) == 2  # the queued run never started
    for run in statuses:
        assert "interrupted" in json.loads(run.read_text())["error"]
    assert "interrupted" in (out / "s" / "index.html").read_text() and "not run" in (out / "s" / "index.html").read_text()


def test_no_jobs_no_engine():
    assert executors.submit_jobs([], ExecutorSettings(name="dask"), print) == []


def test_a_dead_kernel_fails_its_notebook_within_seconds(tmp_path):
    """A kernel killed while a cell runs (the out-of-memory killer) fails its notebook in
    seconds, naming the dead kernel, instead of hanging the run; its clients see output first."""
    import nbformat

    from gan_core.orchestration.job import _notebook_error, execute_notebook, started_kernel
    notebook = tmp_path / "n.ipynb"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("seconds = 0", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import os, time\nprint('pid', os.getpid())\ntime.sleep(seconds)")]
    nbformat.write(nb, notebook)
    with started_kernel(tmp_path) as kernel:
        for i in range(2):  # one kernel, a notebook after another, each with all its output
            execute_notebook(notebook, tmp_path / f"out{i}.ipynb", {"seconds": 0}, tmp_path, kernel)
            assert f"pid {kernel.provisioner.pid}" in (tmp_path / f"out{i}.ipynb").read_text()
        threading.Timer(2, lambda: os.kill(kernel.provisioner.pid, signal.SIGKILL)).start()
        started = time.monotonic()
        with pytest.raises(Exception) as died:
            execute_notebook(notebook, tmp_path / "dead.ipynb", {"seconds": 600}, tmp_path, kernel)
    assert time.monotonic() - started < 15
    assert _notebook_error(died.value) == "the notebook's kernel died (killed, or out of memory?)"
