"""Quality and diversity scores that work offline, in the feature space of an evaluator.

Inception-v3 weights cannot be downloaded here, so each labelled data set gets its own small
classifier, trained by gan_core on the training split (seeded, cached by a hash of its recipe).
Its penultimate layer gives the features for the Frechet distance and KID (torchmetrics),
precision/recall (Kynkaanniemi et al. 2019, https://arxiv.org/abs/1904.06991) and
density/coverage (Naeem et al. 2020, https://arxiv.org/abs/2002.09797, via ``prdc``); its
predictions give the class histogram of generated images. The same scores for real training
images against the test split are the floor: the best a generator can reach.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import json
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import Config, EvalConfig
from .data import ImageData, load_data

EVALUATOR_SIZES = {"fashion-mnist": 28, "mnist": 28, "digits": 28, "cifar10": 32}
EVALUATOR_VERSION = 2  # bump when the network or its training changes: old caches are refused
COVERED_SHARE = 0.01  # a class counts as covered when at least 1 % of the samples fall in it


class Evaluator(nn.Module):
    """A small CNN classifier; ``features`` is its 128-d penultimate layer.

    Input (B, C, S, S) in [-1, 1] at the data set's evaluator size S (28 or 32).
    """

    num_features = 128  # read by torchmetrics, so it does not probe with a dummy image

    def __init__(self, channels: int, classes: int):
        super().__init__()
        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        self.body = nn.Sequential(  # (B, C, S, S) -> (B, 128, 3, 3)
            *block(channels, 32), nn.MaxPool2d(2),
            *block(32, 64), nn.MaxPool2d(2), *block(64, 128), nn.AdaptiveAvgPool2d(3), nn.Flatten(),
            nn.Dropout(0.3), nn.Linear(128 * 9, self.num_features), nn.ReLU(True))
        self.head = nn.Linear(self.num_features, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class FeaturePassThrough(nn.Module):
    """Lets torchmetrics' FID/KID run on features we computed once: its 'images' are features."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


# --- the evaluator -----------------------------------------------------------------------------
def evaluator_recipe(config: Config) -> dict[str, Any]:
    """Everything the evaluator's weights depend on; its hash names the cache file."""
    name = config.data.name
    if name not in EVALUATOR_SIZES:
        raise ValueError(f"no evaluator for {name}: scores need a labelled data set "
                         f"({', '.join(EVALUATOR_SIZES)})")
    return {"version": EVALUATOR_VERSION, "data": name, "root": config.data.root,
            "size": EVALUATOR_SIZES[name], "epochs": config.eval.evaluator_epochs,
            "subset": config.eval.evaluator_subset, "batch_size": 128, "lr": 1e-3, "seed": 0}


def recipe_hash(recipe: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def evaluator_data(config: Config, split: str, subset: int | None = None,
                   classes: tuple | None = None) -> ImageData:
    """The config's data set at the evaluator's size and native channels, in memory."""
    size = EVALUATOR_SIZES[config.data.name]
    data = dataclasses.replace(config.data, split=split, image_size=size, subset=subset,
                               subset_mode="random", classes=classes, channels=None)
    return load_data(dataclasses.replace(config, data=data))


def load_evaluator(config: Config, log: Callable[[str], None] = print) -> tuple[Evaluator, dict[str, Any]]:
    """The cached evaluator for ``config.data``, trained first if missing or stale.

    A cache file whose recorded recipe hash differs from the expected one is refused and the
    evaluator is retrained. A file lock lets parallel runs share one training.
    """
    recipe = evaluator_recipe(config)
    key = recipe_hash(recipe)
    cache = Path(config.eval.cache_dir).expanduser() / "evaluators"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{recipe['data']}-{key}.pt"
    with open(cache / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = _read_cache(path, key, log)
        if state is None:
            state = train_evaluator(config, recipe, log)
            buffer = io.BytesIO()
            torch.save({**state, "recipe_hash": key}, buffer)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(buffer.getvalue())
            tmp.replace(path)
    model = Evaluator(state["channels"], len(state["classes"]))
    model.load_state_dict(state["weights"])
    return model.eval(), {k: state[k] for k in ("test_accuracy", "classes", "recipe")} | {"path": str(path)}


def _read_cache(path: Path, key: str, log: Callable[[str], None]) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unreadable cache: retrain rather than fail
        log(f"{path}: unreadable ({type(err).__name__}); retraining the evaluator")
        return None
    if state.get("recipe_hash") != key:
        log(f"{path}: recipe hash {state.get('recipe_hash')} != {key}; refused, retraining the evaluator")
        return None
    return state


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


@torch.no_grad()
def _batched(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    return torch.cat([fn(images[i:i + batch]) for i in range(0, len(images), batch)])


def features(model: Evaluator, images: torch.Tensor) -> torch.Tensor:
    """(N, 128) evaluator features of images (N, C, S, S) in [-1, 1]."""
    return _batched(model.features, images).double()


def predict(model: Evaluator, images: torch.Tensor) -> torch.Tensor:
    """(N,) predicted class ids."""
    return _batched(lambda x: model(x).argmax(1), images)


def to_evaluator_input(images: torch.Tensor, config: Config) -> torch.Tensor:
    """Generated images (N, C, H, W) brought to the evaluator's size and channel count."""
    size = EVALUATOR_SIZES[config.data.name]
    channels = 3 if config.data.name == "cifar10" else 1
    images = images.float().cpu()
    if images.shape[1] != channels:
        images = images.mean(1, keepdim=True) if channels == 1 else images.expand(-1, 3, -1, -1)
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return images.clamp(-1, 1)


# --- scores ------------------------------------------------------------------------------------
DISPLAY_NAMES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "digits": "digits", "cifar10": "CIFAR-10"}


def feature_scores(real: torch.Tensor, fake: torch.Tensor, c: EvalConfig, seed: int = 0) -> dict[str, float]:
    """FD, KID (mean, std), precision, recall, density, coverage of features (N, F) against real."""
    from prdc import compute_prdc
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance
    width = real.shape[1]
    fid = FrechetInceptionDistance(feature=FeaturePassThrough(width))
    with warnings.catch_warnings():  # it keeps all features: they are ours, already in memory
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer")
        kid = KernelInceptionDistance(feature=FeaturePassThrough(width),
                                      subset_size=min(c.kid_subset, len(real), len(fake)))
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    with torch.random.fork_rng():  # KID draws its subsets from the global RNG
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
        prdc = compute_prdc(real.float().numpy(), fake.float().numpy(), nearest_k=c.nearest_k)
    return {"fd": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std),
            **{k: float(v) for k, v in prdc.items()}}


def class_scores(predicted: torch.Tensor, reference: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """Class histogram of generated samples, classes covered, KL(generated || data) in nats.

    The reference distribution is the real test labels; the histogram is smoothed by 1e-6 so a
    class the generator never makes does not give an infinite KL.
    """
    k = len(classes)
    share = torch.bincount(predicted, minlength=k).double() / len(predicted)
    data = torch.bincount(reference, minlength=k).double() / len(reference)
    kl = (share * ((share + 1e-6) / (data + 1e-6)).log()).sum()
    return {"class_histogram": dict(zip(classes, share.tolist())), "data_histogram": dict(zip(classes, data.tolist())),
            "classes_covered": int((share >= COVERED_SHARE).sum()), "classes_in_data": int((data > 0).sum()),
            "class_kl": float(kl)}


def conditional_scores(predicted: torch.Tensor, requested: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """Share of a conditional G's samples the evaluator puts in the requested class, overall
    and per requested class (chance is 1 / number of classes)."""
    hit = (predicted == requested).double()
    per_class = {classes[k]: float(hit[requested == k].mean()) for k in requested.unique().tolist()}
    return {"conditional_accuracy": float(hit.mean()), "conditional_accuracy_per_class": per_class}


def sample_images(generator: nn.Module, n: int, seed: int,
                  batch: int = 500) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(n, C, H, W) images from seeded latents, G in eval mode without gradients, and the
    classes asked of a conditional G (its trained classes in turn; None if unconditional)."""
    from .latent import sample_latents
    z = sample_latents(n, generator.latent_dim, seed)
    y = None if generator.label is None else generator.label.default_labels(n)
    generator.eval()
    with torch.no_grad():
        images = [generator(z[i:i + batch], None if y is None else y[i:i + batch]) for i in range(0, n, batch)]
    return torch.cat(images), y


class Scorer:
    """Scores generators of one config against its real test split, and the real floor."""

    def __init__(self, config: Config, log: Callable[[str], None] = print):
        self.config, self.log = config, log
        self.model, self.info = load_evaluator(config, log)
        self.name = f"FD ({DISPLAY_NAMES[config.data.name]} classifier)"
        self.test = evaluator_data(config, "test", classes=config.data.classes)
        self._real_features = features(self.model, self.test.images)

    def score(self, images: torch.Tensor, requested: torch.Tensor | None = None) -> dict[str, Any]:
        """All scores of generated images (N, C, H, W) in [-1, 1] against the test split; with
        the classes ``requested`` (N,) of a conditional G, also how often the evaluator agrees."""
        images = to_evaluator_input(images, self.config)
        fake = features(self.model, images)
        real = self._real_features[:len(images)]
        predicted = predict(self.model, images)
        scores = {**feature_scores(real, fake, self.config.eval),
                  **class_scores(predicted, self.test.labels, list(self.test.classes)),
                  "samples": len(images), "real_samples": len(real)}
        if requested is not None:
            scores.update(conditional_scores(predicted, requested.cpu(), list(self.test.classes)))
        return scores

    def floor(self, n: int) -> dict[str, Any]:
        """The same scores for ``n`` real training images: the best a generator can reach."""
        train = evaluator_data(self.config, "train", subset=n, classes=self.config.data.classes)
        return self.score(train.images)


def evaluate_run(run_dir: str | Path, samples: int | None = None, checkpoints: bool = True,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Score a run's last generator (and each saved checkpoint), beside the real floor.

    Writes the ``evaluation`` section of metrics.json and returns it. Data sets without an
    evaluator (image folders) get ``{"available": False, "reason": ...}``.
    """
    from .rundir import RunDir
    from .train import load_generator
    run = RunDir(run_dir)
    generator, config = load_generator(run.last_checkpoint)
    if config.data.name not in EVALUATOR_SIZES:
        result = {"available": False, "reason": f"{config.data.name} has no labelled evaluator: FD, KID, "
                  "precision/recall and class histograms are unavailable; judge the samples by eye"}
        run.update_metrics(evaluation=result)
        return result
    start = time.perf_counter()
    scorer = Scorer(config, log)
    n = samples or config.eval.samples
    seed = config.train.seed + 12345  # not the training noise
    result = {"available": True, "name": scorer.name, "evaluator": scorer.info,
              "final": scorer.score(*sample_images(generator, n, seed)), "floor": scorer.floor(n)}
    if checkpoints:
        result["over_training"] = rows = _over_training(run, scorer, config, seed)
        best = min((r for r in rows if not r["floor"]), key=lambda r: r["fd"], default=None)
        if best:  # the snapshot to keep when training went on past its best
            result["best_checkpoint"] = {"epoch": best["epoch"], "fd": best["fd"],
                                         "path": str(run.snapshot(best["epoch"]))}
    result["seconds"] = round(time.perf_counter() - start, 1)
    log(f"{scorer.name} {result['final']['fd']:.2f} (floor {result['floor']['fd']:.2f}) on "
        f"{result['final']['samples']} samples in {result['seconds']} s")
    run.update_metrics(evaluation=result)
    return result


def _over_training(run, scorer: Scorer, config: Config, seed: int) -> list[dict[str, Any]]:
    from .train import load_generator
    n = min(config.eval.checkpoint_samples, len(scorer.test))
    rows = [{"epoch": 0, **_brief(scorer.floor(n)), "floor": True}]
    for path in sorted(run.checkpoints.glob("epoch_*.pt")):
        generator, _ = load_generator(path)
        epoch = int(path.stem.split("_")[1])
        scores = scorer.score(*sample_images(generator, n, seed))
        rows.append({"epoch": epoch, **_brief(scores), "floor": False})
    return rows


def _brief(scores: dict[str, Any]) -> dict[str, Any]:
    keys = ("fd", "kid", "precision", "recall", "density", "coverage", "classes_covered", "class_kl", "samples",
            "conditional_accuracy")
    return {k: scores[k] for k in keys if k in scores}


def reading(result: dict[str, Any]) -> list[str]:
    """Short sentences on what the scores say, for the report."""
    if not result.get("available"):
        return [result.get("reason", "no scores")]
    final, floor, name = result["final"], result["floor"], result["name"]
    lines = [f"{name}: {final['fd']:.2f}, against {floor['fd']:.2f} for real training images "
             f"(the floor); lower is better."]
    lines.append(f"Precision {final['precision']:.2f} (floor {floor['precision']:.2f}): the share of samples "
                 f"that fall on the real data's manifold. Recall {final['recall']:.2f} "
                 f"(floor {floor['recall']:.2f}): the share of the real variety the samples reach.")
    covered, total = final["classes_covered"], final["classes_in_data"]
    favoured = [c for c, share in final["class_histogram"].items()
                if share > 1.5 * final["data_histogram"].get(c, 0) and share >= COVERED_SHARE]
    lines.append(f"The generator covers {covered} of {total} classes (KL from the data's class shares "
                 f"{final['class_kl']:.3f} nats)" + (f"; it favours {', '.join(favoured)}." if favoured else "."))
    lines.append(f"KID {final['kid']:.3g} ± {final['kid_std']:.2g} (floor {floor['kid']:.2g}): on the "
                 "evaluator's raw features, so not comparable with published KID; it is unbiased, so "
                 "identical distributions can score slightly below 0.")
    if "conditional_accuracy" in final:
        per_class = final["conditional_accuracy_per_class"]
        worst = min(per_class, key=per_class.get)
        lines.append(f"Conditional accuracy {final['conditional_accuracy']:.2f} (chance {1 / len(per_class):.2f}): "
                     f"the share of samples the evaluator puts in the class they were asked for; lowest for "
                     f"{worst} ({per_class[worst]:.2f}).")
    if best := result.get("best_checkpoint"):
        lines.append(f"Best saved checkpoint by {name}: epoch {best['epoch']} ({best['fd']:.2f} on the "
                     f"smaller per-checkpoint sample), {best['path']}.")
    if covered <= total // 2:
        lines.append("Half of the classes or more are missing: mode collapse.")
    elif final["recall"] < 0.5 * floor["recall"]:
        lines.append("Recall is under half the floor's: the samples miss much of the data's variety.")
    return lines
