"""Which evaluator scores a config, and what identifies it, without torch: the evaluators that
ship with the package (this folder: ``<data>-v<version>.pt`` and ``manifest.json`` with their
sha256 and test accuracy, made by ``scripts/train_evaluators.py``) and the recipes of those
trained here. The network itself and its training live in ``gan_core.evaluation.evaluator``.

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
COVERED_SHARE = 0.01  # a class counts as covered when at least 1 % of the samples fall in it
# every score a run's evaluation reports, by key, with its name in reports
SCORES = {"fd": "FD", "kid": "KID", "kid_std": "KID std", "precision": "precision", "recall": "recall",
          "density": "density", "coverage": "coverage", "classes_covered": "classes covered",
          "class_kl": "class KL (nats)", "conditional_accuracy": "conditional accuracy"}
KID_NO_SPREAD = 1e-9  # a kid_std below this: every KID subset held all the samples (the rest is rounding)
DISPLAY_NAMES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "digits": "digits", "cifar10": "CIFAR-10"}


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
    if name not in SIZES:
        raise EvaluatorError(f"no evaluator for {name}: scores need a labelled data set ({', '.join(SIZES)})")
    if uses_shipped(config):
        return shipped_recipe(name)
    return {"version": VERSION, "data": name, "root": config.data.root, "size": SIZES[name],
            "epochs": config.eval.evaluator_epochs, "subset": config.eval.evaluator_subset, "batch_size": 128,
            "lr": 1e-3, "seed": 0}


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
    if not uses_shipped(config):
        key = recipe_hash(recipe(config))
        r = recipe(config)
        how = f"{r['epochs']} epochs" + (f" on {r['subset']:,} images" if r["subset"] else "")
        return {"version": f"{name}-trained-{key}", "id": f"{name}-trained-{key}",
                "source": f"trained on this machine ({how}; another machine trains other weights)"}
    digest = shipped_digest(name)
    return {"version": f"{name}-v{VERSION} ({digest[:8]})", "id": f"{name}-v{VERSION}-{digest[:12]}",
            "source": "shipped with gan_core: the same weights on every machine"}


def described(config: Any) -> str:
    """The evaluator that scores ``config``'s samples, as every page names it."""
    if config.data.name not in SIZES:
        return f"none ({config.data.name} has no labelled evaluator)"
    try:
        found = identity(config)
    except EvaluatorError as err:
        return f"unavailable: {err}"
    return f"{found['version']}, {found['source']}"


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


# ---- evaluators trained from a user's own data (issue 33): what identifies the data, torch-free ----
TRAINED_VERSION = 1  # bump when the trained evaluators' recipe changes: their caches are then retrained
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


def fingerprint(config: Any) -> str:
    """A digest of ``config``'s training data (each file's relative name, size and mtime) and of
    the trained recipe's version: a changed folder gets a new evaluator, an unchanged one the cached one.

    Raises:
        EvaluatorError: no files were found.
    """
    root, files = data_files(config)
    if not files:
        raise EvaluatorError(f"no {config.data.name} files under data.root = {str(root)!r} to train an evaluator on")
    digest = hashlib.sha256(f"{config.data.name} v{TRAINED_VERSION}\n".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def folder_classes(config: Any) -> list[str]:
    """An image folder's class subfolders that hold images (as torchvision's ImageFolder reads them)."""
    root, files = data_files(config)
    return sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})


def labelled(config: Any) -> bool:
    """Whether a trained evaluator of ``config``'s data is a classifier (2 or more class subfolders, or
    a torchvision set's targets) rather than a self-supervised feature network (one folder)."""
    if config.data.name != "imagefolder":
        return True
    return len(folder_classes(config)) >= 2
