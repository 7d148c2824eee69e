"""The explorer of notebook 08: any trained run under ``reports/`` (or ``runs/``) in widgets.

Pick a run and a checkpoint (the same latents through training), move along the latents'
principal directions with sliders, interpolate between two seeded points (linear or
spherical), pick a class of a conditional model, scrub a diffusion model's reverse process.
Every change draws one batch of images with the loaded generator (no training), as a PNG in an
``ipywidgets.Image``; ``Explorer.redraw`` returns it, and tests time it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..analysis import latent
from ..grids import png
from ..models import ModelFamily, load_family
from ..rundir import RunDir, epoch_of

GRID = 16  # images per view: 2 rows of 8
PCA_SAMPLES = 512  # latents whose principal directions the sliders move along
SLIDERS = 3
STRIP = 10  # images of an interpolation
FRAMES = 12  # reverse-process snapshots of a diffusion model


def trained_runs(*roots: str | Path) -> list[RunDir]:
    """Run folders with a finished checkpoint under ``roots`` (a sweep folder's runs, or runs
    directly), sorted by path."""
    found = {p.parent.parent for root in roots if Path(root).is_dir()
             for p in Path(root).glob("**/checkpoints/last.pt") if "_previous" not in p.parts}
    return [RunDir(p) for p in sorted(found)]


@dataclass
class View:
    """What the widgets ask for."""

    run: RunDir
    checkpoint: Path
    offsets: tuple[float, ...] = (0.0,) * SLIDERS  # along the principal directions, in their std
    seeds: tuple[int, int] = (1, 2)  # the two ends of the interpolation
    mode: str = "slerp"
    label: str = ""  # a conditional model's class ("": the trained classes in turn)
    frame: int = -1  # a diffusion model's reverse-process snapshot (-1: the last)


class Explorer:
    """A loaded run and the images of a view; the widgets call ``redraw``."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.family: ModelFamily | None = None
        self.loaded: Path | None = None
        self._frames: tuple[tuple, torch.Tensor] | None = None  # the last reverse process drawn, by its view

    def load(self, checkpoint: Path) -> ModelFamily:
        if checkpoint != self.loaded:
            self.family, _ = load_family(checkpoint)
            self.loaded, self._frames = checkpoint, None
            z = latent.sample_latents(PCA_SAMPLES, self.family.latent_dim, self.seed)
            projected, self.components, self.mean, _ = latent.pca(z, k=SLIDERS)
            self.spread = projected.std(0)  # (SLIDERS,)
            self.base = z[:GRID]  # the same latents in every view and checkpoint
        return self.family

    def labels(self, view: View, n: int) -> torch.Tensor | None:
        family = self.family
        if family.label is None:
            return None
        return family.labels_of(view.label, n) if view.label else family.default_labels(n)

    def grid(self, view: View) -> torch.Tensor:
        """The view's latents moved along the principal directions: (GRID, C, H, W)."""
        family = self.load(view.checkpoint)
        shift = sum(a * s * c for a, s, c in zip(view.offsets, self.spread, self.components))
        z = self.base + shift
        if family.gradual and view.frame >= 0:  # snapshot ``frame`` of the reverse process, drawn once per view
            key = (view.checkpoint, view.offsets, view.label)
            if self._frames is None or self._frames[0] != key:
                self._frames = key, family.reverse_process(z[:8], self.labels(view, 8), FRAMES)
            return self._frames[1][min(view.frame, FRAMES - 1)]
        return family.generate(z, self.labels(view, len(z)))

    def strip(self, view: View) -> torch.Tensor:
        """Images from seed ``seeds[0]``'s latent to ``seeds[1]``'s: (STRIP, C, H, W)."""
        family = self.load(view.checkpoint)
        z0, z1 = (latent.sample_latents(1, family.latent_dim, s)[0] for s in view.seeds)
        return latent.interpolate(lambda z: family.generate(z, self.labels(view, len(z))), z0, z1, STRIP, mode=view.mode)

    def redraw(self, view: View) -> tuple[bytes, bytes, float]:
        """PNGs of the grid and the interpolation strip, and the seconds they took."""
        start = time.perf_counter()
        grid, strip = png(self.grid(view), 8, scale=3), png(self.strip(view), STRIP, scale=3)
        return grid, strip, time.perf_counter() - start


def checkpoints(run: RunDir) -> dict[str, Path]:
    """A run's saved generators by label: each epoch snapshot, then the last."""
    found = {f"epoch {epoch_of(p)}": p for p in run.snapshots()}
    return found or {"last": run.last_checkpoint}


def widgets(*roots: str | Path):
    """The explorer's user interface (ipywidgets), over the trained runs under ``roots``."""
    import ipywidgets as w
    runs = trained_runs(*roots)
    if not runs:
        return w.HTML("No trained run found under " + ", ".join(map(str, roots))
                      + ": run the main job (make report) or notebook 02 first.")
    explorer = Explorer()
    run_box = w.Dropdown(options=[(str(r.root.relative_to(Path(roots[0]).parent) if r.root.is_relative_to(
        Path(roots[0]).parent) else r.root), r) for r in runs], description="run", layout=w.Layout(width="60%"))
    epoch_box = w.Dropdown(description="checkpoint")
    class_box = w.Dropdown(description="class")
    sliders = [w.FloatSlider(0.0, min=-3, max=3, step=0.25, description=f"PC{i + 1}", continuous_update=False)
               for i in range(SLIDERS)]
    seeds = [w.IntText(value=v, description=name, layout=w.Layout(width="160px")) for v, name in ((1, "from z"), (2, "to z"))]
    mode = w.ToggleButtons(options=["slerp", "linear"], description="path")
    frame = w.IntSlider(value=-1, min=-1, max=FRAMES - 1, description="reverse step", continuous_update=False)
    grid_image, strip_image = w.Image(format="png"), w.Image(format="png")
    status = w.HTML()

    def view() -> View:
        return View(run_box.value, epoch_box.value, tuple(s.value for s in sliders), (seeds[0].value, seeds[1].value),
                    mode.value, class_box.value or "", frame.value)

    def draw(_=None) -> None:
        if epoch_box.value is None:
            return
        grid_image.value, strip_image.value, seconds = explorer.redraw(view())
        status.value = (f"<small>{run_box.value.root.name}, {epoch_box.label}: drawn in {seconds:.2f} s; "
                        f"sliders move the same {GRID} latents along the principal directions of {PCA_SAMPLES} "
                        f"sampled ones (in their standard deviations)</small>")

    def pick_run(_=None) -> None:
        options = checkpoints(run_box.value)
        epoch_box.unobserve(draw, "value")
        epoch_box.options = list(options.items())
        epoch_box.value = list(options.values())[-1]
        epoch_box.observe(draw, "value")
        family = explorer.load(epoch_box.value)
        class_box.options = [("in turn", "")] + [(c, c) for c in family.trained_classes()]
        class_box.layout.display = "" if family.label is not None else "none"
        frame.layout.display = "" if family.gradual else "none"
        draw()

    run_box.observe(pick_run, "value")
    for control in (epoch_box, *sliders, *seeds, mode, class_box, frame):
        control.observe(draw, "value")
    pick_run()
    return w.VBox([run_box, w.HBox([epoch_box, class_box]), w.HBox(sliders), frame, grid_image,
                   w.HBox([*seeds, mode]), strip_image, status])
