"""Sweeps and configs that cannot hurt: hostile names, HTML in values, one sweep per folder,
bad input refused before any work with file, key and value."""
import json
import math
import multiprocessing
import os
import signal

import pytest

from gan_core.cli import main
from gan_core.config import ConfigError, load
from gan_core.orchestration.runner import sweep_lock
from gan_core.orchestration.sweep import load_sweep
from gan_core.reporting import index
from gan_core.rundir import RunDir, write_json
from gan_core.training import Trainer, TrainingError
from gan_core.data import DataError, load_data

from .test_sweep import write_sweep


@pytest.mark.parametrize("name", ["../../escaped", "/abs/path", "<script>alert(1)</script>", "a/b", "_previous",
                                  "two words", ".."])
def test_hostile_variant_names_are_refused_before_any_work(tmp_path, capsys, name):
    path = write_sweep(tmp_path, f"variants:\n  {json.dumps(name)}: {{}}\n")
    assert main(["sweep", str(path), "--out", str(tmp_path / "reports")]) == 2
    err = capsys.readouterr().err
    assert "is not a safe folder name" in err and repr(name) in err
    assert not (tmp_path / "reports").exists() and not (tmp_path.parent / "escaped").exists()


def test_grid_values_make_safe_names(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, "grid:\n  data.root: ['/data/my flowers', '../up']\n"))
    assert [r.name for r in sweep.runs] == ["root_data_my_flowers", "root.._up"]
    assert all((tmp_path / "reports" / r.name).resolve().parent == (tmp_path / "reports").resolve()
               for r in sweep.runs)


def test_index_escapes_every_value(tmp_path):
    hostile = "<script>alert(1)</script>"
    run = RunDir(tmp_path / "run1")
    run.root.mkdir()
    write_json(run.status, {"status": "failed", "error": hostile, "failed_notebook": hostile,
                            "failed_link": "01_architecture.html#papermill-error-cell"})
    write_json(tmp_path / "sweep.json", {"sweep": hostile, "base": "b.yaml",
                                         "runs": [{"name": "run1", "overrides": {"data.root": hostile}}]})
    page = index.sweep_header_html(tmp_path) + index.index_html(index.sweep_table(tmp_path), tmp_path)
    assert hostile not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_second_sweep_into_a_held_folder_is_refused(tmp_path, capsys):
    path = write_sweep(tmp_path, "grid:\n  model.latent_dim: [8]\n")
    folder = tmp_path / "reports" / "s"
    folder.mkdir(parents=True)
    with sweep_lock(folder):
        assert main(["sweep", str(path), "--out", str(tmp_path / "reports")]) == 2
    err = capsys.readouterr().err
    assert "another sweep is running into this folder" in err and f"pid {os.getpid()}" in err
    assert list(folder.iterdir()) == [folder / ".sweep.lock"]  # nothing else was touched


def _hold_and_wait(folder, ready):
    with sweep_lock(folder):
        ready.set()
        signal.pause()


def test_a_killed_sweep_leaves_no_stale_lock(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    holder = context.Process(target=_hold_and_wait, args=(folder, ready))
    holder.start()
    assert ready.wait(60)
    with pytest.raises(ConfigError, match="another sweep"):
        with sweep_lock(folder):
            pass
    holder.kill()  # SIGKILL: no chance to clean up
    holder.join()
    with sweep_lock(folder):  # the operating system released it
        pass


@pytest.mark.parametrize("text, message", [
    ("train: {epochs: 1}\ntrain: {epochs: 2}\n", "duplicate key 'train'"),
    ("# only a comment\n", "the config file is empty"),
    ("", "the config file is empty"),
    ("optim_g: {lr: .inf}\n", "optim_g.lr must be a finite number (got inf)"),
    ("loss: {real_label: .nan}\n", "loss.real_label must be a finite number"),
])
def test_bad_config_files_name_file_key_and_value(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="c.yaml") as err:
        load(path)
    assert message in str(err.value)


def test_duplicate_variants_are_refused(tmp_path):
    path = write_sweep(tmp_path, "variants:\n  a: {}\n  a: {train.epochs: 1}\n")
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        load_sweep(path)


def test_bad_set_values_are_errors_not_tracebacks(tmp_path, capsys):
    assert main(["train", "params/smoke.yaml", "--out", str(tmp_path / "r"), "--set", "train.epochs=[1,"]) == 2
    assert "--set 'train.epochs=[1,': the value is not valid YAML" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_batch_larger_than_the_data_is_refused_before_training(tiny_config, tmp_path):
    config = tiny_config(data={"name": "digits", "subset": None, "image_size": 8}, model={"arch": "mlp"},
                         train={"batch_size": 2048})
    with pytest.raises(TrainingError, match=r"train.batch_size = 2048 is larger than the data \(1500 images of digits"):
        Trainer(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert main(["train", "params/smoke.yaml", "--out", str(tmp_path / "run"),
                 "--set", "data.name=digits", "--set", "data.subset=null", "--set", "train.batch_size=2048"]) == 2


def test_subset_larger_than_the_data_is_refused(tiny_config):
    with pytest.raises(DataError, match=r"data.subset = 7000 is larger than the data \(\d+ images of classes"):
        load_data(tiny_config(data={"subset": 7000, "classes": [0]}))  # 6000 (or ~150 digits)


def test_metrics_json_stays_strict(tmp_path):
    write_json(tmp_path / "m.json", {"fd": math.nan, "kid": math.inf, "ok": 1.5})
    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda c: pytest.fail(c)) == {
        "fd": None, "kid": None, "ok": 1.5}


def test_report_parameters_reach_the_notebooks_and_are_checked(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, "report: {parameters: {sample_class: '3', class_count: 8}}\n"))
    assert sweep.parameters == {"sample_class": "3", "class_count": 8}
    for body, message in [("report: {parameters: {sampel_class: Bag}}\n", "no notebook of this sweep has that"),
                          ("report: {parameters: {run_dir: /tmp}}\n", "set by the runner"),
                          ("report: {notebooks: [02_training], parameters: {sample_class: Bag}}\n",
                           "report.parameters.sample_class: no notebook"),
                          ("report: {parameters: {class_count: [1, 2]}}\n", "must be a string, number")]:
        with pytest.raises(ConfigError, match=message):
            load_sweep(write_sweep(tmp_path, body))


def test_a_sweep_whose_batch_exceeds_its_data_stops_before_any_work(tmp_path, capsys):
    path = write_sweep(tmp_path, "grid:\n  data.classes: [[0], [0, 1]]\nset: {data.subset: null, data.name: digits, "
                                 "data.image_size: 8, model.arch: mlp, train.batch_size: 200}\n")
    assert main(["sweep", str(path), "--out", str(tmp_path / "reports")]) == 2
    err = capsys.readouterr().err
    assert "train.batch_size = 200 is larger than the data (151 images of digits" in err and "(run classes_0_)" in err
    assert not (tmp_path / "reports").exists()
