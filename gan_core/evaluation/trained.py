"""Evaluators trained from a user's own images (issue 33): any data set without a shipped one.

With labels (2 or more class subfolders) the evaluator is a classifier like the shipped ones
(``evaluator.Evaluator``), its held-out figure the accuracy on a held-out tenth. Without labels
(one folder) it is the same network trained self-supervised with SimCLR (Chen et al. 2020, "A
Simple Framework for Contrastive Learning of Visual Representations": two augmented views per
image -- random resized crops, flips, colour jitter -- and the NT-Xent loss); its held-out figure
is the top-1 positive-pair retrieval accuracy on held-out images, and the class-based scores are
left out. The network reads the data at its own size and channels (its pooling is adaptive).

Cached under the evaluator cache, keyed by ``evaluators.fingerprint`` (the data's files) and the
recipe; computed once under the lock (``rundir.compute_once``); a truncated file is recomputed.
What identifies the data: ``gan_core.evaluators`` (no torch).
"""
from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .. import evaluators
from ..models.checkpoint import to_bytes
from ..rundir import compute_once
from .evaluator import Evaluator

HELD_OUT = 0.1  # the share of images held out for the held-out figure
TEMPERATURE = 0.5  # NT-Xent's


def trained_recipe(config: Any, epochs: int = 2, subset: int | None = None, batch_size: int = 128) -> dict[str, Any]:
    """Everything a trained evaluator's weights depend on, the data's fingerprint included."""
    channels = getattr(config.data, "channels", None) or 3
    labelled = evaluators.labelled(config)  # walks the folder: once
    return {"version": evaluators.TRAINED_VERSION, "data": config.data.name,
            "fingerprint": evaluators.fingerprint(config), "labelled": labelled,
            "size": config.data.image_size, "channels": channels, "epochs": epochs, "subset": subset,
            "batch_size": batch_size, "lr": 1e-3, "seed": 0, "method": "classifier" if labelled else "simclr"}


def folder_images(config: Any, size: int, channels: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """An image folder's images (N, C, size, size) in [-1, 1], their class ids and class names."""
    from PIL import Image
    root, files = evaluators.data_files(config)
    classes = evaluators.folder_classes(config) or ["all"]
    index = {c: i for i, c in enumerate(classes)}
    images, labels = [], []
    for path in files:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB").resize((size, size), Image.BILINEAR)
            images.append(np.asarray(img, dtype=np.uint8).reshape(size, size, channels))
        parts = path.relative_to(root).parts
        labels.append(index.get(parts[0], 0) if len(parts) > 1 else 0)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    return x, torch.tensor(labels), classes


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """SimCLR's views: a random resized crop (8-100 % of the area), a horizontal flip, colour jitter."""
    n, c, s, _ = x.shape
    out = torch.empty_like(x)
    area = torch.empty(n).uniform_(0.08, 1.0, generator=gen)
    for i in range(n):
        side = max(2, int(s * float(area[i]) ** 0.5))
        top, left = (torch.randint(0, s - side + 1, (2,), generator=gen)).tolist()
        crop = x[i:i + 1, :, top:top + side, left:left + side]
        out[i] = F.interpolate(crop, size=(s, s), mode="bilinear", align_corners=False)[0]
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    bright = torch.empty(n, 1, 1, 1).uniform_(-0.4, 0.4, generator=gen)
    contrast = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4, generator=gen)
    mean = out.mean((1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean + bright
    if c == 3:
        sat = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4, generator=gen)
        grey = out.mean(1, keepdim=True)
        out = (out - grey) * sat + grey
    return out.clamp(-1, 1)


def nt_xent(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SimCLR's normalized temperature-scaled cross entropy over the 2N views of N pairs."""
    sim, target = _pair_similarity(a, b)
    return F.cross_entropy(sim / TEMPERATURE, target)


def _pair_similarity(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The cosine similarities of the 2N views of N pairs (a view against itself excluded), and
    the index of each view's pair."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(float("-inf"))
    n = len(a)
    return sim, torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])


@torch.no_grad()
def retrieval_accuracy(model: Evaluator, x: torch.Tensor, seed: int = 1) -> float:
    """Held-out top-1 positive-pair retrieval: the share of views whose nearest other view is its pair."""
    gen = torch.Generator().manual_seed(seed)
    sim, target = _pair_similarity(model.features(augment(x, gen)), model.features(augment(x, gen)))
    return float((sim.argmax(1) == target).float().mean())


def train_trained(config: Any, recipe: dict[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the evaluator of ``recipe`` on the folder; its weights and held-out figure."""
    start = time.perf_counter()
    x, y, classes = folder_images(config, recipe["size"], recipe["channels"])
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(recipe["seed"]))
    held = max(2, int(len(x) * HELD_OUT))
    test, train = order[:held], order[held:]
    if recipe["subset"]:
        train = train[:recipe["subset"]]
    torch.manual_seed(recipe["seed"])
    model = Evaluator(recipe["channels"], len(classes))
    opt = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    gen = torch.Generator().manual_seed(recipe["seed"])
    bs = min(recipe["batch_size"], len(train))
    log(f"training the {recipe['method']} evaluator of {config.data.root} on {len(train)} images at "
        f"{recipe['size']} px, {recipe['epochs']} epochs (once; cached)")
    for _ in range(recipe["epochs"]):
        model.train()
        perm = train[torch.randperm(len(train), generator=gen)]
        for i in range(0, len(perm) - bs + 1, bs):
            batch = perm[i:i + bs]
            if recipe["labelled"]:
                loss = F.cross_entropy(model(x[batch]), y[batch])
            else:
                loss = nt_xent(model.features(augment(x[batch], gen)), model.features(augment(x[batch], gen)))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        if recipe["labelled"]:
            figure = float((model(x[test]).argmax(1) == y[test]).float().mean())
        else:
            figure = retrieval_accuracy(model, x[test])
    what = "held-out accuracy" if recipe["labelled"] else "held-out top-1 positive-pair retrieval"
    log(f"evaluator {what} {figure:.1%} ({time.perf_counter() - start:.0f} s)")
    return {"weights": model.state_dict(), "channels": recipe["channels"], "classes": classes,
            "held_out": figure, "held_out_name": what, "recipe": recipe}


def trained_path(config: Any, recipe: dict[str, Any]) -> Path:
    return evaluators.cache_folder(config) / f"{recipe['data']}-{recipe['method']}-{evaluators.recipe_hash(recipe)}.pt"


def load_trained(config: Any, log: Callable[[str], None] = print, **how: Any) -> tuple[Evaluator, dict[str, Any]]:
    """The evaluator trained from ``config``'s own data (``how``: epochs, subset, batch_size), cached,
    and what identifies it: ``version``, ``source`` (trained on what, with or without labels, held-out figure)."""
    recipe = trained_recipe(config, **how)
    key = evaluators.recipe_hash(recipe)

    def load(data: bytes) -> dict[str, Any] | None:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        return state if state.get("recipe_hash") == key else None

    state = compute_once(trained_path(config, recipe), lambda: {**train_trained(config, recipe, log), "recipe_hash": key},
                         to_bytes, load, log)
    model = Evaluator(state["channels"], len(state["classes"]))
    model.load_state_dict(state["weights"])
    labels = "with labels" if recipe["labelled"] else "without labels (SimCLR, Chen et al. 2020)"
    version = f"{recipe['data']}-trained-v{recipe['version']} ({key[:8]})"
    source = (f"trained on {config.data.root} ({recipe['fingerprint'][:8]}), {labels}; "
              f"{state['held_out_name']} {state['held_out']:.1%}")
    return model.fuse(), {"version": version, "id": f"{recipe['data']}-trained-{key}", "source": source,
                          "held_out": state["held_out"], "classes": state["classes"], "recipe": recipe,
                          "labelled": recipe["labelled"]}
