"""What every report shows and how it is rendered: provenance header, HTML, PDF."""
from __future__ import annotations

import datetime
import html
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .. import __version__
from .. import config as config_lib
from ..config import Config
from ..paths import notebook_path
from ..rundir import RunDir

PACKAGE_DIR = Path(__file__).resolve().parent.parent
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
        "device": device,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def header_html(config: Config, run_dir: str | Path) -> str:
    """The report header: run, seed, config hash, versions and commit, and the full config."""
    training = RunDir(run_dir).read_metrics().get("training", {})
    facts = {"run": Path(run_dir).name, "seed": config.train.seed, "config hash": config.hash(),
             **{k: training[k] for k in ("precision", "threads") if k in training}, **provenance()}
    text = html.escape(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return (f"{facts_table(facts)}"
            f"<details><summary>resolved config</summary><pre>{text}</pre></details>")


def open_run(config_path: str | Path, run_dir: str | Path) -> tuple[Config, RunDir]:
    """Load a notebook's config and show the report header; the first call of every notebook.
    Relative paths are relative to the notebooks folder (``paths.notebook_path``)."""
    from IPython.display import HTML, display
    config_path, run_dir = notebook_path(config_path), notebook_path(run_dir)
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
    title = f"{notebook.parent.name}: {notebook.stem.split('_', 1)[-1].replace('_', ' ')}"
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4),
                                          resources={"metadata": {"name": title}})
    out.write_text(offline(body).replace("</head>", PRINT_CSS + "</head>", 1), encoding="utf-8")
    return out


# A4 pages that keep every column: wide tables shrink and wrap instead of scrolling, headings
# stay with what follows them, figures are not split
PRINT_CSS = """<style>
@page { size: A4; margin: 12mm 10mm; }
@media print {
  body { font-size: 10pt; }
  div[style*="overflow-x"], .jp-OutputArea-output, .jp-RenderedHTMLCommon { overflow: visible !important; }
  .jp-Cell, .jp-Cell-outputWrapper, .jp-OutputArea, .jp-OutputArea-child, .jp-OutputArea-output {
    break-inside: auto !important; page-break-inside: auto !important; }
  table { font-size: 7pt; width: 100% !important; table-layout: auto; }
  td, th { padding: 1px 2px !important; overflow-wrap: anywhere; }
  h1, h2, h3 { break-after: avoid; page-break-after: avoid; }
  img, svg, tr { break-inside: avoid; page-break-inside: avoid; }
  img { max-width: 100% !important; }
}
</style>
"""


def offline(page: str) -> str:
    """The page without the scripts nbconvert loads from a CDN (require.js, MathJax): no report
    uses them, and a page opened offline (or printed) must not wait for the network."""
    page = re.sub(r'<script src="https://[^"]*require[^"]*"></script>', "", page)
    return re.sub(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", "", page, flags=re.S)


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
    for attempt in (1, 2):  # headless Chromium now and then hangs on a loaded machine: once more
        with tempfile.TemporaryDirectory() as profile:
            try:
                subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
                                page.resolve().as_uri()], check=True, capture_output=True, timeout=90)
                return
            except subprocess.TimeoutExpired:
                if attempt == 2:
                    raise


def render_pdf(html_path: Path, pdf_path: Path) -> Path:
    """Print an HTML report to PDF with headless Chromium.

    Raises:
        FileNotFoundError: Chromium is not installed.
    """
    printed = html_path.with_name(f".print-{html_path.name}")  # beside it: the same relative links
    printed.write_text(html_path.read_text(encoding="utf-8").replace("<details>", "<details open>"),
                       encoding="utf-8")  # on paper the resolved config is shown, not folded away
    try:
        _run_chromium(printed, f"--print-to-pdf={pdf_path.resolve()}", "--no-pdf-header-footer")
    finally:
        printed.unlink(missing_ok=True)
    return pdf_path


def screenshot(html_path: Path, png_path: Path, width: int = 1280, height: int = 2000) -> Path:
    """A PNG of a page as headless Chromium draws it (for checking reports by eye and in tests)."""
    _run_chromium(html_path, f"--screenshot={png_path.resolve()}", f"--window-size={width},{height}",
                  "--hide-scrollbars")
    return png_path


def facts_table(facts: dict[str, Any]) -> str:
    cells = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                    f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    return f"<table>{cells}</table>"
