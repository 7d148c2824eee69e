"""Unit tests of what a report's tables and a sweep's console say: labels and numbers, the
stability rows, the page sizes of the PDFs, the sweep's progress line, --quiet/--verbose."""
from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from gan_core.analysis import losses
from gan_core.cli import main
from gan_core.config import ConfigError
from gan_core.orchestration import local
from gan_core.orchestration.job import Job
from gan_core.orchestration.sweep import load_sweep
from gan_core.reporting import html, tables

from .test_architecture_plots import GAN, make_log
from .test_sweep import write_sweep


@pytest.mark.parametrize("value, shown", [
    (4.0, "4"), (16, "16"), (12345.0, "12,345"), (449.3125, "449.3"), (0.015625, "0.01562"),
    (5.09e-14, "5.09e-14"), (12345.6, "12,346"), (9999.7, "10,000"), (-50123.4, "-50,123"), (9999.4, "9,999"), (float("nan"), "-"), (None, "-"), ("bf16", "bf16"), (True, "True"),
    (np.int64(7), "7"), (np.float32(0.5), "0.5"),
])
def test_numbers_are_shown_as_a_reader_expects(value, shown):
    assert tables.number(value) == shown


@pytest.mark.parametrize("key, names, shown", [
    ("duration_s", None, "time (s)"), ("fd", None, "FD"), ("classes", None, "classes covered"),
    ("final_loss_d", GAN.labels, "D loss (last epoch)"), ("mean_loss_g", GAN.labels, "G loss (all epochs)"),
    ("model.latent_dim", None, "latent_dim"), ("02_training", None, "training"), ("warmup_s", None, "warmup (s)"),
    ("tail_rows", None, "tail rows"), ("output_shape", None, "output shape"),
])
def test_labels_are_words_with_units(key, names, shown):
    assert tables.label(key, names) == shown


def test_readable_table_has_labels_digits_and_no_row_numbers():
    frame = pd.DataFrame({"final_loss_d": [1.375850, 1.155445], "steps": [8.0, 8.0], "duration_s": [23.21, None]})
    page = tables.readable(frame, GAN.labels, index=False).to_html()
    for text in ("D loss (last epoch)", "time (s)", "1.376", "1.155", ">8<", ">23.21<", ">-<"):
        assert text in page, text
    for raw in ("final_loss_d", "1.375850", "8.0", "duration_s", ">0<"):  # no snake_case, 6 digits, row numbers
        assert raw not in page, raw


def test_stability_is_a_few_named_rows_and_a_caption():
    stats = losses.loss_stats(make_log(rows=200), GAN)
    page = tables.stability_table(stats, GAN).to_html()
    rows = [GAN.label(k) for k in GAN.columns]
    assert all(f">{name}<" in page.replace("&#39;", "'").replace("&amp;", "&") for name in ("D loss", "G loss",
                                                                                              "real accuracy"))
    assert len(rows) == 7 and page.count("<tr>") == 1 + 7  # the header and one row per logged column
    for raw in ("mean_loss_d", "spike_k", "tail_rows", "nonfinite"):
        assert raw not in page
    caption = tables.stability_caption(stats)
    assert "last 25% of the log (50 of 200 rows" in caption and "6 robust std" in caption


def test_training_table_names_its_rows():
    training = {"epochs": 2, "steps": 16, "seconds": 0.123, "images_per_s": 5861.7, "final_loss_d": 1.1554,
                "mean_loss_d": 1.266, "config_hash": "6062e78357e2", "generator_params": 8496, "threads": 1}
    page = tables.training_table(training, GAN).to_html()
    for text in ("training time (s)", ">0.1<", "images/s (last epoch)", "5,862", "D loss (last epoch)", "1.155",
                 "D loss (all epochs)", "CPU threads"):
        assert text in page, text
    assert "6062e78357e2" not in page and "8496" not in page and "8,496" not in page  # internals: elsewhere


@pytest.mark.parametrize("size, normal", [("A4", "A4"), ("a3 Landscape", "A3 landscape"), ("Letter", "letter"),
                                          ("legal portrait", "legal portrait")])
def test_page_sizes(size, normal):
    assert html.page_size(size) == normal
    assert f"@page {{ size: {normal}; }}" in html.printable("<html><head></head><body></body></html>", size)


@pytest.mark.parametrize("size", ["A9", "letter sideways", "", "A4 landscape extra"])
def test_a_bad_page_size_is_refused(size):
    with pytest.raises(ValueError, match="A4, A3"):
        html.page_size(size)


def test_sweep_page_size_is_checked_before_any_work(tmp_path, capsys):
    path = write_sweep(tmp_path, "grid:\n  model.latent_dim: [8]\nreport: {page_size: A9}\n")
    with pytest.raises(ConfigError, match=r"s.yaml: report.page_size: page size 'A9' is not one of"):
        load_sweep(path)
    ok = write_sweep(tmp_path, "grid:\n  model.latent_dim: [8]\nreport: {page_size: letter}\n")
    assert load_sweep(ok).page_size == "letter"
    assert main(["sweep", str(ok), "--out", str(tmp_path / "reports"), "--pdf", "--page-size", "A7"]) == 2
    assert "--page-size: page size 'A7'" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


def test_progress_line_shows_the_sweep_and_each_running_run(tmp_path):
    run = tmp_path / "z8"
    run.mkdir()
    (run / "family.json").write_text(json.dumps({"epochs": 5}))
    (run / "log.csv").write_text("epoch,step,loss\n1,4,0.5\n2,8,0.4\n3,12,0.3\n")
    (run / "status.json").write_text(json.dumps({"status": "running", "step": "training"}))
    queued = tmp_path / "z16"
    job = lambda path: Job(str(path), ("nb/01_architecture.ipynb", "nb/02_training.ipynb", "nb/06_evaluation.ipynb"),
                           "key", False, "", 1)  # noqa: E731
    line = local._progress([(job(run), time.monotonic() - 75), (job(queued), time.monotonic())], 4, 1)
    assert line.startswith("[#####...............] 1/4 runs done, 2 running | ")
    assert "z8: training, epoch 3/5, 1:15" in line
    assert "z16: starting, 0:00" in line


def test_quiet_and_verbose(tiny_config, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config().to_dict()))
    assert main(["train", str(config), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # nothing but warnings and errors
    assert main(["train", str(config), "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "epoch 2/2:" in out and "done: 2 epochs" in out
    assert main(["train", str(config), "--out", str(tmp_path / "b"), "-q"]) == 2  # errors still speak, on stderr
    out = capsys.readouterr()
    assert out.out == "" and "already holds a run" in out.err
    with pytest.raises(SystemExit):
        main(["train", str(config), "--out", str(tmp_path / "c"), "-q", "-v"])  # one or the other


def test_sweep_tables_read_back_as_written(tmp_path):
    """What the index reads from the job's CSV files is the table it wrote: whole numbers, numbers
    with missing cells (NaN, never pandas' NA), booleans, and words that look like numbers."""
    from gan_core.reporting import aggregate
    frame = pd.DataFrame({"run": ["a", "b"], "configuration": ["10", "20"], "seed": [0, 1],
                          "fd": [25.7, float("nan")], "p_holm": [float("nan")] * 2, "ok": [True, False],
                          "model.latent_dim": ["10", "100"]})
    path = tmp_path / "summary.csv"
    path.write_text(frame.to_csv(index=False, float_format="%.6g"))
    read = aggregate._read_csv(path)
    pd.testing.assert_frame_equal(read, frame)
    assert not np.isfinite(read.loc[0, "p_holm"])


def test_the_evaluator_line_reads_runs_scored_before_and_after_held_out_figures():
    from gan_core.reporting.prose import evaluator_line
    new = {"evaluator": {"version": "v", "source": "s", "held_out": 0.5, "held_out_name": "held-out accuracy"},
           "seconds": 2}
    old = {"evaluator": {"version": "v", "source": "s", "test_accuracy": 0.9}, "seconds": 2}
    assert evaluator_line(new) == "Evaluator v, s; held-out accuracy 50.00%. Scoring took 2 s."
    assert evaluator_line(old) == "Evaluator v, s; test accuracy 90.00%. Scoring took 2 s."
