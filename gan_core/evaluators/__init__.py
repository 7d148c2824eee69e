"""Which evaluator scores a config, and what identifies it, without torch: the evaluators that
ship with the package (this folder: ``<data>-v<version>.pt`` and ``manifest.json`` with their
sha256 and test accuracy, made by ``scripts/train_evaluators.py``), the recipes of those trained
here for a labelled set (``SIZES``), and those trained from any other data's own images (an
image folder, Flowers102: ``own``; the network and its training: ``gan_core.evaluation.trained``).
The network itself and the labelled training live in ``gan_core.evaluation.evaluator``.

A page names its evaluator by ``identity(config)["version"]``, e.g. ``fashion-mnist-v3
(1a2b3c4d)``: two pages with the same version scored with the same weights.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).resolve().parent
VERSION = 3  # bump when the network or its training changes: scores of older versions no longer compare
# bump when the features of the test split, the floor's scores or the k-NN radii change: cached ones are
# then recomputed (2: BatchNorm folded into the convolutions, features equal to about 1e-6)
REFERENCE_VERSION = 2
# the data sets with a labelled evaluator, and the image size it reads
SIZES = {"fashion-mnist": 28, "mnist": 28, "digits": 28, "cifar10": 32}
# the data sets whose evaluator ships with the package, and the epochs it was trained for
SHIPPED = {"fashion-mnist": 3, "digits": 40}
COVERED_SHARE = 0.01  # a class counts as covered when at least 1 % of the samples fall in it (or half its data share)
# every score a run's evaluation reports, by key, with its name in reports
SCORES = {"fd": "FD", "kid": "KID", "kid_std": "KID std", "precision": "precision", "recall": "recall",
          "density": "density", "coverage": "coverage", "classes_covered": "classes covered",
          "class_kl": "class KL (nats)", "conditional_accuracy": "conditional accuracy"}
KID_NO_SPREAD = 1e-9  # a kid_std below this: every KID subset held all the samples (the rest is rounding)
DISPLAY_NAMES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "digits": "digits", "cifar10": "CIFAR-10",
                 "flowers102": "Flowers102", "imagefolder": "image folder"}


class EvaluatorError(ValueError):
    """A shipped evaluator that is asked for where none ships, or whose file is damaged."""


def uses_shipped(config: Any) -> bool:
    """Whether ``config`` (a gan_core Config) is scored with the evaluator shipped for its data.

    Raises:
        EvaluatorError: ``eval.evaluator: shipped`` for a data set without one.
    """
    if config.eval.evaluator == "shipped" and config.data.name not in SHIPPED:
        raise EvaluatorError(f"eval.evaluator: shipped: no evaluator ships for {config.data.name} (only for "
                             f"{', '.join(SHIPPED)}); use eval.evaluator: train")
    return config.eval.evaluator != "train" and config.data.name in SHIPPED


def recipe(config: Any) -> dict[str, Any]:
    """Everything the evaluator's weights depend on: the shipped one's, or one trained here."""
    name = config.data.name
    if own(config):
        return own_recipe(config)
    if uses_shipped(config):
        return shipped_recipe(name)
    return {"version": VERSION, "data": name, "root": config.data.root, "size": SIZES[name],
            "epochs": config.eval.evaluator_epochs or 3, "subset": config.eval.evaluator_subset, "batch_size": 128,
            "lr": 1e-3, "seed": 0, **({"fingerprint": fingerprint(config)} if name in TORCHVISION_FOLDERS else {})}


def shipped_recipe(name: str) -> dict[str, Any]:
    """The recipe of the evaluator shipped for data set ``name``."""
    return {"version": VERSION, "data": name, "root": None, "size": SIZES[name], "epochs": SHIPPED[name],
            "subset": None, "batch_size": 128, "lr": 1e-3, "seed": 0}


def recipe_hash(value: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def shipped_file(name: str) -> Path:
    return FOLDER / f"{name}-v{VERSION}.pt"


def identity(config: Any) -> dict[str, str]:
    """What identifies the evaluator of ``config``: ``version`` (for pages), ``id`` (names the
    caches of its features and floors) and ``source`` (in words).

    Raises:
        EvaluatorError: a shipped file that is missing or does not match its manifest.
    """
    name = config.data.name
    if own(config):
        r = own_recipe(config)
        key = recipe_hash(r)
        labels = ("without labels (SimCLR, Chen et al. 2020)" if not r["labelled"] else
                  f"with labels ({r['classes']} class folders)" if r["classes"] else "with its labels")
        return {"version": f"{name}-trained-v{TRAINED_VERSION} ({key[:8]})", "id": f"{name}-trained-{key}",
                "source": f"trained on this machine from {_shown_root(config)} (data {r['fingerprint'][:8]}), {labels}, "
                          f"{r['epochs']} epochs at {r['size']} px"}
    if not uses_shipped(config):
        r = recipe(config)
        key = recipe_hash(r)
        how = f"{r['epochs']} epochs" + (f" on {r['subset']:,} images" if r["subset"] else "")
        return {"version": f"{name}-trained-{key}", "id": f"{name}-trained-{key}",
                "source": f"trained on this machine ({how}; another machine trains other weights)"}
    digest = shipped_digest(name)
    return {"version": f"{name}-v{VERSION} ({digest[:8]})", "id": f"{name}-v{VERSION}-{digest[:12]}",
            "source": "shipped with gan_core: the same weights on every machine"}


def described(config: Any) -> str:
    """The evaluator that scores ``config``'s samples, as every page names it."""
    try:
        if reason := unscored(config):
            return f"none ({reason})"
        found = identity(config)
    except EvaluatorError as err:
        return f"unavailable: {err}"
    held = held_out(config, found["id"])
    return f"{found['version']}, {found['source']}" + (f"; {held[1]} {held[0]:.1%}" if held else "")


def held_out(config: Any, evaluator_id: str) -> tuple[float, str] | None:
    """The held-out figure of ``config``'s evaluator and its name (``(0.91, "test accuracy")``),
    once it exists: from the manifest for a shipped one, else from the file written beside a
    trained one (``info_file``); None before it is trained."""
    if uses_shipped(config):
        entry = json.loads((FOLDER / "manifest.json").read_text()).get(shipped_file(config.data.name).name, {})
        return (entry["test_accuracy"], "test accuracy") if "test_accuracy" in entry else None
    path = info_file(config, evaluator_id)
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
        return info["held_out"], info["held_out_name"]
    except (ValueError, KeyError):
        return None


def info_file(config: Any, evaluator_id: str) -> Path:
    """Where a trained evaluator's held-out figure is written, beside its weights (``evaluator_id``:
    ``identity(config)["id"]``)."""
    return cache_folder(config) / f"{evaluator_id}.info.json"


def cache_folder(config: Any) -> Path:
    """The folder of trained evaluators and of every evaluator's cached test features, their
    k-NN radii and floors."""
    return Path(config.eval.cache_dir).expanduser() / "evaluators"


def reference_stamp(config: Any) -> tuple[Path, dict[str, Any]]:
    """The file that says ``config``'s real side is cached (its evaluator, the test features,
    their k-NN radii and the floor at the sample counts of its evaluation and its quality
    curve: ``gan_core.evaluation.run.prepare_reference``), and the key it holds.

    Raises:
        EvaluatorError: as ``identity``.
    """
    e = config.eval
    key = {"evaluator": identity(config)["id"], "classes": config.data.classes, "samples": e.samples,
           "checkpoint_samples": e.checkpoint_samples, "nearest_k": e.nearest_k, "kid_subset": e.kid_subset,
           "version": REFERENCE_VERSION}
    return cache_folder(config) / f"{key['evaluator']}.reference-{recipe_hash(key)}.json", key


def shipped_digest(name: str) -> str:
    """The sha256 of the shipped evaluator of ``name``, checked against the manifest.

    Raises:
        EvaluatorError: the file is missing or does not match.
    """
    path = shipped_file(name)
    manifest = FOLDER / "manifest.json"
    entry = json.loads(manifest.read_text()).get(path.name) if manifest.exists() else None
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""
    if not entry or entry["sha256"] != digest:
        raise EvaluatorError(f"{path}: the shipped evaluator is missing or does not match its manifest; reinstall "
                             "gan_core, or make it with scripts/train_evaluators.py")
    return digest


# ---- evaluators trained from a data set's own images (issue 33): what identifies the data, torch-free ----
# bump when the trained evaluators' recipe changes: their caches are then retrained (2: stride 2 above 48 px)
TRAINED_VERSION = 2
# above this size the trained evaluator's first convolution has stride 2: a quarter of the work
# (measured on an AVX2 CPU: 3.8x faster per training step at 64 px, 4.8x at 128 px; features 4.3x)
STRIDE_ABOVE = 48
OWN_EPOCHS = 2  # epochs of an evaluator trained from a data set's own images, unless eval.evaluator_epochs
# the fewest images an evaluator is trained from: a tenth is held out as the real reference of the
# scores, and fewer than 50 real images give no usable FD or k-NN manifold
OWN_MIN_IMAGES = 500
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
# where a torchvision set keeps its files under data.root
TORCHVISION_FOLDERS = {"mnist": "MNIST", "cifar10": "cifar-10-batches-py", "flowers102": "flowers-102"}


def _root(config: Any) -> Path:
    from ..paths import REPO  # torch-free; the same resolution as gan_core.data.data_root
    path = Path(config.data.root or "data").expanduser()
    return path if path.is_absolute() else REPO / path


def data_files(config: Any) -> tuple[Path, list[Path]]:
    """The folder and the files a trained evaluator of ``config``'s data depends on: an image
    folder's images, or a torchvision set's files under ``data.root``."""
    root = _root(config)
    name = config.data.name
    if name == "imagefolder":
        files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        folder = root / TORCHVISION_FOLDERS.get(name, "")
        files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    return root, sorted(files)


def fingerprint(config: Any, found: tuple[Path, list[Path]] | None = None) -> str:
    """A digest of ``config``'s training data (each file's relative name, size and mtime) and of
    the trained recipe's version: a changed folder gets a new evaluator, an unchanged one the cached one.
    ``found``: ``data_files(config)``, when the caller has walked the folder already.

    Raises:
        EvaluatorError: no files were found.
    """
    root, files = found or data_files(config)
    if not files:
        raise EvaluatorError(f"no {config.data.name} files under data.root = {str(root)!r} to train an evaluator on")
    digest = hashlib.sha256(f"{config.data.name} v{TRAINED_VERSION}\n".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def folder_classes(config: Any, found: tuple[Path, list[Path]] | None = None) -> list[str]:
    """An image folder's class subfolders that hold images (as torchvision's ImageFolder reads
    them); ``found`` as for ``fingerprint``."""
    root, files = found or data_files(config)
    return sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})


def own(config: Any) -> bool:
    """Whether ``config``'s data is scored by an evaluator trained from its own images
    (``gan_core.evaluation.trained``): every data set without a labelled one (``SIZES``), at
    its own size and channels."""
    return config.data.name not in SIZES


def unscored(config: Any) -> str | None:
    """Why ``config``'s runs get pixel statistics instead of scores, or None when they are scored."""
    if not own(config):
        return None
    root, files = data_files(config)
    if len(files) < OWN_MIN_IMAGES:
        return (f"{len(files)} images under data.root = {str(root)!r}: an evaluator is trained from "
                f"{OWN_MIN_IMAGES} or more (a tenth of them held out as the real reference)")
    return None


def own_recipe(config: Any) -> dict[str, Any]:
    """Everything the weights of an evaluator trained from ``config``'s own images depend on, the
    data's fingerprint included; the real reference is its held-out tenth, the image as the
    generator sees it (size, channels, centre crop; no flips).

    Raises:
        EvaluatorError: no images were found.
    """
    c = config.data
    found = data_files(config)  # one walk of the folder for both
    classes = len(folder_classes(config, found)) if c.name == "imagefolder" else None  # else a torchvision set's targets
    is_labelled = classes is None or classes >= 2
    return {"version": TRAINED_VERSION, "data": c.name, "fingerprint": fingerprint(config, found),
            "labelled": is_labelled, "classes": classes, "split": c.split, "size": c.image_size,
            "channels": c.channels or 3, "center_crop": c.center_crop, "stride": 2 if c.image_size > STRIDE_ABOVE else 1,
            "epochs": config.eval.evaluator_epochs or OWN_EPOCHS, "subset": config.eval.evaluator_subset,
            "batch_size": 128, "lr": 1e-3, "seed": 0, "method": "classifier" if is_labelled else "simclr"}


def _shown_root(config: Any) -> str:
    """data.root as a page shows it: as written in the config (no machine path it did not name)."""
    return config.data.root or "data"
