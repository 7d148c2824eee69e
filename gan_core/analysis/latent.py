"""Latent analysis: seeded latents, PCA, interpolation paths, pixel-space nearest neighbours.

Everything here is deterministic for fixed inputs, so a figure drawn from it (a PCA scatter,
an interpolation strip, "is this sample a copy of the training set?") does not change between
two executions of a notebook. Images are (N, C, H, W) in [-1, 1], as ``ModelFamily.generate``
returns them; latents are (N, latent_dim).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..models import ModelFamily, eval_mode

FEATURE_SIZE = 16  # image_features pools to at most this many pixels per side
PARALLEL_EPS = 1e-6  # below this sin(angle), slerp falls back to lerp


def sample_latents(n: int, latent_dim: int, seed: int) -> torch.Tensor:
    """``n`` standard normal latents from a generator seeded with ``seed``.

    A private CPU ``torch.Generator`` leaves the global RNG (and so training) untouched, and
    gives the same vectors on every device once moved there.

    Returns:
        (n, latent_dim) float32 on the CPU.
    """
    if n <= 0 or latent_dim <= 0:
        raise ValueError(f"sample_latents needs n > 0 and latent_dim > 0 (got {n}, {latent_dim})")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, latent_dim, generator=generator)


def class_samples(family: ModelFamily, name: int | str, n: int, seed: int) -> torch.Tensor:
    """``n`` images (n, C, H, W) of one trained class, by name (``"Sneaker"``) or id, from a
    conditional model and seeded latents.

    Raises:
        ConfigError: the model is unconditional, or no such trained class (naming those there are).
    """
    labels = family.labels_of(name, n)
    return family.generate(sample_latents(n, family.latent_dim, seed), labels)


def samples_per_class(family: ModelFamily, n: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """``n`` images of each trained class from a conditional model, class by class, the same
    ``n`` latents in every class (so column j shows one z across classes), and the class names."""
    ids = family.label.class_ids.cpu()
    z = sample_latents(n, family.latent_dim, seed)
    return family.generate(z.repeat(len(ids), 1), ids.repeat_interleave(n)), family.trained_classes()


def pca(x: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Principal components of the rows of ``x`` (N, D), by an exact SVD of the centred data.

    Each component's sign is chosen so that its largest-magnitude entry is positive: an SVD
    may return either sign, and a PCA scatter should not mirror between runs.

    Returns:
        projected (N, k), components (k, D) with orthonormal rows, mean (D,),
        explained_variance_ratio (k,): each component's share of the total variance
        (all zero when the rows are identical).
    """
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"pca needs a (N, D) matrix with N >= 2 (got shape {tuple(x.shape)})")
    if not 1 <= k <= min(x.shape):
        raise ValueError(f"pca: k must be in 1..min(N, D) = {min(x.shape)} (got {k})")
    dtype = x.dtype if x.is_floating_point() else torch.float32
    data = x.double()  # float64: stable ratios and sign choice; SVD cost is O(N D min(N, D))
    mean = data.mean(0)
    centred = data - mean
    # full_matrices=False and not torch.pca_lowrank: the randomised solver varies with the RNG
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)  # s (min(N,D),), vh (min(N,D), D)
    components = vh[:k]
    biggest = components.abs().argmax(1, keepdim=True)  # first index on ties, so deterministic
    signs = components.gather(1, biggest).sign()
    components = components * torch.where(signs == 0, 1.0, signs)
    variance = s.square()
    total = variance.sum()
    ratio = variance[:k] / total if total > 0 else torch.zeros_like(variance[:k])
    projected = centred @ components.T  # (N, k)
    return projected.to(dtype), components.to(dtype), mean.to(dtype), ratio.to(dtype)


def _path_inputs(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Interpolation weights t (steps, 1) from 0 to 1, after checking the endpoints."""
    if z0.ndim != 1 or z0.shape != z1.shape:
        raise ValueError(f"interpolation needs two (D,) vectors of the same size "
                         f"(got {tuple(z0.shape)} and {tuple(z1.shape)})")
    if steps < 2:
        raise ValueError(f"interpolation needs steps >= 2 to include both ends (got {steps})")
    return torch.linspace(0, 1, steps, dtype=torch.float64, device=z0.device)[:, None]


def lerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Straight line from ``z0`` to ``z1`` (both (D,)), ends included: (steps, D).

    For Gaussian latents the midpoint is shorter than either end (by about 1/sqrt(2) for
    independent ones), i.e. off the shell where the prior puts its mass (White 2016).
    """
    t = _path_inputs(z0, z1, steps)
    path = (1 - t) * z0.double() + t * z1.double()
    return path.to(z0.dtype)


def slerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Spherical interpolation from ``z0`` to ``z1`` (both (D,)), ends included: (steps, D).

    Shoemake 1985 ("Animating rotation with quaternion curves"), proposed for GAN latents by
    White 2016, "Sampling Generative Networks", https://arxiv.org/abs/1609.04468:
    ``sin((1-t) w)/sin w * z0 + sin(t w)/sin w * z1`` with w the angle between them. Vectors of
    equal norm stay at that norm. (Nearly) parallel or antiparallel vectors, or a zero vector,
    have no unique great circle: the path is then the straight line, finite and never NaN.
    """
    t = _path_inputs(z0, z1, steps)
    a, b = z0.double(), z1.double()
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0:
        return lerp(z0, z1, steps)
    ua, ub = a / na, b / nb
    # 2*atan2(|ua - ub|, |ua + ub|) is accurate at every angle; acos(dot) is not near 0 and pi
    omega = 2 * torch.atan2((ua - ub).norm(), (ua + ub).norm())
    sin_omega = torch.sin(omega)
    if sin_omega < PARALLEL_EPS:
        return lerp(z0, z1, steps)
    path = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / sin_omega
    return path.to(z0.dtype)


@torch.no_grad()
def interpolate(generator_fn: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor, z1: torch.Tensor,
                steps: int, mode: str = "slerp") -> torch.Tensor:
    """Images along a latent path from ``z0`` to ``z1`` (both (D,)).

    Args:
        generator_fn: latents (B, D) -> images (B, C, H, W), e.g. ``ModelFamily.generate``. A bare
            ``nn.Module`` is run in eval mode (BatchNorm's running statistics, not the
            statistics of the path itself) on its own device, then put back.
        mode: ``"slerp"`` (default, White 2016) or ``"linear"``.

    Returns:
        (steps, C, H, W), the first image from ``z0`` and the last from ``z1``.
    """
    paths = {"slerp": slerp, "linear": lerp}
    if mode not in paths:
        raise ValueError(f"interpolate: mode must be one of {sorted(paths)} (got {mode!r})")
    z = paths[mode](z0, z1, steps)  # (steps, D)
    if not isinstance(generator_fn, nn.Module):
        images = generator_fn(z)
    else:
        with eval_mode(generator_fn):
            images = generator_fn(z.to(next(generator_fn.parameters(), z).device))
    if images.ndim != 4 or len(images) != steps:
        raise ValueError(f"interpolate: generator_fn returned shape {tuple(images.shape)}, "
                         f"expected ({steps}, C, H, W)")
    return images


def image_features(images: torch.Tensor, size: int = FEATURE_SIZE) -> torch.Tensor:
    """A feature vector per image for PCA when no evaluator network is at hand.

    Images are average-pooled to at most ``size`` x ``size`` pixels, then flattened. Pooling
    keeps the coarse layout (silhouette, where the bright parts are) that tells garments or
    digits apart, and averages away pixel-level texture and one-pixel shifts, which otherwise
    carry much of the variance of GAN samples without meaning much. It also bounds the
    dimension (16x16x3 = 768 for RGB 64 or 128 px images, not 49,152) so the SVD stays cheap.
    Deterministic: a fixed average, no learned weights, no randomness.

    Returns:
        (N, C * min(H, size) * min(W, size)) float32.
    """
    if images.ndim != 4:
        raise ValueError(f"image_features needs images (N, C, H, W) (got shape {tuple(images.shape)})")
    h, w = images.shape[-2:]
    x = images.float()
    if h > size or w > size:
        x = F.adaptive_avg_pool2d(x, (min(h, size), min(w, size)))  # (N, C, <=size, <=size)
    return x.flatten(1)


def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, k: int = 1,
                       batch: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest images of ``reference`` (N, C, H, W) to each query (Q, C, H, W), by L2 in pixels.

    ``reference`` is read ``batch`` images at a time, keeping a running top-k, so memory is
    O(batch * (C*H*W + Q)) whatever N (a whole training set, possibly on the GPU). Ranking uses
    ``torch.cdist``'s fast matrix-product form; the distances returned are then recomputed
    directly, so an exact copy of a training image is at distance 0, not at rounding error.

    Returns:
        distances (Q, k), nearest first, and indices (Q, k) into ``reference``, both on
        ``reference``'s device.
    """
    if queries.ndim != 4 or reference.ndim != 4 or queries.shape[1:] != reference.shape[1:]:
        raise ValueError(f"nearest_neighbours needs images of one shape (got queries "
                         f"{tuple(queries.shape)}, reference {tuple(reference.shape)})")
    if not 1 <= k <= len(reference) or batch < 1:
        raise ValueError(f"nearest_neighbours needs 1 <= k <= {len(reference)} and batch >= 1 "
                         f"(got k={k}, batch={batch})")
    device = reference.device
    q = queries.to(device).flatten(1).float()  # (Q, P)
    best_d = torch.empty(len(q), 0, device=device)
    best_i = torch.empty(len(q), 0, dtype=torch.long, device=device)
    for start in range(0, len(reference), batch):
        chunk = reference[start:start + batch].flatten(1).float()  # (b, P)
        d = torch.cdist(q, chunk)  # (Q, b)
        idx = torch.arange(start, start + len(chunk), device=device).expand(len(q), -1)
        cand_d, cand_i = torch.cat([best_d, d], 1), torch.cat([best_i, idx], 1)
        best_d, pos = cand_d.topk(min(k, cand_d.shape[1]), dim=1, largest=False)
        best_i = cand_i.gather(1, pos)
    exact = (q[:, None] - reference[best_i].flatten(2).float()).norm(dim=2)  # (Q, k)
    exact, order = exact.sort(dim=1, stable=True)
    return exact, best_i.gather(1, order)


def choose_extremes(projected: torch.Tensor, n: int = 3) -> torch.Tensor:
    """Indices of ``n`` spread-out rows of ``projected`` (N, d), e.g. to mark on a PCA plot.

    Farthest-point traversal (Gonzalez 1985, "Clustering to minimize the maximum intercluster
    distance"): start at the point farthest from the centroid, then repeatedly add the point
    farthest from all chosen so far. Ties go to the lowest index, so the choice is deterministic.

    Returns:
        (n,) int64, distinct indices in the order chosen.
    """
    if projected.ndim != 2 or not 1 <= n <= len(projected):
        raise ValueError(f"choose_extremes needs (N, d) points and 1 <= n <= N "
                         f"(got shape {tuple(projected.shape)}, n={n})")
    p = projected.double()
    # torch.argmax returns the first maximal index, which makes ties deterministic
    chosen = [int((p - p.mean(0)).norm(dim=1).argmax())]
    nearest = (p - p[chosen[0]]).norm(dim=1)  # (N,) distance to the closest chosen point
    for _ in range(n - 1):
        nearest[chosen] = -1.0  # never pick a point twice, even among duplicates
        chosen.append(int(nearest.argmax()))
        nearest = torch.minimum(nearest, (p - p[chosen[-1]]).norm(dim=1))
    return torch.tensor(chosen, dtype=torch.long)
