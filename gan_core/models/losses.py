"""GAN losses on discriminator logits.

Every loss takes raw logits, never probabilities: ``binary_cross_entropy_with_logits`` is
stable and safe under autocast, where Sigmoid + BCELoss is not.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import LossConfig


class GANLoss:
    """D and G objectives of one kind, with one-sided label smoothing for real images."""

    def __init__(self, config: LossConfig):
        self.kind, self.real_label = config.kind, config.real_label

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Discriminator loss on real and (detached) fake logits, each (B,)."""
        real_target = torch.full_like(real_logits, self.real_label)
        fake_target = torch.zeros_like(fake_logits)
        if self.kind == "bce":  # -log D(x) - log(1 - D(G(z))), as pytorch/examples sums them
            return (F.binary_cross_entropy_with_logits(real_logits, real_target)
                    + F.binary_cross_entropy_with_logits(fake_logits, fake_target))
        if self.kind == "wgan-gp":  # the critic's Wasserstein estimate; the penalty is added by the trainer
            return fake_logits.mean() - real_logits.mean()
        if self.kind == "hinge":  # Lim & Ye 2017, https://arxiv.org/abs/1705.02894; Miyato et al. 2018
            return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
        # LSGAN (Mao et al. 2017, https://arxiv.org/abs/1611.04076), a=0, b=1: 1/2 E[(D(x)-b)^2] + 1/2 E[(D(G(z))-a)^2]
        return 0.5 * (F.mse_loss(real_logits, real_target) + F.mse_loss(fake_logits, fake_target))

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Generator loss on fake logits (B,): non-saturating -log D(G(z)), LSGAN's c=1, or -D(G(z))."""
        if self.kind in ("hinge", "wgan-gp"):
            return -fake_logits.mean()
        target = torch.ones_like(fake_logits)
        if self.kind == "bce":
            return F.binary_cross_entropy_with_logits(fake_logits, target)
        return 0.5 * F.mse_loss(fake_logits, target)

    def prob(self, logits: torch.Tensor) -> torch.Tensor:
        """D's output read as 'probability of real': the raw output for LSGAN (targets 0 and 1),
        the sigmoid of the logit otherwise (hinge's decision boundary is also 0)."""
        return logits if self.kind == "mse" else torch.sigmoid(logits)


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018, https://arxiv.org/abs/1801.04406): E[||grad_x D(x)||^2] on real
    images (B, ...) that require grad, from D's logits (B,) on them; kept in the graph."""
    grad, = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.flatten(1).square().sum(1).mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017, https://arxiv.org/abs/1704.00028):
    E[(||grad_x critic(x)||_2 - 1)^2] on random interpolates x of real and fake images (B, ...)."""
    eps = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mixed).float().sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
