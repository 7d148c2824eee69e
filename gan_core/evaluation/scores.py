"""Scores as math on features: Frechet distance and KID (torchmetrics), precision/recall
(Kynkaanniemi et al. 2019, https://arxiv.org/abs/1904.06991) and density/coverage (Naeem et al.
2020, https://arxiv.org/abs/2002.09797, via ``prdc``), the class histogram. Nothing here knows a
model, a run folder or the trainer: arrays in, numbers out.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import torch
from torch import nn

from ..config import EvalConfig

COVERED_SHARE = 0.01  # a class counts as covered when at least 1 % of the samples fall in it
# every score a run's evaluation reports, by key, with its name in reports
SCORES = {"fd": "FD", "kid": "KID", "kid_std": "KID std", "precision": "precision", "recall": "recall",
          "density": "density", "coverage": "coverage", "classes_covered": "classes covered",
          "class_kl": "class KL (nats)", "conditional_accuracy": "conditional accuracy"}


class FeaturePassThrough(nn.Module):
    """Lets torchmetrics' FID/KID run on features we computed once: its 'images' are features."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


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
