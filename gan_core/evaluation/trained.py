"""Evaluators trained from a data set's own images: every data set without a labelled evaluator
(an image folder, Flowers102). A seeded tenth of the images is held out: the held-out figure,
and the real reference every score compares a generator's samples with (``own_reference``).

With labels (2 or more class subfolders, or Flowers102's targets) the evaluator is a classifier like the shipped ones
(``evaluator.Evaluator``), its held-out figure the accuracy on a held-out tenth. Without labels
(one folder) it is the same network trained self-supervised with SimCLR (Chen et al. 2020, "A
Simple Framework for Contrastive Learning of Visual Representations": two augmented views per
image -- random resized crops, flips, colour jitter -- and the NT-Xent loss); its held-out figure
is the top-1 positive-pair retrieval accuracy on held-out images, and the class-based scores are
left out. The network reads the data at its own size and channels (its pooling is adaptive;
above 48 px its first convolution has stride 2: ``evaluators.own_recipe``).

Cached under the evaluator cache, keyed by ``evaluators.fingerprint`` (the data's files) and the
recipe; computed once under the lock (``rundir.compute_once``); a truncated file is recomputed.
What identifies the data: ``gan_core.evaluators`` (no torch).
"""
from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from .. import evaluators
from ..config import class_index
from ..data import ImageData, load_data, targets
from ..models.checkpoint import to_bytes
from ..rundir import compute_once, write_json
from .evaluator import Evaluator, Reference

HELD_OUT = 0.1  # the share of images held out: the held-out figure, and the real reference of the scores
TEMPERATURE = 0.5  # NT-Xent's
BATCH = 256  # images decoded at a time


def own_data(config: Any) -> ImageData:
    """Every image of ``config``'s data set as its generator sees it (size, channels, centre
    crop), without flips, class filter or subset: what its evaluator is trained and scored on."""
    data = dataclasses.replace(config.data, subset=None, classes=None, hflip=False, vflip=False)
    return load_data(dataclasses.replace(config, data=data))


def split(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A data set's held-out tenth and the rest (indices), fixed by ``seed``."""
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    held = max(2, int(size * HELD_OUT))
    return order[:held], order[held:]


def decode(data: ImageData, indices: torch.Tensor) -> torch.Tensor:
    """The images (N, C, H, W) in [-1, 1] at ``indices`` of a streamed data set, in that order."""
    loader = DataLoader(Subset(data.dataset, indices.tolist()), batch_size=BATCH, num_workers=data.workers)
    return torch.cat([images for images, _ in loader])


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
    """Train the evaluator of ``recipe`` on the data's images but its held-out tenth; its weights
    and held-out figure."""
    start = time.perf_counter()
    data = own_data(config)
    classes = list(data.classes) if recipe["labelled"] else ["all"]
    test, train = split(len(data), recipe["seed"])
    if recipe["subset"]:
        train = train[:recipe["subset"]]
    labels = targets(data) if recipe["labelled"] else torch.zeros(len(data), dtype=torch.long)
    log(f"training the {recipe['method']} evaluator of {config.data.root or config.data.name} on {len(train):,} "
        f"images at {recipe['size']} px, {recipe['epochs']} epochs (once; cached)")
    # channels_last: 1.3x faster per training step on a CPU (measured, AVX2, 64 and 128 px)
    x = decode(data, train).contiguous(memory_format=torch.channels_last)
    y, x_test, y_test = labels[train], decode(data, test), labels[test]
    train = torch.arange(len(x))
    torch.manual_seed(recipe["seed"])
    model = Evaluator(recipe["channels"], len(classes), recipe["stride"]).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    gen = torch.Generator().manual_seed(recipe["seed"])
    bs = min(recipe["batch_size"], len(train))
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
            figure = float((model(x_test).argmax(1) == y_test).float().mean())
        else:
            figure = retrieval_accuracy(model, x_test)
    what = "held-out accuracy" if recipe["labelled"] else "held-out top-1 positive-pair retrieval"
    log(f"evaluator {what} {figure:.1%} ({time.perf_counter() - start:.0f} s)")
    return {"weights": model.state_dict(), "channels": recipe["channels"], "classes": classes,
            "held_out": figure, "held_out_name": what, "recipe": recipe}


def trained_path(config: Any, recipe: dict[str, Any]) -> Path:
    return evaluators.cache_folder(config) / f"{recipe['data']}-{recipe['method']}-{evaluators.recipe_hash(recipe)}.pt"


def load_trained(config: Any, log: Callable[[str], None] = print, **how: Any) -> tuple[Evaluator, dict[str, Any]]:
    """The evaluator trained from ``config``'s own images (``evaluators.own_recipe``; ``how``
    overrides its epochs, subset or batch_size), cached, and what identifies it
    (``evaluators.identity``: ``version``, ``id``, ``source``) with its ``held_out`` figure and
    ``held_out_name``, ``classes``, ``labelled`` and ``recipe``."""
    recipe = {**evaluators.own_recipe(config), **how}
    key = evaluators.recipe_hash(recipe)

    def load(data: bytes) -> dict[str, Any] | None:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        return state if state.get("recipe_hash") == key else None

    state = compute_once(trained_path(config, recipe), lambda: {**train_trained(config, recipe, log), "recipe_hash": key},
                         to_bytes, load, log)
    model = Evaluator(state["channels"], len(state["classes"]), recipe["stride"])
    model.load_state_dict(state["weights"])
    info = evaluators.identity(config)
    if how:  # not the config's own recipe: named by its own hash
        info = {**info, "version": f"{recipe['data']}-trained-v{recipe['version']} ({key[:8]})",
                "id": f"{recipe['data']}-trained-{key}"}
    else:  # what pages name beside the evaluator (evaluators.described)
        write_json(evaluators.info_file(config, info["id"]), {"held_out": state["held_out"], "held_out_name": state["held_out_name"]})
    return model.fuse(), {**info, "held_out": state["held_out"], "held_out_name": state["held_out_name"],
                          "classes": state["classes"], "recipe": recipe, "labelled": recipe["labelled"]}


def own_reference(config: Any, log: Callable[[str], None] = print) -> Reference:
    """The real side of scores on data without a labelled evaluator: the evaluator trained from
    its images, its held-out tenth (of ``data.classes``, if set) as the real reference, and a
    fixed random subset of the rest for the floor."""
    model, info = load_trained(config, log)
    data = own_data(config)
    held, rest = split(len(data), info["recipe"]["seed"])
    labels = targets(data)
    if config.data.classes is not None:
        ids = torch.tensor([class_index(c, data.classes, f"data.classes of {config.data.name}")
                            for c in config.data.classes])
        held, rest = held[torch.isin(labels[held], ids)], rest[torch.isin(labels[rest], ids)]
    shuffled = rest[torch.randperm(len(rest), generator=torch.Generator().manual_seed(1))]
    return Reference(model, info, labels[held], info["classes"] if info["labelled"] else None,
                     lambda: decode(data, held), lambda n: decode(data, shuffled[:n].sort().values), len(rest))
