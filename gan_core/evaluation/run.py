"""Scoring a run: its generator's samples against the real reference (a labelled set's test split,
else the held-out tenth of the data), beside the real floor, and at
every saved checkpoint."""
from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import Config, load
from ..data import load_data
from .. import evaluators
from ..evaluators import DISPLAY_NAMES, REFERENCE_VERSION, cache_folder, recipe_hash, reference_stamp
from ..models import ModelFamily, load_family
from ..models.checkpoint import to_bytes
from ..rundir import RunDir, compute_once, epoch_of, json_bytes, write_json
from .evaluator import Reference, features_and_classes, labelled_reference, to_evaluator_input
from .trained import own_reference
from .scores import SCORES, class_scores, conditional_scores, feature_scores, kth_radii, pixel_statistics

PIXEL_SAMPLES = 500  # generated images for the pixel statistics of data without an evaluator
NO_CLASSES = ("the data has no class folders, so its evaluator learned features without labels: classes "
              "covered, the class histogram and class KL are left out")


def sample_images(family: ModelFamily, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(n, C, H, W) images from latents seeded with ``seed``, and the classes asked of a
    conditional model (its trained classes in turn; None if unconditional)."""
    labels = family.default_labels(n)
    return family.sample(n, labels, torch.Generator().manual_seed(seed)), labels


def reference(config: Config, log: Callable[[str], None] = print) -> Reference:
    """``config``'s real side: a labelled set's test split and evaluator, or the held-out tenth of
    any other data and the evaluator trained from its own images (``evaluators.own``)."""
    return (own_reference if evaluators.own(config) else labelled_reference)(config, log)


class Scorer:
    """Scores generators of one config against its real reference (a labelled set's test split,
    else the data's held-out tenth), and the real floor.

    What depends on the real side alone is computed once and cached beside the evaluator: the
    reference features, their k-NN radii per sample count, and the floor (it depends on the data
    set, the evaluator, the sample count and the score settings, not on any run)."""

    def __init__(self, config: Config, log: Callable[[str], None] = print):
        self.config, self.log = config, log
        self.real = reference(config, log)
        self.model, self.info = self.real.model, self.real.info
        what = "classifier" if self.real.classes is not None else "SimCLR features"
        self.name = f"FD ({DISPLAY_NAMES[config.data.name]} {what})"
        self._test_key = recipe_hash({"classes": self.config.data.classes, "version": REFERENCE_VERSION})
        n = len(self.real.labels)
        self._real_features = self._cached_tensor(
            f"test-{self._test_key}", (n, 128), f"the features of the {n:,} real reference images",
            lambda: features_and_classes(self.model, self.real.images())[0])
        self._radii: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        """Real reference images."""
        return len(self.real.labels)

    def samples(self, n: int) -> int:
        """Generated images to score when ``n`` are asked for: as many as real training images
        the floor can use, so that the two compare."""
        return min(n, self.real.most or n)

    def _cached_tensor(self, name: str, shape: tuple[int, ...], what: str,
                       compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A tensor that depends on the evaluator and the test split alone, cached beside the evaluator."""
        path = cache_folder(self.config) / f"{self.info['id']}.{name}.pt"

        def load(data: bytes) -> torch.Tensor | None:
            cached = torch.load(io.BytesIO(data), weights_only=True)
            return cached if isinstance(cached, torch.Tensor) and cached.shape == shape else None

        def logged() -> torch.Tensor:
            self.log(f"computing {what} (once; cached in {path.parent})")
            return compute()

        return compute_once(path, logged, to_bytes, load, self.log)

    def _real_radii(self, n: int) -> torch.Tensor:
        """(n,) the k-NN radii of the first n test features (1 s at 10,000 on a 2-core CPU): cached."""
        k = self.config.eval.nearest_k
        if n not in self._radii:
            name = f"test-{self._test_key}.radii-{n}-k{k}"
            self._radii[n] = self._cached_tensor(name, (n,), f"the k-NN radii of {n:,} test features",
                                                 lambda: kth_radii(self._real_features[:n], k))
        return self._radii[n]

    def score(self, images: torch.Tensor, requested: torch.Tensor | None = None,
              detail: bool = True) -> dict[str, Any]:
        """All scores of generated images (N, C, H, W) in [-1, 1] against the test split; with
        the classes ``requested`` (N,) of a conditional G, also how often the evaluator agrees.
        ``detail``: intervals and KID's spread over 100 subsets (else 10 subsets, no intervals:
        enough for a curve over checkpoints)."""
        images = to_evaluator_input(images, self.config)
        fake, predicted = features_and_classes(self.model, images)
        real = self._real_features[:len(images)]
        scores = {**feature_scores(real, fake, self.config.eval, real_radii=self._real_radii(len(real)), detail=detail),
                  "samples": len(images), "real_samples": len(real)}
        if self.real.classes is not None:  # an evaluator trained without labels has no classes
            scores.update(class_scores(predicted, self.real.labels, self.real.classes))
            if requested is not None:
                scores.update(conditional_scores(predicted, requested.cpu(), self.real.classes))
        return scores

    def floor(self, n: int) -> dict[str, Any]:
        """The same scores for ``n`` real training images (a fixed random subset): the best a
        generator can reach. Cached beside the evaluator."""
        e, classes = self.config.eval, self.config.data.classes
        key = {"evaluator": self.info["id"], "n": n, "classes": classes, "nearest_k": e.nearest_k,
               "kid_subset": e.kid_subset, "version": REFERENCE_VERSION}
        path = cache_folder(self.config) / f"{self.info['id']}.floor-{recipe_hash(key)}.json"

        def load(data: bytes) -> dict[str, Any] | None:
            cached = json.loads(data)
            return cached["scores"] if cached.get("key") == key else None

        def compute() -> dict[str, Any]:
            self.log(f"scoring {n:,} real training images: the floor (once; cached in {path.parent})")
            return self.score(self.real.training(n))

        return compute_once(path, compute, lambda scores: json_bytes({"key": key, "scores": scores}), load, self.log)


def prepare_reference(config: Config, log: Callable[[str], None] = print) -> None:
    """Make and cache ``config``'s real side (``evaluators.reference_stamp``), training the
    evaluator if none ships. A sweep runs it before a run needs it (``orchestration.runner``),
    so no run computes it or waits idle on another that does (``rundir.compute_once``)."""
    scorer = Scorer(config, log)
    scorer.floor(scorer.samples(config.eval.samples))
    scorer.floor(_curve_samples(scorer))
    write_json(*reference_stamp(config))


def _curve_samples(scorer: Scorer) -> int:
    """Generated and real images per checkpoint of the quality-over-training curve."""
    return scorer.samples(min(scorer.config.eval.checkpoint_samples, len(scorer)))


def evaluate_run(run_dir: str | Path, samples: int | None = None, checkpoints: bool = True,
                 log: Callable[[str], None] = print, save: str | Path | None = None) -> dict[str, Any]:
    """Score a run's last generator (and each saved checkpoint), beside the real floor.

    Writes the result, and returns it, as the ``evaluation`` section of metrics.json (the run's
    canonical scores, which its reports and the sweep's index show), or to the JSON file
    ``save`` when given (an extra evaluation that leaves them as they are). Data sets without an
    evaluator (image folders) get ``{"available": False, "reason": ...}``.
    """
    run = RunDir(run_dir)

    def keep(result: dict[str, Any]) -> dict[str, Any]:
        if save is None:
            run.update_metrics(evaluation=result)
        else:
            Path(save).parent.mkdir(parents=True, exist_ok=True)
            write_json(Path(save), result)
        return result

    family, config = load_family(run.last_checkpoint)
    seed = config.train.seed + 12345  # not the training noise
    if reason := evaluators.unscored(config):
        n = min(samples or PIXEL_SAMPLES, PIXEL_SAMPLES)
        real = load_data(config).sample(2 * n, seed=0)
        result = {"available": False, "reason": f"No evaluator: {reason}. FD, KID, precision/recall and class "
                  "histograms are unavailable; below are pixel-space statistics, and the sample gallery shows the "
                  "samples beside their nearest real images",
                  "pixel": pixel_statistics(sample_images(family, n, seed)[0], real)}
        return keep(result)
    start = time.perf_counter()
    scorer = Scorer(config, log)
    n = scorer.samples(samples or config.eval.samples)
    result = {"available": True, "name": scorer.name, "evaluator": scorer.info,
              "final": scorer.score(*sample_images(family, n, seed)), "floor": scorer.floor(n),
              **({} if scorer.real.classes is not None else {"note": NO_CLASSES})}
    if checkpoints:
        result["over_training"] = rows = _over_training(run, scorer, config, seed)
        best = min((r for r in rows if not r["floor"]), key=lambda r: r["fd"], default=None)
        if best:  # the snapshot to keep when training went on past its best
            result["best_checkpoint"] = {"epoch": best["epoch"], "fd": best["fd"],
                                         "path": str(run.snapshot(best["epoch"]).relative_to(run.root))}
        stamp, key = reference_stamp(config)
        if (samples or config.eval.samples) == config.eval.samples and not stamp.exists():  # this run made the whole real side
            write_json(stamp, key)
    result["seconds"] = round(time.perf_counter() - start, 1)
    log(f"{scorer.name} {result['final']['fd']:.2f} (floor {result['floor']['fd']:.2f}) on "
        f"{result['final']['samples']} samples in {result['seconds']} s")
    return keep(result)


def _over_training(run: RunDir, scorer: Scorer, config: Config, seed: int) -> list[dict[str, Any]]:
    n = _curve_samples(scorer)
    rows = [{"epoch": 0, **_brief(scorer.floor(n)), "floor": True}]
    for path in run.snapshots():
        family, _ = load_family(path)
        epoch = epoch_of(path)
        scores = scorer.score(*sample_images(family, n, seed), detail=False)
        rows.append({"epoch": epoch, **_brief(scores), "floor": False})
    return rows


def _brief(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: scores[k] for k in (*SCORES, "samples") if k in scores and k != "kid_std"}


def main(argv: list[str]) -> int:
    """``python -m gan_core.evaluation.run CONFIG.yaml``: prepare the config's real side
    (``prepare_reference``), e.g. in the background while a sweep's first runs train."""
    prepare_reference(load(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
