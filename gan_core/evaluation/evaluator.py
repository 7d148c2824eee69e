"""The evaluator: a small classifier per labelled data set whose features the scores use.

Inception-v3 weights cannot be downloaded here, so each labelled data set gets its own small
classifier. For the data sets available offline (Fashion-MNIST, digits) one versioned network
ships with the package (``gan_core/evaluators/``, made by ``scripts/train_evaluators.py`` from
a fixed seed): every machine scores with the same weights, as FID's users share Inception's,
and a first run trains nothing. Other data sets, or ``eval.evaluator: train``, train their own
on the training split (seeded, cached by a hash of its recipe). Any other data set (an image
folder, Flowers102) gets the same network trained from its own images (``trained``). Its
penultimate layer gives the features for every score; its predictions the class of a sample.
Which evaluator and its identity: ``gan_core.evaluators`` (no torch).
"""
from __future__ import annotations

import dataclasses
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .. import evaluators
from ..config import Config
from ..data import ImageData, load_data
from ..evaluators import SIZES as EVALUATOR_SIZES, cache_folder
from ..models.checkpoint import to_bytes
from ..rundir import compute_once, write_json


class Evaluator(nn.Module):
    """A small CNN classifier; ``features`` is its 128-d penultimate layer.

    Input (B, C, S, S) in [-1, 1] at the data set's evaluator size S (28 or 32; a trained
    evaluator's at the data's own size, 28-128). ``stride``: the first convolution's; 2 halves
    the size the rest of the network works at (a quarter of the work), for inputs above 48 px.
    """

    num_features = 128  # read by torchmetrics, so it does not probe with a dummy image

    def __init__(self, channels: int, classes: int, stride: int = 1):
        super().__init__()
        def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        self.body = nn.Sequential(  # (B, C, S, S) -> (B, 128, 3, 3)
            *block(channels, 32, stride), nn.MaxPool2d(2),
            *block(32, 64), nn.MaxPool2d(2), *block(64, 128), nn.AdaptiveAvgPool2d(3), nn.Flatten(),
            nn.Dropout(0.3), nn.Linear(128 * 9, self.num_features), nn.ReLU(True))
        self.head = nn.Linear(self.num_features, classes)

    def fuse(self) -> "Evaluator":
        """In place, for inference: each BatchNorm folded into the convolution before it (the
        same features to about 1e-6; 1.6x faster on a CPU, measured). Returns the network, in eval mode."""
        body = []
        for layer in self.eval().body:
            body.append(fuse_conv_bn_eval(body.pop(), layer) if isinstance(layer, nn.BatchNorm2d) else layer)
        self.body = nn.Sequential(*body)
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclass
class Reference:
    """The real side of a config's scores: its evaluator and what identifies it, the real
    reference images' class ids (and the class names, None when the evaluator has no labels:
    no class scores), the reference images themselves (read when their features are not
    cached), and ``n`` real training images, a fixed random subset, for the floor (at most
    ``most``: a generator is scored on as many samples, so the two compare)."""

    model: Evaluator
    info: dict[str, Any]
    labels: torch.Tensor
    classes: list[str] | None
    images: Callable[[], torch.Tensor]
    training: Callable[[int], torch.Tensor]
    most: int | None = None  # None: as many as asked for


def labelled_reference(config: Config, log: Callable[[str], None] = print) -> Reference:
    """The real side of a labelled data set's scores (``SIZES``): its test split (of
    ``data.classes``, if set) at the evaluator's size, and its training split for the floor."""
    model, info = load_evaluator(config, log)
    test = evaluator_data(config, "test", classes=config.data.classes)
    fixed = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=0))
    return Reference(model, info, test.labels, list(test.classes), lambda: test.images,
                     lambda n: evaluator_data(fixed, "train", subset=n, classes=config.data.classes).images)


def evaluator_data(config: Config, split: str, subset: int | None = None,
                   classes: tuple | None = None) -> ImageData:
    """The config's data set at the evaluator's size and native channels, in memory."""
    size = EVALUATOR_SIZES[config.data.name]
    data = dataclasses.replace(config.data, split=split, image_size=size, subset=subset,
                               subset_mode="random", classes=classes, channels=None)
    return load_data(dataclasses.replace(config, data=data))


def load_evaluator(config: Config, log: Callable[[str], None] = print) -> tuple[Evaluator, dict[str, Any]]:
    """The evaluator of ``config.data`` (``eval.evaluator``: the shipped one, or one trained here)
    and what identifies it (``evaluators.identity``: ``version``, ``id``, ``source``) with its
    held-out figure (``held_out``: the test accuracy, ``held_out_name``), ``classes`` and ``recipe``.

    A trained evaluator is cached; a cache file whose recipe hash differs, or that cannot be
    read, is never trusted: the evaluator is trained again. Parallel runs share one training
    (``rundir.compute_once``): the others wait for it and read its result.

    Raises:
        evaluators.EvaluatorError: a shipped evaluator asked for where none ships, or damaged.
    """
    info = evaluators.identity(config)
    if evaluators.uses_shipped(config):
        state = torch.load(evaluators.shipped_file(config.data.name), map_location="cpu", weights_only=True)
    else:
        recipe = evaluators.recipe(config)
        key = evaluators.recipe_hash(recipe)

        def load(data: bytes) -> dict[str, Any] | None:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            return state if state.get("recipe_hash") == key else None

        state = compute_once(cache_path(config), lambda: {**train_evaluator(config, recipe, log), "recipe_hash": key},
                             to_bytes, load, log)
    model = Evaluator(state["channels"], len(state["classes"]))
    model.load_state_dict(state["weights"])
    if not evaluators.uses_shipped(config):  # what pages name beside the evaluator (evaluators.described)
        write_json(evaluators.info_file(config, info["id"]), {"held_out": state["test_accuracy"], "held_out_name": "test accuracy"})
    return model.fuse(), {**info, "held_out": state["test_accuracy"], "held_out_name": "test accuracy",
                          **{k: state[k] for k in ("classes", "recipe")}}


def train_evaluator(config: Config, recipe: dict[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the evaluator classifier on the training split; returns weights and test accuracy."""
    start = time.perf_counter()
    train = evaluator_data(config, "train", recipe["subset"])
    test = evaluator_data(config, "test")
    log(f"training the {recipe['data']} evaluator on {len(train)} images, {recipe['epochs']} epochs "
        "(once; cached)")
    torch.manual_seed(recipe["seed"])
    model = Evaluator(train.shape[0], len(train.classes))
    opt = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    steps = recipe["epochs"] * (len(train) // recipe["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe["lr"] * 3, total_steps=max(steps, 1))
    for epoch in range(recipe["epochs"]):
        model.train()
        for images, labels in train.batches(recipe["batch_size"], recipe["seed"] + epoch):
            loss = F.cross_entropy(model(images), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    accuracy = float((predict(model.eval(), test.images) == test.labels).float().mean())
    log(f"evaluator test accuracy {accuracy:.2%} ({time.perf_counter() - start:.0f} s)")
    return {"weights": model.state_dict(), "channels": train.shape[0], "classes": list(train.classes),
            "test_accuracy": accuracy, "recipe": recipe}


# batches of 250 in channels_last: about 1.8x faster than batches of 1000 in the default layout
# on a CPU (measured, one thread), the features equal to 1e-7
BATCH = 250


@torch.no_grad()
def _batched(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch: int = BATCH) -> torch.Tensor:
    return torch.cat([fn(images[i:i + batch].contiguous(memory_format=torch.channels_last))
                      for i in range(0, len(images), batch)])


@torch.no_grad()
def features_and_classes(model: Evaluator, images: torch.Tensor, batch: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 128) features and (N,) predicted class ids of images, in one pass of the network."""
    model.to(memory_format=torch.channels_last)  # in place; its weights once
    feats = _batched(model.features, images, batch)
    return feats.double(), model.head(feats).argmax(1)


def predict(model: Evaluator, images: torch.Tensor) -> torch.Tensor:
    """(N,) predicted class ids."""
    model.to(memory_format=torch.channels_last)
    return _batched(lambda x: model(x).argmax(1), images)


def to_evaluator_input(images: torch.Tensor, config: Config) -> torch.Tensor:
    """Generated images (N, C, H, W) brought to the evaluator's size and channel count: a labelled
    set's (``SIZES``), else the data's own (``evaluators.own``)."""
    if evaluators.own(config):
        size, channels = config.data.image_size, config.data.channels or 3
    else:
        size, channels = EVALUATOR_SIZES[config.data.name], 3 if config.data.name == "cifar10" else 1
    images = images.float().cpu()
    if images.shape[1] != channels:
        images = images.mean(1, keepdim=True) if channels == 1 else images.expand(-1, 3, -1, -1)
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return images.clamp(-1, 1)


def cache_path(config: Config) -> Path:
    """Where the evaluator of ``config.data`` is cached when it is trained here."""
    recipe = evaluators.recipe(config)
    return cache_folder(config) / f"{recipe['data']}-{evaluators.recipe_hash(recipe)}.pt"

