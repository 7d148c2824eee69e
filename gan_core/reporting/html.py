"""What every report shows and how it is rendered: provenance header, HTML, PDF."""
from __future__ import annotations

import datetime
import html
import importlib.metadata
import sys
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml

from .. import __version__
from ..config import Config
from .. import evaluators
from ..paths import scrub, shown
from ..rundir import RunDir, RunIncomplete, temporary_beside, write_atomic
from . import workspace

PACKAGE_DIR = Path(__file__).resolve().parent.parent
HIDDEN_CELL_TAGS = ("parameters", "injected-parameters")  # the config header states the real values
PAGE_SIZES = {"A5": (148, 210), "A4": (210, 297), "A3": (297, 420), "B5": (176, 250), "B4": (250, 353),
              "letter": (215.9, 279.4), "legal": (215.9, 355.6), "ledger": (279.4, 431.8)}  # CSS's, in mm
MARGIN_MM = (12, 10)  # top and bottom, left and right: PRINT_CSS's @page margin


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
    versions = {name: importlib.metadata.version(name) for name in ("torch", "torchvision", "numpy")}
    torch = sys.modules.get("torch")  # the device, when torch is loaded already (a report of a run); never loaded here
    device = torch.cuda.get_device_name(0) if torch and torch.cuda.is_available() else platform.processor() or "cpu"
    return {"gan_core": __version__, "commit": git_commit(), "python": platform.python_version(), **versions,
        "device": device,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def header_html(config: Config, run_dir: str | Path) -> str:
    """The report header: run, seed, precision, evaluator, versions and commit, then the full
    config and its hash, folded (unfolded on paper); paths in it as ``paths.shown`` puts them."""
    training = RunDir(run_dir).read_metrics().get("training", {})
    facts = {"run": Path(run_dir).name, "seed": config.train.seed,
             **{k: training[k] for k in ("precision", "threads") if k in training},
             "evaluator": evaluators.described(config), **provenance()}
    shown_config = config.to_dict()
    for section, key in (("data", "root"), ("eval", "cache_dir")):  # no path of the machine on a page
        if shown_config[section][key] and not str(shown_config[section][key]).startswith("~"):
            shown_config[section][key] = shown(shown_config[section][key], Path(run_dir).parent)
    text = html.escape(yaml.safe_dump(shown_config, sort_keys=False))
    return (f"{facts_table(facts)}<details><summary>resolved config (hash {config.hash()})</summary>"
            f"<pre class='config'>{text}</pre></details>")


def open_run(run_dir: str = "", config_path: str = "", needs: tuple[str, ...] = ("training",),
             compute: bool = True) -> tuple[Config, RunDir]:
    """The first call of every run notebook: the run it shows (``workspace.choose``: the one its
    parameters name, else the main job's first run, else the lab run) and its config; shows
    which run that is (for the defaults) and the report header.

    Args:
        needs: the steps of the run's work (``analysis.work.STEPS``) whose results the notebook
            reads; training is needed by any of them.
        compute: run the needed steps the run lacks here (JupyterLab: the lab run is trained on
            first use). A sweep's job has computed them all and renders with ``compute`` false.

    Raises:
        RunIncomplete: without ``compute``, the run lacks what the notebook reads (naming it).
    """
    from IPython.display import HTML, Markdown, display
    from ..analysis import work
    chosen = workspace.choose(run_dir, config_path)
    if not run_dir:
        display(Markdown(chosen.note))
    if needs and compute:
        work.complete(chosen.run, chosen.config, needs, log=chosen.run.logger(echo=True))
    elif needs and (missing := [s for s in work.pending(chosen.run) if s in ("training", *needs)]):
        chosen.run.require_trained()  # names how to train it
        raise RunIncomplete(f"{chosen.run.root}: its {' and '.join(missing)} results are missing (metrics.json): "
                            "its sweep's job computes them (run the sweep again), or open this notebook in "
                            "JupyterLab, which computes them")
    display(HTML(header_html(chosen.config, chosen.run.root)))
    return chosen.config, chosen.run


ANSI = re.compile(r"\x1b\[[0-9;]*m")  # a traceback's colours


def quiet(notebook: Path, log: Callable[[str], None], *folders: str | Path) -> None:
    """An executed notebook made fit for its page, in place: what its cells wrote to stderr
    (a library's warnings, progress) goes to ``log`` instead, and an error keeps one line
    (``KeyError: 'fd'``) without the machine's paths (``paths.scrub``, ``folders`` too), its
    traceback logged."""
    import nbformat
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                log(f"{notebook.stem}: {output.get('text', '').rstrip()}")
                continue
            if output.get("output_type") == "error":
                log(f"{notebook.stem}: " + ANSI.sub("", "\n".join(output.get("traceback", []))))
                output["evalue"] = scrub(str(output.get("evalue", "")), *folders)
                output["traceback"] = [f"{output.get('ename', 'Error')}: {output['evalue']}"]
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    write_atomic(notebook, nbformat.writes(nb))


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
    write_atomic(out, offline(body).replace("</head>", PRINT_CSS + "</head>", 1))
    return out


# pages (A4 unless render_pdf is told otherwise) that keep every column: wide tables shrink and
# wrap between words instead of scrolling, headings stay with what follows them, figures are
# not split, the resolved config takes three columns
PRINT_CSS = """<style>
@page { margin: MARGIN; }
@media print {
  body { font-size: 10pt; }
  pre.config { column-count: 3; font-size: 7pt; }
  div[style*="overflow-x"], .jp-OutputArea-output, .jp-RenderedHTMLCommon { overflow: visible !important; }
  .jp-Cell, .jp-Cell-outputWrapper, .jp-OutputArea, .jp-OutputArea-child, .jp-OutputArea-output {
    break-inside: auto !important; page-break-inside: auto !important; }
  table { font-size: 7pt !important; width: 100% !important; table-layout: auto !important; }
  td, th { padding: 1px 2px !important; }
  table.sortable img { width: 64px !important; }
  h1, h2, h3 { break-after: avoid; page-break-after: avoid; }
  img, svg, tr { break-inside: avoid; page-break-inside: avoid; }
  img { max-width: 100% !important; max-height: 95vh; object-fit: contain; }  /* a figure taller than a page: scaled to one */
}
</style>
""".replace("MARGIN", f"{MARGIN_MM[0]}mm {MARGIN_MM[1]}mm")


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


def _run_chromium(page: Path, *args: str) -> str:
    """Run headless Chromium on ``page`` with ``args``; returns what it wrote to stdout."""
    browser = chromium()
    if browser is None:
        raise FileNotFoundError("Chromium not found: install it with 'apt-get install chromium'")
    for attempt in (1, 2):  # headless Chromium now and then hangs on a loaded machine: once more
        with tempfile.TemporaryDirectory() as profile:
            try:
                return subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
                                       page.resolve().as_uri()], check=True, capture_output=True, text=True,
                                      timeout=90).stdout
            except subprocess.TimeoutExpired:
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")


def page_size(page: str) -> str:
    """``page`` checked as a CSS page size: a name of ``PAGE_SIZES`` (any case), optionally
    followed by ``landscape`` or ``portrait`` (e.g. ``A4 landscape``); returned normalised.

    Raises:
        ValueError: not such a size; the message lists them.
    """
    words = str(page).split()
    names = {name.lower(): name for name in PAGE_SIZES}
    if not 1 <= len(words) <= 2 or words[0].lower() not in names or \
            (len(words) == 2 and words[1].lower() not in ("landscape", "portrait")):
        raise ValueError(f"page size {page!r} is not one of {', '.join(PAGE_SIZES)} "
                         "(optionally followed by 'landscape')")
    return " ".join([names[words[0].lower()], *(w.lower() for w in words[1:])])


def printable(page: str, size: str = "A4") -> str:
    """An HTML report as it is printed: ``size`` pages (``page_size``), folded sections open."""
    rule = f"<style>@page {{ size: {page_size(size)}; }}</style></head>"
    return page.replace("<details>", "<details open>").replace("</head>", rule, 1)


# for a page whose tables are too wide for the paper otherwise, tried in turn until it fits:
# smaller type, then headers broken where they must be, then cells too (never a column cut off)
SQUEEZES = ("table { font-size: 6pt !important; }",
            "table { font-size: 6pt !important; } th { overflow-wrap: anywhere; }",
            "table { font-size: 6pt !important; } td, th { overflow-wrap: anywhere; }")


def print_ready(html_path: Path, size: str = "A4") -> str:
    """The page as ``render_pdf`` prints it: ``printable``, squeezed by the first of
    ``SQUEEZES`` that makes it fit a ``size`` page when it does not as it is (``overflowing``)."""
    page = printable(html_path.read_text(encoding="utf-8"), size)
    tries = [page, *(page.replace("</head>", f"<style>@media print {{ {s} }}</style></head>", 1) for s in SQUEEZES)]
    return next((t for t in tries[:-1] if not _probe(t, html_path, size)[1]), tries[-1])


def render_pdf(html_path: Path, pdf_path: Path, size: str = "A4") -> Path:
    """Print an HTML report to PDF on ``size`` pages (``page_size``) with headless Chromium.

    Raises:
        FileNotFoundError: Chromium is not installed.
    """
    with temporary_beside(html_path, "print") as printed, temporary_beside(pdf_path, "pdf") as printing:
        write_atomic(printed, print_ready(html_path, size))  # beside it: the same relative links
        _run_chromium(printed, f"--print-to-pdf={printing.resolve()}", "--no-pdf-header-footer")
        os.replace(printing, pdf_path)  # a reader never sees half a PDF
    return pdf_path


# lists every element that sticks out of the page, hides content behind a scrollbar, or is a
# table cell whose content spills out of it, and every picture taller than a page (the window)
OVERFLOW_PROBE = """<script>
window.addEventListener("load", () => {
  const width = document.documentElement.clientWidth, height = window.innerHeight, found = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect(), style = getComputedStyle(el);
    const clips = (["auto", "scroll", "hidden"].includes(style.overflowX) || ["TD", "TH"].includes(el.tagName))
                  && el.scrollWidth > el.clientWidth + 1;  // a scrollbar, or a cell its content spills out of
    if ((box.width > 0 && box.right > width + 1) || clips)
      found.push(`${el.tagName.toLowerCase()}${el.className && typeof el.className === "string" ? "." +
                  el.className.trim().split(/\\s+/)[0] : ""} ${Math.round(box.right)} px` +
                 (clips ? ` (hides ${el.scrollWidth - el.clientWidth} px)` : ""));
    if (el.tagName === "IMG" && box.height > height + 1)
      found.push(`img ${Math.round(box.height)} px tall (the page: ${height} px)`);
  }
  const out = document.createElement("pre"); out.id = "overflow-probe";
  out.textContent = JSON.stringify({width: width, found: found}); document.body.appendChild(out);
});
</script>"""


def overflowing(html_path: Path, size: str = "A4") -> tuple[int, list[str]]:
    """What of a report would not fit a ``size`` page when ``render_pdf`` prints it.

    Returns:
        The printable width in CSS px, and one entry per element that sticks out past it,
        hides content behind a scrollbar or spills out of its table cell (tag, class, right
        edge), and per picture taller than the page (it would leave a blank page before it);
        empty when everything fits.
    """
    return _probe(print_ready(html_path, size), html_path, size)


def _probe(page: str, beside: Path, size: str) -> tuple[int, list[str]]:
    """``page`` drawn by headless Chromium with its print stylesheet in a window of a ``size``
    page's printable area, with ``OVERFLOW_PROBE`` reporting; in a file beside ``beside``."""
    name, *turn = page_size(size).split()
    across, down = PAGE_SIZES[name][::-1] if turn == ["landscape"] else PAGE_SIZES[name]
    width, height = (int((mm - 2 * margin) / 25.4 * 96) for mm, margin in ((across, MARGIN_MM[1]), (down, MARGIN_MM[0])))
    with temporary_beside(beside, "probe") as probe:  # the same relative links
        write_atomic(probe, page.replace("@media print", "@media all").replace("</body>", OVERFLOW_PROBE + "</body>", 1))
        dom = _run_chromium(probe, "--dump-dom", f"--window-size={width},{height}", "--hide-scrollbars")
    found = re.search(r'<pre id="overflow-probe">(.*?)</pre>', dom, flags=re.S)
    if not found:
        raise RuntimeError(f"{beside}: the overflow probe did not run in Chromium")
    result = json.loads(html.unescape(found.group(1)))
    return result["width"], result["found"]


def screenshot(html_path: Path, png_path: Path, width: int = 1280, height: int = 2000) -> Path:
    """A PNG of a page as headless Chromium draws it (for checking reports by eye and in tests)."""
    _run_chromium(html_path, f"--screenshot={png_path.resolve()}", f"--window-size={width},{height}",
                  "--hide-scrollbars")
    return png_path


def facts_table(facts: dict[str, Any]) -> str:
    cells = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                    f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    return f"<table>{cells}</table>"
