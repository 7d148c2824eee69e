"""What every report shows and how it is rendered: provenance header, HTML, PDF."""
from __future__ import annotations

import base64
import datetime
import html
import json
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from . import __version__
from . import config as config_lib
from .config import Config
from .rundir import RunDir

if TYPE_CHECKING:
    import pandas as pd

PACKAGE_DIR = Path(__file__).resolve().parent
# training figures per run: mean over the last epoch (final_) or over all of training (mean_);
# loss_d and loss_g for a GAN, loss for a diffusion model
INDEX_LOSS_COLUMNS = ("final_loss_d", "final_loss_g", "final_loss")
MORE_LOSS_COLUMNS = ("mean_loss_d", "mean_loss_g", "mean_loss", "final_acc_real", "final_acc_fake")
LOSS_COLUMNS = INDEX_LOSS_COLUMNS + MORE_LOSS_COLUMNS
HIDDEN_INDEX_COLUMNS = ("error", "images_per_s", "kid", "fd_floor", *MORE_LOSS_COLUMNS)  # kept in summary.csv
HIDDEN_CELL_TAGS = ("parameters", "injected-parameters")  # the config header states the real values


def git_commit() -> str:
    """The commit of the gan_core checkout, with ``+dirty`` for uncommitted changes, or 'unknown'."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PACKAGE_DIR), *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance() -> dict[str, str]:
    """Versions, commit, machine and time, as recorded at the top of every report."""
    import numpy
    import torch
    import torchvision
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    return {
        "gan_core": __version__, "commit": git_commit(), "python": platform.python_version(),
        "torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": numpy.__version__,
        "device": device, "host": platform.node(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def header_html(config: Config, run_dir: str | Path) -> str:
    """The report header: run, seed, config hash, versions and commit, and the full config."""
    facts = {"run": Path(run_dir).name, "seed": config.train.seed, "config hash": config.hash(),
             **provenance()}
    text = html.escape(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return (f"{_facts_table(facts)}"
            f"<details><summary>resolved config</summary><pre>{text}</pre></details>")


def open_run(config_path: str | Path, run_dir: str | Path) -> tuple[Config, RunDir]:
    """Load a notebook's config and show the report header; the first call of every notebook."""
    from IPython.display import HTML, display
    config = config_lib.load(config_path)
    display(HTML(header_html(config, run_dir)))
    return config, RunDir(run_dir)


def render_html(notebook: Path, out: Path, code: bool = False) -> Path:
    """Render an executed notebook to self-contained HTML (figures inline).

    Code cells are hidden unless ``code``; the parameter cells are dropped.
    """
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config as TraitletsConfig

    tc = TraitletsConfig()
    tc.TagRemovePreprocessor.remove_cell_tags = set(HIDDEN_CELL_TAGS)
    tc.TemplateExporter.exclude_input = not code
    tc.TemplateExporter.exclude_input_prompt = not code
    tc.TemplateExporter.exclude_output_prompt = True
    tc.HTMLExporter.embed_images = True
    exporter = HTMLExporter(config=tc)
    exporter.register_preprocessor(TagRemovePreprocessor(config=tc), enabled=True)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    out.write_text(body, encoding="utf-8")
    return out


def chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--run-all-compositor-stages-before-draw", "--virtual-time-budget=10000")


def _run_chromium(page: Path, *args: str) -> None:
    browser = chromium()
    if browser is None:
        raise FileNotFoundError("Chromium not found: install it with 'apt-get install chromium'")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
                        page.resolve().as_uri()], check=True, capture_output=True, timeout=180)


def render_pdf(html_path: Path, pdf_path: Path) -> Path:
    """Print an HTML report to PDF with headless Chromium.

    Raises:
        FileNotFoundError: Chromium is not installed.
    """
    _run_chromium(html_path, f"--print-to-pdf={pdf_path.resolve()}", "--no-pdf-header-footer")
    return pdf_path


def screenshot(html_path: Path, png_path: Path, width: int = 1280, height: int = 2000) -> Path:
    """A PNG of a page as headless Chromium draws it (for checking reports by eye and in tests)."""
    _run_chromium(html_path, f"--screenshot={png_path.resolve()}", f"--window-size={width},{height}",
                  "--hide-scrollbars")
    return png_path



def sweep_runs(sweep_dir: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(run name, overrides) in sweep order from sweep.json, else every sub-folder holding a config."""
    sweep_dir = Path(sweep_dir)
    info = sweep_dir / "sweep.json"
    if info.exists():
        return [(r["name"], r["overrides"]) for r in json.loads(info.read_text())["runs"]]
    return [(p.parent.name, {}) for p in sorted(sweep_dir.glob("*/config.yaml"))]


def sweep_table(sweep_dir: str | Path) -> "pd.DataFrame":
    """One row per run: what differs, status, duration and figures from metrics.json."""
    import pandas as pd
    rows = []
    for name, overrides in sweep_runs(sweep_dir):
        run = RunDir(Path(sweep_dir) / name)
        status = json.loads((run.root / "status.json").read_text()) if (run.root / "status.json").exists() else {}
        metrics = run.read_metrics()
        training = metrics.get("training", {})
        rows.append({
            "run": name, "differs": ", ".join(f"{k}={v}" for k, v in overrides.items()),
            "status": status.get("status", "ok" if training else "not run"),
            "duration_s": status.get("duration_s"), "epochs": training.get("epochs"),
            **{k: training.get(k) for k in LOSS_COLUMNS},  # the other family's are absent: NaN
            "images_per_s": training.get("images_per_s"), **_scores(metrics.get("evaluation", {})),
            "error": status.get("error", ""),
        })
    table = pd.DataFrame(rows)
    if "fd" in table and table["fd"].notna().any():  # rank by the evaluator's Frechet distance
        table.insert(1, "rank", table["fd"].rank(method="min").astype("Int64"))
    return table


def _scores(evaluation: dict[str, Any]) -> dict[str, Any]:
    if not evaluation.get("available"):
        return {}
    final, floor = evaluation["final"], evaluation["floor"]
    return {"fd": final["fd"], "fd_floor": floor["fd"], "kid": final["kid"], "precision": final["precision"],
            "recall": final["recall"], "coverage": final["coverage"], "classes": final["classes_covered"],
            **({"conditional_accuracy": final["conditional_accuracy"]} if "conditional_accuracy" in final else {})}


def index_html(table: "pd.DataFrame", sweep_dir: str | Path) -> str:
    """The sweep table as HTML with each run's final grid and links to its reports."""
    sweep_dir = Path(sweep_dir)
    floor = ""
    if "fd_floor" in table and table["fd_floor"].notna().any():
        floor = (f"<p>Ranked by FD in the evaluator's feature space (lower is better); real training "
                 f"images score {table['fd_floor'].dropna().iloc[0]:.3g} (the floor). KID, images/s and "
                 "the rest are in summary.csv.</p>")
        table = table.sort_values("rank", kind="stable")
    shown = table.drop(columns=[c for c in HIDDEN_INDEX_COLUMNS if c in table]).dropna(axis=1, how="all")
    # links and grids right after the run's name: the table is wide, they must not scroll away
    shown.insert(1, "reports", [_links(sweep_dir / name) for name in table["run"]])
    shown.insert(2, "final grid", [_thumbnail(RunDir(sweep_dir / name)) for name in table["run"]])
    shown["status"] = [_status_cell(sweep_dir / name, s, e) for name, s, e
                       in zip(table["run"], table["status"], table["error"])]
    body = shown.to_html(escape=False, index=False, na_rep="", float_format=lambda x: f"{x:,.4g}")
    return f"{floor}<div style='overflow-x:auto'>{body}</div>"


def _thumbnail(run: RunDir, width: int = 120) -> str:
    grids = run.sample_grids()
    if not grids:
        return ""
    data = base64.b64encode(grids[-1].read_bytes()).decode()
    return (f"<img src='data:image/png;base64,{data}' style='width:{width}px;max-width:none' "
            f"alt='final grid of {run.root.name}' title='{grids[-1].name}'>")


def _links(run_dir: Path) -> str:
    pages = sorted(run_dir.glob("[0-9][0-9]_*.html"))
    return "<br>".join(f"<a href='{run_dir.name}/{p.name}'>{p.stem.split('_', 1)[1]}</a>" for p in pages)


def _status_cell(run_dir: Path, status: str, error: str) -> str:
    if status != "failed":
        return status
    info = json.loads((run_dir / "status.json").read_text())
    link = f"{run_dir.name}/{info.get('failed_link', '')}"
    return (f"<a href='{link}' style='color:#b00'><b>failed</b></a><br>"
            f"<small>{html.escape(str(info.get('failed_notebook', '')))}: {html.escape(error)}</small>")


def sweep_header_html(sweep_dir: str | Path) -> str:
    """Title and provenance of a sweep's index page."""
    sweep_dir = Path(sweep_dir)
    info = json.loads((sweep_dir / "sweep.json").read_text()) if (sweep_dir / "sweep.json").exists() else {}
    facts = {"sweep file": info.get("sweep", "-"), "base config": info.get("base", "-"),
             "folder": str(sweep_dir), **provenance()}
    return f"{_facts_table(facts)}<h2>Runs</h2>"


def _facts_table(facts: dict[str, Any]) -> str:
    cells = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                    f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    return f"<table>{cells}</table>"
