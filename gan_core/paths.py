"""Where gan_core's own files are: the repository (or install) root, the notebooks, the presets."""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent  # the checkout this package runs from (an installed package: site-packages)
# an installed package carries the notebooks and presets inside it (pyproject.toml maps them there)
INSTALLED = (PACKAGE / "notebooks").is_dir()
NOTEBOOKS = PACKAGE / "notebooks" if INSTALLED else REPO / "notebooks"
PARAMS = PACKAGE / "params" if INSTALLED else REPO / "params"


def notebook_path(path: str | Path) -> Path:
    """A notebook parameter's path: relative ones (the defaults, like ``../params/smoke.yaml``)
    are relative to the notebooks folder, so a notebook run from any folder finds them."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else (NOTEBOOKS / path).resolve()
