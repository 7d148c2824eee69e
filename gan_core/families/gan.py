"""The GAN families without torch: their settings, checks, log columns and how to read them.
Networks and training are ``gan_core.models.gan``, ``dcgan`` and ``mlp``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from . import Family
from .records import LogSchema, Panel

# the columns of a GAN's log.csv, in order: see models.gan.GAN.training_step
GAN_COLUMNS = ("loss_d", "loss_g", "d_real", "d_fake", "d_fake_g", "acc_real", "acc_fake")
GAN_LABELS = {"loss_d": "D loss", "loss_g": "G loss", "d_real": "D(x), real", "d_fake": "D(G(z)), D step",
              "d_fake_g": "D(G(z)), G step", "acc_real": "real accuracy", "acc_fake": "fake accuracy"}
# WGAN-GP's D is a critic: its output is a score, not a probability, and its loss estimates
# minus the Wasserstein distance (plus the gradient penalty)
CRITIC_LABELS = {"loss_d": "critic loss", "d_real": "σ(critic(x)), real",
                 "d_fake": "σ(critic(G(z))), critic step", "d_fake_g": "σ(critic(G(z))), G step"}
# thresholds of the reading, for losses on logits as in models.losses (D's outputs are probabilities)
D_WINS_LOSS = 0.1  # mean D loss below this (BCE at chance is 2 ln 2 = 1.39): D classifies all but perfectly
D_WINS_PROB = 0.1  # D(x) > 1 - this and D(G(z)) < this: D separates real from fake
G_FOOLS_PROB = 0.9  # D(G(z)) in the G step above this: D no longer tells fakes apart
CHANCE_PROB = 0.1  # D(x) and D(G(z)) both within this of 0.5: D at chance


class GANFamily(Family):
    """What every GAN shares: a generator and a discriminator (a critic with WGAN-GP)."""

    kind = "GAN"

    def check(self, config: Any) -> str | None:
        if config.loss.kind == "wgan-gp" and getattr(config.family, "d_norm", "none") == "batch":
            return (f"{self.section}.d_norm must be layer or none with wgan-gp (BatchNorm mixes samples, the penalty "
                    f"is per sample) (got 'batch')")
        return None

    def log_schema(self, config: Any) -> LogSchema:
        critic = config.loss.kind == "wgan-gp"
        labels = {**GAN_LABELS, **CRITIC_LABELS} if critic else GAN_LABELS
        outputs = Panel("What the critic says" if critic else "What D says", ("d_real", "d_fake", "d_fake_g"),
                        "sigmoid of the critic's score" if critic else "D output (probability)", probability=True)
        accuracy = Panel("D accuracy", ("acc_real", "acc_fake"), "accuracy", probability=True)
        return LogSchema(GAN_COLUMNS, labels, ("loss_d", "loss_g"), (outputs, accuracy),
                         last_epoch=("acc_real", "acc_fake"))

    def reading(self, stats: dict[str, float], schema: LogSchema, config: Any) -> list[str]:
        """Who wins: from the D loss level and D's outputs over the tail (a critic's loss has
        no chance level: its negative estimates the Wasserstein distance)."""
        if "mean_loss_d" not in stats:
            return []
        share = f"the last {stats['tail']:.0%} of steps"
        if config.loss.kind == "wgan-gp":
            return [f"critic loss {stats['mean_loss_d']:.3g} over {share}: minus the critic's estimate of the "
                    "Wasserstein distance (plus the gradient penalty); it should approach 0 from below as G improves"]
        d, real, fake = stats["mean_loss_d"], stats["mean_d_real"], stats["mean_d_fake"]
        said = []
        if d < D_WINS_LOSS:
            said.append(f"D loss fell to ~0 ({d:.2g}): the discriminator wins; G's gradients vanish, "
                        "so expect little further progress and check the samples for collapse")
        elif real > 1 - D_WINS_PROB and fake < D_WINS_PROB:
            said.append(f"D separates real from fake (D(x) ≈ {real:.2f}, D(G(z)) ≈ {fake:.2f}): "
                        "the discriminator wins")
        elif abs(real - 0.5) < CHANCE_PROB and abs(fake - 0.5) < CHANCE_PROB:
            said.append(f"D is near chance (D(x) ≈ {real:.2f}, D(G(z)) ≈ {fake:.2f}): the ideal "
                        "equilibrium, or a D that stopped learning; judge by the samples")
        if stats["mean_d_fake_g"] > G_FOOLS_PROB:
            said.append(f"D(G(z)) ≈ {stats['mean_d_fake_g']:.2f} in the G step: G fools D entirely; "
                        "D may be too weak")
        return said

    def trend_meaning(self, key: str, rise: float, config: Any) -> str:
        d_name = "the critic" if config.loss.kind == "wgan-gp" else "D"
        if key == "loss_g":
            return f": {d_name} is overpowering G" if rise > 0 else ": still learning, train longer"
        if key == "loss_d" and rise > 0:
            return f": G is catching up with {d_name}"
        return ""

    def steady(self, share: str) -> str:
        return (f"no warning signs: over {share} the losses are steady, without trend or spikes, "
                "and D neither wins nor gives up")

    def tag(self, column: str, schema: LogSchema) -> str:
        return f"{'loss' if column in schema.losses else 'discriminator'}/{schema.label(column)}"


@dataclass(frozen=True)
class DCGANSettings:
    """The ``dcgan:`` section (Radford et al. 2015)."""

    ngf: int = 64  # generator width (channels of its last hidden layer)
    ndf: int = 64  # discriminator width (channels of its first layer)
    d_norm: Literal["batch", "layer", "none"] = "batch"  # normalization in D (wgan-gp: layer or none)
    spectral_norm: bool = False  # spectral normalization of D's layers (Miyato et al. 2018)


SIZE_RULE = "a size a DCGAN can build: 4·2^n or 7·2^n pixels with n >= 2, e.g. 28, 32, 64, 128 or 256"


def dcgan_base_size(image_size: int) -> int | None:
    """Spatial size of the DCGAN's first feature map (4 or 7), or None if it cannot build the size.

    A DCGAN doubles the size per layer, so an image of 4·2^n or 7·2^n pixels (n >= 2) works:
    28 (MNIST), 32, 64, 128, 256.
    """
    for base in (4, 7):
        size = base * 4
        while size < image_size:
            size *= 2
        if size == image_size:
            return base
    return None


class DCGANFamily(GANFamily):
    arch, name, section, settings = "dcgan", "DCGAN", "dcgan", DCGANSettings
    implementation = "gan_core.models.dcgan:DCGAN"

    def check(self, config: Any) -> str | None:
        s, size = config.family, config.data.image_size
        for key in ("ngf", "ndf"):
            if getattr(s, key) <= 0:
                return f"dcgan.{key} must be > 0 (got {getattr(s, key)})"
        if dcgan_base_size(size) is None:
            return f"data.image_size must be {SIZE_RULE} with model.arch dcgan (got {size})"
        return super().check(config)


@dataclass(frozen=True)
class MLPSettings:
    """The ``mlp:`` section: a fully connected GAN as course reports build it."""

    g_hidden: tuple[int, ...] = (256, 512, 1024)  # generator layer widths, z side first
    d_hidden: tuple[int, ...] = (512, 256)  # discriminator layer widths, image side first
    d_dropout: float = 0.0  # dropout after each discriminator layer
    spectral_norm: bool = False  # spectral normalization of D's layers (Miyato et al. 2018)


class MLPFamily(GANFamily):
    arch, name, section, settings = "mlp", "MLP GAN", "mlp", MLPSettings
    implementation = "gan_core.models.mlp:MLPGAN"
    channels_last = False  # no convolution: its layers flatten the images

    def check(self, config: Any) -> str | None:
        s = config.family
        for key in ("g_hidden", "d_hidden"):
            widths = getattr(s, key)
            if not widths or any(w <= 0 for w in widths):
                return f"mlp.{key} must be widths > 0 (got {list(widths)})"
        if not 0.0 <= s.d_dropout < 1.0:
            return f"mlp.d_dropout must be in [0, 1) (got {s.d_dropout})"
        return super().check(config)
