"""Sweep tier: notebooks executed by papermill into reports, the index, caching, failures."""
import json
import re

import numpy as np
import pytest
from PIL import Image

from gan_core.cli import main
from gan_core.reporting import html as report
from gan_core.orchestration.runner import run_sweep
from gan_core.orchestration.sweep import load_sweep

from .conftest import REPO, real_data_name


SMOKE_NOTEBOOK = {"run_dir": "runs/notebook-smoke", "config_path": "params/smoke.yaml", "progress": False}


def write_sweep(tmp_path, body, name="s", absolute_base=False):
    """A sweep file over a tiny base config (``absolute_base``: named by its absolute path)."""
    base = tmp_path / "base.yaml"
    base.write_text(f"""
data: {{name: {real_data_name()}, subset: 64}}
model: {{latent_dim: 8}}
dcgan: {{ngf: 4, ndf: 4}}
train: {{epochs: 2, batch_size: 16, log_every: 2, num_samples: 16}}
eval: {{samples: 64, checkpoint_samples: 32, cache_dir: {tmp_path / 'cache'}}}  # empty: the first use, every time
""")
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"base: {base if absolute_base else 'base.yaml'}\n" + body)
    return path


def test_expand_names_and_overrides(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, """
set: {train.epochs: 1}
grid:
  train.batch_size: [16, 32]
  model.latent_dim: [10, 100]
variants:
  bce: {}
  lsgan: {loss.kind: mse}
"""))
    names = [r.name for r in sweep.runs]
    assert names[:4] == ["bce-bs16-z10", "bce-bs16-z100", "bce-bs32-z10", "bce-bs32-z100"]
    assert len(names) == 8 and "lsgan-bs32-z100" in names
    run = sweep.runs[-1]
    assert run.config.loss.kind == "mse" and run.config.train.batch_size == 32
    assert run.config.model.latent_dim == 100 and run.config.train.epochs == 1
    assert run.overrides == {"loss.kind": "mse", "train.batch_size": 32, "model.latent_dim": 100}


def test_set_reaches_the_runs_of_another_family(tmp_path):
    """A DCGAN base with a DDPM variant: the set's diffusion settings (a section the base lacks)
    reach the DDPM runs, under the variant's own (gan_vs_ddpm's quick DDIM steps were lost)."""
    sweep = load_sweep(write_sweep(tmp_path, """
set: {diffusion.sample_steps: 25, diffusion.timesteps: 100, train.epochs: 1}
variants:
  gan: {}
  ddpm: {model.arch: ddpm, diffusion.timesteps: 50}
"""))
    gan, ddpm = sweep.runs
    assert gan.config.model.arch == "dcgan" and gan.config.train.epochs == 1
    assert (ddpm.config.family.sample_steps, ddpm.config.family.timesteps, ddpm.config.train.epochs) == (25, 50, 1)
    assert ddpm.overrides == {"model.arch": "ddpm", "diffusion.timesteps": 50}


@pytest.mark.parametrize("body, message", [
    ("grid:\n  train.batch_size: [16, 0]\n", "s.yaml (run bs0): train.batch_size must be > 0 (got 0)"),
    ("grid:\n  train.bach_size: [16]\n", "unknown key train.bach_size"),
    ("grid:\n  model.latent_dim: 8\n", "grid.model.latent_dim must be a non-empty list"),
    ("gird:\n  model.latent_dim: [8]\n", "s.yaml: unknown key gird"),
    ("report: {notebooks: [99_nothing]}\n", "no notebook '99_nothing'"),
])
def test_bad_sweep_stops_before_any_work(tmp_path, capsys, body, message):
    path = write_sweep(tmp_path, body)
    assert main(["sweep", str(path), "--out", str(tmp_path / "reports")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory):
    """The two-configuration sweep, all notebooks, run once for the tests below."""
    tmp = tmp_path_factory.mktemp("sweep")
    path = write_sweep(tmp, "grid:\n  model.latent_dim: [8, 16]\n", absolute_base=True)  # and an absolute sweep file
    lines = []
    code = run_sweep(load_sweep(path), tmp / "reports", jobs=2, pdf=True, log=lines.append)
    return tmp, path, code, lines


@pytest.mark.slow
@pytest.mark.xdist_group("smoke_sweep")  # one worker trains the fixture
def test_sweep_produces_reports_and_index(smoke_sweep):
    tmp, _, code, lines = smoke_sweep
    assert code == 0, lines
    sweep_dir = tmp / "reports" / "s"
    notebooks = sorted(p.stem for p in (REPO / "notebooks").glob("0[1-6]_*.ipynb"))
    for run in ("z8", "z16"):
        for stem in notebooks:
            page = (sweep_dir / run / f"{stem}.html").read_text()
            assert "data:image/png;base64" in page or stem == "01_architecture"
            assert "injected-parameters" not in page and "config_path = " not in page  # parameters hidden
            assert "Traceback" not in page
            assert "application/vnd.jupyter.stdout" not in page  # no console output on a page
            assert str(tmp) not in page  # no path of the machine that built it, though the user typed them
        status = json.loads((sweep_dir / run / "status.json").read_text())
        assert status["status"] == "ok" and len(status["reports"]) == len(notebooks)
        metrics = json.loads((sweep_dir / run / "metrics.json").read_text())
        assert {"training", "loss_analysis", "evaluation"} <= metrics.keys()  # the job's work, not the notebooks'
        assert np.isfinite(metrics["training"]["final_loss_d"])
        steps = {"training", "evaluation", "analysis", *notebooks}
        assert set(status["step_s"]) == steps and all(t > 0 for t in status["step_s"].values())
    # the shipped evaluator: nothing trained on first use, the test features cached once
    assert not any("training the" in line for line in lines), lines
    # its real side prepared once for both runs, before they started
    assert sum("evaluator's test features and floor in" in line for line in lines) == 1, lines
    assert len(list((tmp / "cache" / "evaluators").glob("*.reference-*.json"))) == 1
    cached = sorted(p.name.split(".test-")[1] for p in (tmp / "cache" / "evaluators").glob("*.pt"))
    assert cached[0] == "4bf5c357d62e.pt" and all(name.startswith("4bf5c357d62e.radii-") for name in cached[1:]), cached
    for run in ("z8", "z16"):
        assert "training the" not in (sweep_dir / run / "train.log").read_text()
    index = (sweep_dir / "index.html").read_text()
    assert "z8/02_training.html" in index and "z16/05_sample_gallery.html" in index
    assert str(tmp) not in index and ">s.yaml<" in index and ">base.yaml<" in index  # names, not machine paths
    assert "fashion-mnist-v3 (" in index or "digits-v3 (" in index  # the evaluator's version
    summary = (sweep_dir / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("run,rank,configuration,seed,variant,reference,differs,model.latent_dim,status")
    assert "fd,fd_floor" in summary[0]
    assert len(summary) == 3


@pytest.mark.slow
@pytest.mark.xdist_group("smoke_sweep")  # one worker trains the fixture
def test_no_page_shows_a_warning_a_traceback_or_a_path(smoke_sweep):
    """Every page of a sweep, the index too, as a student hands it in: no warning a library
    raised while its notebook ran (they go to the run's train.log), no traceback, no path of the
    machine (the home folder, the checkout, the reports folder)."""
    from pathlib import Path
    tmp = smoke_sweep[0]
    pages = sorted((tmp / "reports" / "s").rglob("*.html"))
    assert len(pages) == 13
    machine = [str(Path.home()), str(REPO), str(tmp)]
    for page in pages:
        text = re.sub(r"data:[a-z]+/[a-z+]+;base64,[A-Za-z0-9+/=]+", "", page.read_text())  # pictures aside
        for unwanted in ("Warning", "Traceback", *machine):
            assert unwanted not in text, (page.relative_to(tmp), unwanted, text[max(0, text.find(unwanted) - 200):][:400])


@pytest.mark.slow
@pytest.mark.xdist_group("smoke_sweep")  # one worker trains the fixture
def test_the_index_renders_the_tables_the_job_wrote(smoke_sweep):
    """The index reads summary.csv and comparison.csv as the sweep's job wrote them: read back,
    they are the tables it computed, and the page built from them is the page built from those."""
    from gan_core.reporting import aggregate, index
    sweep_dir = smoke_sweep[0] / "reports" / "s"
    computed, read = aggregate.compute(sweep_dir), aggregate.read(sweep_dir)
    assert read.settings == computed.settings == ["model.latent_dim"]
    assert index.index_html(read.runs, sweep_dir) == index.index_html(computed.runs, sweep_dir)
    page = lambda tables: index.configurations_table(tables.configurations, tables.runs).set_uuid("t").to_html()  # noqa: E731
    assert page(read) == page(computed)
    assert not (sweep_dir / "claims.csv").exists() and read.claims.empty  # the sweep declares no claims


@pytest.mark.slow
@pytest.mark.xdist_group("smoke_sweep")  # one worker trains the fixture
def test_reports_record_provenance(smoke_sweep):
    tmp = smoke_sweep[0]
    page = (tmp / "reports" / "s" / "z8" / "02_training.html").read_text()
    for fact in ("resolved config (hash ", "seed", "torch", "commit", "latent_dim: 8"):
        assert fact in page


@pytest.mark.slow
@pytest.mark.xdist_group("smoke_sweep")  # one worker trains the fixture
def test_second_run_skips_completed(smoke_sweep):
    tmp, path, _, _ = smoke_sweep
    lines = []
    before = (tmp / "reports" / "s" / "z8" / "02_training.html").stat().st_mtime
    assert run_sweep(load_sweep(path), tmp / "reports", jobs=2, log=lines.append) == 0
    assert any("z8: complete and unchanged, skipped" in line for line in lines)
    assert any("0 to execute" in line for line in lines)
    assert (tmp / "reports" / "s" / "z8" / "02_training.html").stat().st_mtime == before


@pytest.mark.skipif(report.chromium() is None, reason="Chromium not installed")
@pytest.mark.slow
@pytest.mark.xdist_group("smoke_sweep")  # one worker trains the fixture
def test_pdf_and_index_screenshot(smoke_sweep, tmp_path):
    sweep_dir = smoke_sweep[0] / "reports" / "s"
    pdf = sweep_dir / "z8" / "02_training.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000
    shot = report.screenshot(sweep_dir / "index.html", tmp_path / "index.png", 1000, 1200)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # text, tables and pictures, not a blank page


@pytest.mark.skipif(report.chromium() is None, reason="Chromium not installed")
@pytest.mark.slow
@pytest.mark.xdist_group("smoke_sweep")  # one worker trains the fixture
def test_every_page_fits_across_a_printed_page(smoke_sweep):
    """The widest tables (the index's runs, the stability figures) fit an A4 page and an A5
    one, with no scrollbar and no cell whose content spills over its neighbour."""
    sweep_dir = smoke_sweep[0] / "reports" / "s"
    pages = [sweep_dir / "index.html", *sorted((sweep_dir / "z8").glob("0*.html"))]
    assert len(pages) == 7
    for page in pages:
        width, found = report.overflowing(page, "A4")
        assert width == 718 and found == [], (page.name, found)
    assert report.overflowing(sweep_dir / "index.html", "A5")[1] == []


@pytest.mark.skipif(report.chromium() is None, reason="Chromium not installed")
@pytest.mark.slow
@pytest.mark.xdist_group("smoke_sweep")  # one worker trains the fixture
def test_overflow_probe_finds_what_sticks_out(smoke_sweep):
    page = smoke_sweep[0] / "reports" / "s" / ".wide.html"
    page.write_text("<html><head></head><body><div style='overflow-x:auto'><table><tr><td style='white-space:"
                    "nowrap'>" + "word " * 200 + "</td></tr></table></div><table style='width:300px;table-layout:fixed'><tr><td "
                    "style='width:50px'><span style='white-space:nowrap'>spills over into the next cell</span></td><td>x</td></tr>"
                    "</table></body></html>")
    try:
        found = report.overflowing(page)[1]
    finally:
        page.unlink()
    assert any(f.startswith("div ") and "hides" in f for f in found), found  # a scrollbar on paper
    assert any(f.startswith("td ") and "hides" in f for f in found), found  # a cell spilling over


@pytest.mark.skipif(report.chromium() is None, reason="Chromium not installed")
@pytest.mark.slow
@pytest.mark.xdist_group("smoke_sweep")  # one worker trains the fixture
def test_pdf_page_size_is_a4_unless_asked(smoke_sweep, tmp_path):
    sweep_dir = smoke_sweep[0] / "reports" / "s"
    def pages(pdf):  # each page's width and height in points
        boxes = re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf.read_bytes())
        return {(round(float(w)), round(float(h))) for w, h in boxes}
    assert pages(sweep_dir / "index.pdf") == {(595, 842)}  # A4
    assert pages(report.render_pdf(sweep_dir / "index.html", tmp_path / "i.pdf", "Letter landscape")) == {(792, 612)}


@pytest.mark.slow
def test_failing_run_is_reported_and_others_complete(tmp_path):
    """A run that fails at run time (its losses diverge; bad input is refused before any work)."""
    path = write_sweep(tmp_path, """
variants:
  good: {}
  broken: {optim_d.lr: 1.0e+30, optim_g.lr: 1.0e+30}
report: {notebooks: [01_architecture, 02_training]}
""")
    lines = []
    code = run_sweep(load_sweep(path), tmp_path / "reports", jobs=2, log=lines.append)
    assert code == 1
    sweep_dir = tmp_path / "reports" / "s"
    assert json.loads((sweep_dir / "good" / "status.json").read_text())["status"] == "ok"
    status = json.loads((sweep_dir / "broken" / "status.json").read_text())
    assert status["status"] == "failed" and status["failed_step"] == "training"
    assert "TrainingError" in status["error"] and "non-finite" in status["error"]
    assert not (sweep_dir / "broken" / "02_training.html").exists()  # a page of a run without training: none
    index = (sweep_dir / "index.html").read_text()
    assert "<b>failed</b></span> in training<br" in index and "non-finite" in index
    assert any("1 of 2 runs failed" in line for line in lines)
    assert not (sweep_dir / "good" / ".done").read_text() == ""
    # fixing nothing and running again retries only the failed run
    lines.clear()
    run_sweep(load_sweep(path), tmp_path / "reports", jobs=1, log=lines.append)
    assert any("good: complete and unchanged" in line for line in lines)
    assert any("1 to execute" in line for line in lines)


@pytest.mark.slow
def test_changed_config_keeps_earlier_results(tmp_path):
    path = write_sweep(tmp_path, "grid:\n  model.latent_dim: [8]\nreport: {notebooks: [02_training]}\n")
    assert run_sweep(load_sweep(path), tmp_path / "reports", log=lambda s: None) == 0
    path.write_text(path.read_text().replace("[8]", "[8]\nset: {train.epochs: 1}"))
    lines = []
    assert run_sweep(load_sweep(path), tmp_path / "reports", log=lines.append) == 0
    previous = list((tmp_path / "reports" / "s" / "_previous").iterdir())
    assert len(previous) == 1 and (previous[0] / "checkpoints" / "last.pt").exists()
    assert any("config changed" in line for line in lines)


@pytest.mark.slow
def test_a_notebook_runs_from_any_folder_with_its_defaults(tmp_path):
    """Copied out of the checkout and run there, a notebook finds a shipped preset by its params/
    name and writes its run beside itself, never into the checkout."""
    import shutil

    import papermill
    copy = tmp_path / "elsewhere" / "02_training.ipynb"
    copy.parent.mkdir()
    shutil.copy(REPO / "notebooks" / "02_training.ipynb", copy)
    before = set((REPO / "runs").rglob("*")) if (REPO / "runs").exists() else set()
    papermill.execute_notebook(str(copy), str(tmp_path / "out.ipynb"), cwd=str(copy.parent), kernel_name="python3",
                               progress_bar=False, parameters=SMOKE_NOTEBOOK)
    assert "Traceback" not in (tmp_path / "out.ipynb").read_text()
    assert (copy.parent / "runs" / "notebook-smoke" / "checkpoints" / "last.pt").exists()
    assert (set((REPO / "runs").rglob("*")) if (REPO / "runs").exists() else set()) == before


@pytest.mark.slow
def test_the_installed_package_runs_a_sweep_from_any_folder(tmp_path):
    """pip install . (not editable) carries the notebooks and presets: a sweep runs from a
    folder that is not the checkout, with the shipped smoke preset."""
    import os
    import subprocess
    import sys
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(REPO),
                    "--target", str(site)], check=True, capture_output=True, cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site)}  # the installed copy, not the checkout
    command = [sys.executable, "-m", "gan_core", "sweep", "params/sweeps/smoke.yaml", "--only", "z8",
               "--out", str(tmp_path / "reports"), "--set", f"eval.cache_dir={tmp_path / 'cache'}",
               "--set", "eval.samples=100", "--set", "eval.checkpoint_samples=50", "--set", "train.epochs=1"]
    listed = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert listed.returncode == 0 and "z8: model.latent_dim=8" in listed.stdout, listed.stderr
    assert str(site) in listed.stdout  # the preset came from the installed package
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "reports" / "smoke" / "z8" / "status.json").read_text())["status"] == "ok"
    page = (tmp_path / "reports" / "smoke" / "z8" / "02_training.html").read_text()
    assert str(tmp_path / "reports") not in page and "Traceback" not in page  # no path of this machine, no error
    # its notebooks write beside themselves: copied out, a notebook trains there; opened inside the
    # installed package, it refuses and says how to copy them, and nothing is written there
    installed = sorted(str(p) for p in site.rglob("*"))
    copied = subprocess.run([sys.executable, "-m", "gan_core", "notebooks", str(tmp_path / "mine")],
                            capture_output=True, text=True, cwd=tmp_path, env=env)
    assert copied.returncode == 0 and (tmp_path / "mine" / "02_training.ipynb").exists(), copied.stderr
    run_notebook = ("import papermill, sys; papermill.execute_notebook(sys.argv[1], sys.argv[2], cwd=sys.argv[3], "
                    f"kernel_name='python3', progress_bar=False, parameters={SMOKE_NOTEBOOK!r})")
    mine = subprocess.run([sys.executable, "-c", run_notebook, str(tmp_path / "mine" / "02_training.ipynb"),
                           str(tmp_path / "out.ipynb"), str(tmp_path / "mine")], capture_output=True, text=True, env=env)
    assert mine.returncode == 0, mine.stderr[-2000:]
    assert (tmp_path / "mine" / "runs" / "notebook-smoke" / "checkpoints" / "last.pt").exists()
    inside = site / "gan_core" / "notebooks"
    refused = subprocess.run([sys.executable, "-c", run_notebook, str(inside / "02_training.ipynb"),
                              str(tmp_path / "refused.ipynb"), str(inside)], capture_output=True, text=True, env=env)
    assert refused.returncode != 0 and "gan-workbook notebooks FOLDER" in refused.stderr + refused.stdout
    assert sorted(str(p) for p in site.rglob("*") if "__pycache__" not in str(p)) == \
        [p for p in installed if "__pycache__" not in p]  # the installed package is as it was
