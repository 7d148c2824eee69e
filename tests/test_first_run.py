"""First use: shared files written atomically under unique names, shared caches computed once
under a lock by however many processes start at once, and first-use failures refused before
any work with a message that says what to do."""
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gan_core import rundir
from gan_core.cli import main
from gan_core.reporting import html as report

from .conftest import REPO
from .test_sweep import write_sweep

# what writes a file by hand: the helpers of gan_core.rundir are the only way to write shared files
HAND_WRITES = re.compile(r"\.write_text\(|\.write_bytes\(|torch\.save\((?!value, buffer)|\.to_csv\((?!index=|\))|"
                         r"open\([^)]*[\"'](w|wb|x|xb)[\"']|save_image\((?![^)]*buffer)|\.savefig\(")


def sources():
    for path in sorted((REPO / "gan_core").rglob("*.py")):
        if path.name != "rundir.py":
            yield path, path.read_text()
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        yield path, "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])


@pytest.mark.parametrize("path, text", list(sources()), ids=lambda v: v.name if isinstance(v, Path) else "")
def test_files_are_written_only_through_rundir(path, text):
    """One helper writes every file another process may read: a unique temporary name in the
    same folder, then an atomic rename (appends to a run's own logs aside)."""
    found = [line.strip() for line in text.splitlines() if HAND_WRITES.search(line) and "not shared" not in line]
    assert not found, f"{path.name} writes files by hand: {found}"


def _write_many(path: str, tag: int) -> None:
    for i in range(40):
        rundir.write_atomic(Path(path), f"{tag}:{i}:" + "x" * 20000)


def test_parallel_writers_never_collide(tmp_path):
    target = tmp_path / "shared.json"
    workers = [multiprocessing.Process(target=_write_many, args=(str(target), k)) for k in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert [w.exitcode for w in workers] == [0] * 6
    assert re.fullmatch(r"\d:39:x{20000}", target.read_text())  # one writer's whole file
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]  # no temporary file left behind


def _cached(path: str, count: str, key: str, queue) -> None:
    def compute():
        with open(count, "a") as f:  # the computations, counted
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # long enough that the others arrive while it runs
        return {"key": key, "value": 42}

    def load(data: bytes):
        cached = json.loads(data)
        return cached if cached.get("key") == key else None

    queue.put(rundir.compute_once(Path(path), compute, lambda v: json.dumps(v).encode(), load))


@pytest.mark.parametrize("before", [None, b'{"key": "trunc', b'{"key": "another", "value": 7}'],
                         ids=["empty cache", "truncated file", "foreign file"])
def test_six_processes_compute_a_cache_once(tmp_path, before):
    path, count = tmp_path / "cache" / "value.json", tmp_path / "count"
    if before is not None:
        path.parent.mkdir()
        path.write_bytes(before)
    queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_cached, args=(str(path), str(count), "k1", queue)) for _ in range(6)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(10)
    assert [w.exitcode for w in workers] == [0] * 6
    assert results == [{"key": "k1", "value": 42}] * 6
    assert len(count.read_text().splitlines()) == 1  # computed once, never trusted when bad
    assert json.loads(path.read_text()) == {"key": "k1", "value": 42}


@pytest.mark.slow
def test_six_evaluations_at_once_share_one_cache(tiny_config, tmp_path):
    """gan-workbook evaluate six times at once on an empty cache: all succeed, the evaluator,
    the test split's features, their k-NN radii and the floor are each computed once; then again over a truncated
    features file and a foreign floor file: recomputed once, never trusted."""
    from gan_core.training import train
    cache = tmp_path / "cache"
    config = tiny_config(eval={"samples": 64, "checkpoint_samples": 32, "evaluator": "train", "evaluator_epochs": 1,
                               "evaluator_subset": 600, "cache_dir": str(cache)})
    train(config, tmp_path / "run", log=lambda line: None)

    def evaluate_six() -> str:
        command = [sys.executable, "-m", "gan_core", "evaluate", str(tmp_path / "run"), "--no-checkpoints"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
                     for _ in range(6)]
        outputs = [p.communicate(timeout=300)[0] for p in processes]
        assert [p.returncode for p in processes] == [0] * 6, outputs
        return "\n".join(outputs)

    said = evaluate_six()
    assert said.count("training the") == 1 and said.count("computing the features") == 1, said
    assert said.count("the floor (once") == 1 and said.count("k-NN radii of 64 test") == 1, said
    features = next(path for path in cache.rglob("*.test-*.pt") if ".radii-" not in path.name)
    features.write_bytes(features.read_bytes()[:100])  # truncated: a disk that filled up, a killed copy
    floor = next(cache.rglob("*.floor-*.json"))
    floor.write_text(json.dumps({"key": {"another": "floor"}, "scores": {"fd": 0.0}}))
    said = evaluate_six()
    assert said.count("training the") == 0 and said.count("computing the features") == 1, said
    assert said.count("the floor (once") == 1 and "unreadable cache file" in said, said


# --- first-use failures, refused before any work -------------------------------------------------
def refused(tmp_path, capsys, argv, monkeypatch=None) -> str:
    assert main(argv) == 2
    assert not (tmp_path / "reports").exists()  # nothing was started
    return capsys.readouterr().err


def test_pdf_without_chromium_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(report, "chromium", lambda: None)
    path = write_sweep(tmp_path, "grid:\n  model.latent_dim: [8]\n")
    err = refused(tmp_path, capsys, ["sweep", str(path), "--out", str(tmp_path / "reports"), "--pdf"])
    assert "--pdf prints the reports with headless Chromium" in err and "apt-get install chromium" in err


def test_missing_data_set_is_refused_with_how_to_get_it(tmp_path, capsys):
    path = write_sweep(tmp_path, f"set: {{data.name: fashion-mnist, data.root: {tmp_path / 'nothing'}}}\n"
                                 "grid:\n  model.latent_dim: [8]\n")
    err = refused(tmp_path, capsys, ["sweep", str(path), "--out", str(tmp_path / "reports")])
    assert "s.yaml (run z8)" in err and "apt-get install dataset-fashion-mnist" in err


@pytest.mark.parametrize("where", ["file", "proc"])
def test_cache_folder_that_cannot_be_written_is_refused(tmp_path, capsys, where):
    """A cache folder that cannot be made (a file in its way) or written (/proc refuses even root)."""
    (tmp_path / "a-file").write_text("")
    cache = tmp_path / "a-file" / "cache" if where == "file" else Path("/proc/1/gan-workbook-cache")
    path = write_sweep(tmp_path, "grid:\n  model.latent_dim: [8]\n")
    err = refused(tmp_path, capsys, ["sweep", str(path), "--out", str(tmp_path / "reports"),
                                     "--set", f"eval.cache_dir={cache}"])
    assert f"eval.cache_dir = {cache}: not writable" in err and "set eval.cache_dir" in err


def test_full_disk_is_refused_before_work(tmp_path, capsys, monkeypatch):
    real = rundir.shutil.disk_usage
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda p: real(p)._replace(free=20_000_000))  # 20 MB left
    path = write_sweep(tmp_path, "grid:\n  model.latent_dim: [8]\n")
    err = refused(tmp_path, capsys, ["sweep", str(path), "--out", str(tmp_path / "reports")])
    assert "only 20 MB free on its disk (at least 100 MB needed)" in err and "--out" in err


def test_a_full_disk_while_writing_names_the_folder(tmp_path, monkeypatch):
    def full(fd, mode):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(rundir.os, "fdopen", full)
    with pytest.raises(rundir.CacheError, match=f"{tmp_path}: no space left on the device .* while writing x.json"):
        rundir.write_json(tmp_path / "x.json", {})
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
