"""The presets in params/: every config and sweep validates, and each sweep's quick version runs
end to end (one run per preset through all the notebooks, on small real data)."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.io import savemat

from gan_core import config as config_lib
from gan_core.config import ConfigError, from_dict
from gan_core.data import load_data
from gan_core.orchestration.runner import run_sweep
from gan_core.orchestration.sweep import load_sweep

from .conftest import REPO
from .images import shape

SWEEPS = sorted((REPO / "params" / "sweeps").glob("*.yaml"))
PRESETS = {  # sweep -> the run of its quick version to execute
    "dcgan64_flowers": "bs16-z50-s0", "dcgan64_latent": "z10-s0", "loss_comparison": "mlp1024-s0",
    "mlp_fashion": "eps-wd-s0", "conditional": "cond-z100-ep3-s0", "imagefolder128": "ttur",
    "ddpm_fashion": "base-cond", "gan_vs_ddpm": "ddpm-s0"}
SEEDED = {"dcgan64_latent", "loss_comparison", "mlp_fashion", "gan_vs_ddpm", "conditional", "dcgan64_flowers"}


@pytest.mark.parametrize("path", sorted((REPO / "params").glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_validates(path):
    config_lib.load(path)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_every_sweep_validates(path):
    sweep = load_sweep(path)
    for run in sweep.runs:  # each run's config carries its overrides
        resolved = config_lib.flatten(run.config.to_dict())
        assert all(resolved[k] == v for k, v in run.overrides.items()), run.name
    if path.stem in PRESETS:
        quick = load_sweep(path, quick=True)
        if path.stem in SEEDED:
            seeds = {r.configuration: set() for r in quick.runs}
            for r in quick.runs:
                seeds[r.configuration].add(r.seed)
            assert all(len(s) >= 2 for s in seeds.values())
        assert quick.name == f"{path.stem}-quick" and PRESETS[path.stem] in [r.name for r in quick.runs]
        full = {r.name: r.config for r in sweep.runs}
        assert all(r.config.train.epochs <= full.get(r.name, r.config).train.epochs for r in quick.runs)
        assert len({r.config.hash() for r in quick.runs}) == len(quick.runs)  # no run repeats another
        assert all(r.config.train.epochs <= 6 for r in quick.runs)


def test_quick_section_joins_set_variants_and_grid(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("train: {epochs: 50}\n")
    path = tmp_path / "s.yaml"
    path.write_text("base: base.yaml\nvariants: {a: {}, b: {train.epochs: 90}}\n"
                    "grid: {model.latent_dim: [64, 100, 200], train.batch_size: [32, 64]}\n"
                    "quick: {grid: {model.latent_dim: [100]}, set: {train.epochs: 1}, variants: {b: {train.epochs: 2}}}\n")
    quick = load_sweep(path, quick=True, overrides={"train.seed": 3})
    assert [r.name for r in quick.runs] == ["a-z100-bs32", "a-z100-bs64", "b-z100-bs32", "b-z100-bs64"]
    assert [(r.config.train.epochs, r.config.train.seed) for r in quick.runs] == [(1, 3), (1, 3), (2, 3), (2, 3)]
    assert [r.config.train.epochs for r in load_sweep(path).runs] == [50] * 6 + [90] * 6
    with pytest.raises(ConfigError, match=r"with --set train.epochs: train.epochs must be > 0"):
        load_sweep(path, overrides={"train.epochs": -1})
    for quick_section, message in (("{grid: {train.epochs: [1]}}", "quick.grid.train.epochs is not an axis"),
                                   ("{variants: {c: {}}}", "quick.variants.c is not a variant"),
                                   ("{seed: 1}", "unknown key quick.seed")):
        path.write_text(f"base: base.yaml\ngrid: {{model.latent_dim: [64]}}\nquick: {quick_section}\n")
        with pytest.raises(ConfigError, match=message):
            load_sweep(path, quick=True)
    path.write_text("base: base.yaml\ngrid: {model.latent_dim: [64]}\n")
    with pytest.raises(ConfigError, match="--quick needs a 'quick:' section"):
        load_sweep(path, quick=True)


# --- the quick versions, end to end ---------------------------------------------------------------
STAND_IN = 600  # images of each stand-in set: enough for an evaluator of their own (evaluators.OWN_MIN_IMAGES)


def write_jpgs(folder, images, names):
    folder.mkdir(parents=True, exist_ok=True)
    for image, name in zip(images, names):
        image.resize((80, 64)).save(folder / name)  # RGB, not square


@pytest.fixture(scope="module")
def image_roots(tmp_path_factory):
    """Stand-in RGB sets in Flowers102's layout and in an image folder: 600 images of 3 classes
    (tests/images.py: distinct shapes and colours), each scored by an evaluator of its own."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    labels = np.arange(STAND_IN) % 3
    images = [shape(int(k), 64, rng) for k in labels]
    write_jpgs(root / "flowers" / "flowers-102" / "jpg", images, [f"image_{i:05d}.jpg" for i in range(1, STAND_IN + 1)])
    savemat(root / "flowers" / "flowers-102" / "imagelabels.mat", {"labels": labels + 1})
    savemat(root / "flowers" / "flowers-102" / "setid.mat", {"trnid": np.arange(1, 9), "valid": np.arange(9, 17),
                                                             "tstid": np.arange(1, STAND_IN + 1)})
    for k in range(3):
        write_jpgs(root / "folder" / f"class_{k}", [im for im, c in zip(images, labels) if c == k],
                   [f"{i}.jpg" for i in range(STAND_IN)])
    return {"flowers102": root / "flowers", "imagefolder": root / "folder"}


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_quick_preset_runs_end_to_end(name, image_roots, tmp_path_factory):
    """The quick version, with test-sized data, fewer samples and sampling steps and a cheaper
    evaluator; nothing else changed."""
    cache = tmp_path_factory.getbasetemp() / "evaluators"  # shared by the presets of this session
    path = REPO / "params" / "sweeps" / f"{name}.yaml"
    probe = load_sweep(path, quick=True).runs[0].config.data
    overrides = {"eval.cache_dir": str(cache), "eval.samples": 300, "eval.checkpoint_samples": 100, "diffusion.sample_steps": 10,
                 "train.threads": 1}  # two test workers share 2 cores: more threads spin
    if probe.name in image_roots:
        overrides.update({"data.root": str(image_roots[probe.name]), "data.subset": None})  # all 600
    else:
        overrides["data.subset"] = 1024
    sweep = load_sweep(path, quick=True, overrides=overrides)
    out = tmp_path_factory.mktemp("reports")
    assert run_sweep(sweep, out, only=PRESETS[name], log=lambda s: None) == 0
    run = out / f"{name}-quick" / PRESETS[name]
    assert sorted(p.name for p in run.glob("*.html")) == [
        "01_architecture.html", "02_training.html", "03_loss_analysis.html", "04_latent_pca.html",
        "05_sample_gallery.html", "06_evaluation.html"]
    metrics = json.loads((run / "metrics.json").read_text())
    executed = next(r for r in sweep.runs if r.name == PRESETS[name])  # its variant may train longer
    assert metrics["training"]["epochs"] == executed.config.train.epochs
    assert (out / f"{name}-quick" / "index.html").exists()
    if name in ("conditional", "ddpm_fashion"):
        assert 0 <= metrics["evaluation"]["final"]["conditional_accuracy"] <= 1
        gallery = json.loads((run / "05_sample_gallery.ipynb").read_text())
        cell = next(c for c in gallery["cells"] if "samples_per_class" in "".join(c["source"]))
        shown = [o for o in cell["outputs"] if "image/png" in o.get("data", {})]
        assert len(shown) == 2  # per class, and the first trained class
    if probe.name in image_roots:  # scored by the evaluator trained from the stand-in's own images
        evaluation = metrics["evaluation"]
        assert evaluation["available"] and evaluation["evaluator"]["labelled"], evaluation.get("reason")
        assert evaluation["final"]["classes_in_data"] == 3 and evaluation["final"]["real_samples"] == 60
        assert evaluation["floor"]["fd"] < evaluation["final"]["fd"]
        page = (run / "06_evaluation.html").read_text()
        assert "Scores beside the floor" in page and f"{probe.name}-trained-v" in page and "held-out accuracy" in page
        if name == "dcgan64_flowers":  # its FD claims are answered (with one configuration run: too few seeds)
            answers = pd.read_csv(out / f"{name}-quick" / "claims.csv")
            fd = answers[answers["score"] == "fd"]
            assert len(fd) == 2 and not fd["unmeasured"].any(), answers
            assert not fd["verdict"].str.startswith("not answerable").any()


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(path):
    """A notebook saved from JupyterLab after a run must be cleared before it is committed
    (Kernel > Restart Kernel and Clear Outputs): reports come from runs, not from the repository."""
    import nbformat
    notebook = nbformat.read(path, as_version=4)
    dirty = [i for i, cell in enumerate(notebook.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs or execution counts"
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assert all(": " in line.split("=")[0] for line in parameters.source.splitlines() if "=" in line), \
        "parameters carry type hints (papermill --help-notebook shows them)"


def test_the_package_lists_every_subpackage():
    """pip install . (not editable) installs the packages pyproject.toml names: a new folder of
    gan_core that is not listed would be missing there (an editable install hides it)."""
    import tomllib
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "gan_core").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
