"""Scores as math on features: Frechet distance and KID, precision/recall
(Kynkaanniemi et al. 2019, https://arxiv.org/abs/1904.06991) and density/coverage (Naeem et al.
2020, https://arxiv.org/abs/2002.09797), the class histogram. Nothing here knows a
model, a run folder or the trainer: arrays in, numbers out.
"""
from __future__ import annotations

from typing import Any

import torch

from ..config import EvalConfig
from ..evaluators import COVERED_SHARE, KID_NO_SPREAD, SCORES  # noqa: F401 (the names, torch-free)

BOOTSTRAP = 100  # resamples of a bootstrap interval


def feature_scores(real: torch.Tensor, fake: torch.Tensor, c: EvalConfig, seed: int = 0,
                   real_radii: torch.Tensor | None = None, detail: bool = True) -> dict[str, Any]:
    """FD, KID (mean, std), precision, recall, density, coverage of features (N, F) against real;
    ``real_radii``: ``kth_radii(real, c.nearest_k)`` when already known (it depends on real alone).
    ``detail``: with 95 % intervals (FD, precision, density) and KID over 100 subsets; else
    without intervals and over 10 subsets (a point of a curve)."""
    real64, fake64 = real.double(), fake.double()
    kid_mean, kid_std = kernel_distance(real, fake, subsets=100 if detail else 10,
                                        subset_size=min(c.kid_subset, len(real), len(fake)), seed=seed)
    scores = {"fd": frechet_distance(real64.mean(0), torch.cov(real64.T), fake64.mean(0), torch.cov(fake64.T)),
              "kid": kid_mean, "kid_std": kid_std, **prdc(real, fake, c.nearest_k, real_radii, seed=seed)}
    if detail:
        return {**scores, "fd_ci": fd_interval(real, fake, seed=seed)}
    return {k: v for k, v in scores.items() if not k.endswith("_ci")}


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic kernel (x.y / F + 1)^3,
    averaged over ``subsets`` random subsets of ``subset_size`` from each side; its mean and
    standard deviation over the subsets. The estimator of torchmetrics' KernelInceptionDistance
    (tests/test_metrics.py checks it against it), in float32 with its own seeded generator."""
    real, fake = real.float(), fake.float()
    generator = torch.Generator().manual_seed(seed)
    m, gamma, one = subset_size, 1.0 / real.shape[1], torch.ones(())

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # one pass: 100 subsets 3.3 s -> 2.4 s
        return torch.addmm(one, a, b.T, alpha=gamma).pow_(3)

    values = []
    for _ in range(subsets):
        x = real[torch.randperm(len(real), generator=generator)[:m]]
        y = fake[torch.randperm(len(fake), generator=generator)[:m]]
        k_xx, k_yy = kernel(x, x), kernel(y, y)
        within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
        values.append(within - 2 * kernel(x, y).sum() / m ** 2)
    spread = torch.stack(values).double()
    return float(spread.mean()), float(spread.std(unbiased=False))


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^1/2), the trace of the root from the
    eigenvalues of cov1 cov2 (real and >= 0 up to rounding)."""
    root = torch.linalg.eigvals(cov1 @ cov2).real.clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * root)


def fd_interval(real: torch.Tensor, fake: torch.Tensor, resamples: int = BOOTSTRAP, level: float = 0.95,
                seed: int = 0) -> list[float]:
    """95 % interval of FD from the sampling noise of the generated samples: FD +/- z * the
    standard deviation of FD over bootstrap resamples of them (the real statistics stay). A normal
    interval, not percentiles: a resample repeats samples, which shifts FD up by about as much as
    its spread, so percentiles would miss the score itself. FD's dependence on the sample count
    is not in it: compare FDs at equal sample counts."""
    real, fake = real.double(), fake.double()
    mu, cov = real.mean(0), torch.cov(real.T)
    score = frechet_distance(mu, cov, fake.mean(0), torch.cov(fake.T))
    # a resample's statistics from how often it draws each sample, on the centred samples in
    # float32 (its spread is all the interval needs; the score itself stays in float64)
    n, centre = len(fake), fake.mean(0)
    centred = (fake - centre).float()
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(resamples):
        counts = torch.bincount(torch.randint(n, (n,), generator=generator), minlength=n).float()
        shift = counts @ centred / n
        drawn_cov = ((centred * counts[:, None]).T @ centred - n * torch.outer(shift, shift)) / (n - 1)
        values.append(frechet_distance(mu, cov, centre + shift.double(), drawn_cov.double()))
    z = float(torch.distributions.Normal(0, 1).icdf(torch.tensor(0.5 + level / 2)))
    half = z * float(torch.tensor(values).std())
    return [score - half, score + half]


def _mean_interval(per_sample: torch.Tensor, resamples: int, level: float, seed: int) -> list[float]:
    """Percentile bootstrap interval of the mean of per-sample values (N,)."""
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(per_sample), (resamples, len(per_sample)), generator=generator)
    means, tail = per_sample.double()[idx].mean(1), (1 - level) / 2
    return [float(means.quantile(tail)), float(means.quantile(1 - tail))]


def kth_radii(features: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """(N,) distance of each feature vector to its k-th nearest neighbour among the others."""
    features = features.float()
    return torch.cat([torch.cdist(features[i:i + chunk], features).topk(k + 1, dim=1, largest=False).values[:, -1]
                      for i in range(0, len(features), chunk)])


def prdc(real: torch.Tensor, fake: torch.Tensor, k: int, real_radii: torch.Tensor | None = None,
         chunk: int = 2048, seed: int = 0) -> dict[str, Any]:
    """Precision, recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020) of
    fake against real features with k-NN balls: the estimators of the ``prdc`` package, in float32
    on row blocks (no N x N matrix in memory; tests/test_metrics.py checks them against it).

    Precision and density are means over the generated samples, so they come with a bootstrap
    95 % interval over them (``precision_ci``, ``density_ci``); recall and coverage are shares of
    the real samples that depend on all generated ones together, and come without."""
    real, fake = real.float(), fake.float()
    real_radii = kth_radii(real, k) if real_radii is None else real_radii
    fake_radii = kth_radii(fake, k)
    balls = torch.zeros(len(fake), dtype=torch.long)  # per fake sample: the real k-NN balls holding it
    recalled = torch.zeros(len(real), dtype=torch.bool)
    nearest = torch.empty(len(real))
    for i in range(0, len(real), chunk):
        d = torch.cdist(real[i:i + chunk], fake)  # (chunk, F)
        balls += (d < real_radii[i:i + chunk, None]).sum(0)
        recalled[i:i + chunk] = (d < fake_radii[None, :]).any(1)
        nearest[i:i + chunk] = d.min(1).values
    inside = (balls > 0).double()
    return {"precision": float(inside.mean()), "precision_ci": _mean_interval(inside, BOOTSTRAP, 0.95, seed),
            "recall": float(recalled.double().mean()), "density": float(balls.double().mean() / k),
            "density_ci": _mean_interval(balls.double() / k, BOOTSTRAP, 0.95, seed),
            "coverage": float((nearest < real_radii).double().mean())}


def pixel_statistics(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Scores that need no evaluator, in pixel space (RMS distance per pixel, images in [-1, 1]):
    the spread of generated and of real images (mean distance between two of them; a collapsed
    generator's is near 0), and how near each generated image is to its closest real one beside
    how near a real image is to its closest other real one (far below it: memorised)."""
    f, r = fake.flatten(1).double(), real.flatten(1).double()
    scale = f.shape[1] ** 0.5

    def spread(x: torch.Tensor) -> float:
        d = torch.cdist(x, x)
        return float(d.sum() / (len(x) * (len(x) - 1)) / scale)

    half = len(r) // 2
    real_nearest = torch.cdist(r[:half], r[half:]).min(1).values.mean() / scale
    return {"generated_spread": spread(f), "real_spread": spread(r),
            "generated_to_nearest_real": float(torch.cdist(f, r[half:]).min(1).values.mean() / scale),
            "real_to_nearest_real": float(real_nearest), "samples": len(f), "real_samples": len(r)}


def covered_share(data: torch.Tensor) -> torch.Tensor:
    """The share of samples that makes each class covered: 1 % (``COVERED_SHARE``), or half the
    class's share of the data where that is less (102 flower classes hold about 1 % each)."""
    return (data / 2).clamp(max=COVERED_SHARE)


def class_scores(predicted: torch.Tensor, reference: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """Class histogram of generated samples against the real ``reference`` labels (the classes
    the run was trained on: the test split filtered like the training data).

    Classes covered and KL(generated || data, in nats; smoothed by 1e-6 so a class the generator
    never makes gives no infinite KL) are over the trained classes, among the samples classified
    into them; samples classified into any other class are counted apart (``outside_share``,
    ``outside_histogram``: "8 % look like Shirt, a class not trained on").
    """
    k = len(classes)
    share = torch.bincount(predicted, minlength=k).double() / len(predicted)
    data = torch.bincount(reference, minlength=k).double() / len(reference)
    trained = data > 0
    inside = share[trained].sum()
    within = share[trained] / inside if inside > 0 else share[trained]
    kl = (within * ((within + 1e-6) / (data[trained] + 1e-6)).log()).sum()
    names = [c for c, t in zip(classes, trained.tolist()) if t]
    return {"class_histogram": dict(zip(names, share[trained].tolist())),
            "data_histogram": dict(zip(names, data[trained].tolist())),
            "classes_covered": int((share[trained] >= covered_share(data[trained])).sum()), "classes_in_data": len(names),
            "class_kl": float(kl), "outside_share": float(1 - inside),
            "outside_histogram": {c: v for c, v, t in zip(classes, share.tolist(), trained.tolist())
                                  if not t and v > 0}}


def conditional_scores(predicted: torch.Tensor, requested: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """Share of a conditional G's samples the evaluator puts in the requested class, overall
    and per requested class (chance is 1 / number of classes)."""
    hit = (predicted == requested).double()
    per_class = {classes[k]: float(hit[requested == k].mean()) for k in requested.unique().tolist()}
    return {"conditional_accuracy": float(hit.mean()), "conditional_accuracy_per_class": per_class}
