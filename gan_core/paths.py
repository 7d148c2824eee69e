"""Where gan_core's own files are: the repository (or install) root, the notebooks, the presets."""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent  # the checkout this package runs from (an installed package: site-packages)
# an installed package carries the notebooks and presets inside it (pyproject.toml maps them there)
INSTALLED = (PACKAGE / "notebooks").is_dir()
NOTEBOOKS = PACKAGE / "notebooks" if INSTALLED else REPO / "notebooks"
PARAMS = PACKAGE / "params" if INSTALLED else REPO / "params"


def shown(path: str | Path, *folders: str | Path) -> str:
    """``path`` as a page may show it, never the machine's absolute path: relative to the current
    folder when it lies inside it, a shipped preset as ``params/...``, else relative to the first
    of ``folders`` that holds it, else its name alone."""
    path = Path(path).expanduser().resolve()
    for base, prefix in ((Path.cwd(), ""), (PARAMS, "params/"), *((Path(f).resolve(), "") for f in folders)):
        if path.is_relative_to(base):
            return prefix + path.relative_to(base).as_posix()
    return path.name


def preset(path: str | Path) -> Path:
    """``path``, or where the package keeps it: a ``params/...`` path that is not there names a
    shipped preset (so an installed package, or a notebook copied elsewhere, finds them)."""
    path = Path(path).expanduser()
    shipped = PARAMS.parent / path
    if not path.exists() and path.parts[:1] == ("params",) and shipped.exists():
        return shipped
    return path


def notebook_path(path: str | Path) -> Path:
    """A notebook parameter's path: relative ones are relative to the folder the notebook runs
    in (its own folder in JupyterLab; papermill passes absolute paths), presets as ``preset``."""
    return preset(path).resolve()


def work_path(path: str | Path) -> Path:
    """Where a notebook writes ``path`` (``notebook_path``): beside the notebook, never inside
    the installed package.

    Raises:
        PermissionError: ``path`` lies inside an installed (not editable) gan_core.
    """
    resolved = notebook_path(path)
    if INSTALLED and resolved.is_relative_to(PACKAGE):
        raise PermissionError(f"{path} would be written inside the installed gan_core package ({PACKAGE}); copy the "
                              "notebooks to a folder of yours and open them there: gan-workbook notebooks FOLDER")
    return resolved


def scrub(text: str, *folders: str | Path) -> str:
    """``text`` (an error message, a log line for a page) without the machine's paths: each of
    ``folders`` (e.g. a sweep folder) as its name, the checkout's files relative to it, the
    home folder as ``~``."""
    places = [(Path(f).expanduser().resolve(), Path(f).name) for f in folders]
    places += [(REPO, REPO.name if INSTALLED else "."), (Path.home().resolve(), "~")]
    for place, name in sorted(places, key=lambda p: -len(str(p[0]))):  # the deepest first
        if str(place) not in ("/", "."):
            text = text.replace(str(place), name)
    return text
