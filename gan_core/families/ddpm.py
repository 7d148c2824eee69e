"""The DDPM family without torch: its ``diffusion:`` settings, checks and its one loss.
The U-Net, the schedule and sampling are ``gan_core.models.ddpm`` and ``diffusion``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from . import Family
from .records import LogSchema

LOSS_LABEL = "denoising loss (MSE of the noise)"


@dataclass(frozen=True)
class DiffusionSettings:
    """The ``diffusion:`` section: a U-Net trained on the MSE of the noise (Ho et al. 2020); it
    uses optim_g."""

    timesteps: int = 1000  # T; course reports on Fashion-MNIST use 150
    schedule: Literal["linear", "cosine"] = "linear"  # linear: Ho's betas scaled by 1000/T; cosine: Nichol & Dhariwal
    base_width: int = 32  # U-Net channels at full resolution
    width_mults: tuple[int, ...] = (1, 2, 2)  # per resolution; len - 1 halvings (28 -> 14 -> 7)
    attention: bool = False  # self-attention at the lowest resolution
    dropout: float = 0.0
    sample_steps: int | None = None  # None: all T steps (ancestral DDPM); fewer: DDIM with this many
    eta: float | None = None  # DDIM's eta; None: 1 with all steps (DDPM), 0 with fewer (DDIM)
    p_uncond: float = 0.1  # conditional: share of labels dropped while training (classifier-free guidance)
    guidance: float = 0.0  # conditional: guidance weight w when sampling; 0: off


class DDPMFamily(Family):
    arch, name, kind, section, settings = "ddpm", "DDPM", "diffusion model", "diffusion", DiffusionSettings
    implementation = "gan_core.models.ddpm:DDPM"
    channels_last = False  # its GroupNorm prefers the default layout (docs/reference/performance.md)

    def check(self, config: Any) -> str | None:
        d, size = config.family, config.data.image_size
        rules = [
            (len(d.width_mults) > 0 and all(m > 0 for m in d.width_mults), "diffusion.width_mults",
             "must be multipliers > 0", list(d.width_mults)),
            (d.base_width > 0, "diffusion.base_width", "must be > 0", d.base_width),
            (d.timesteps > 20 or (d.schedule == "cosine" and d.timesteps > 0), "diffusion.timesteps",
             "must be > 20 for the linear schedule (its betas scale by 1000/T)", d.timesteps),
            (d.sample_steps is None or 1 <= d.sample_steps <= d.timesteps, "diffusion.sample_steps",
             f"must be in [1, diffusion.timesteps = {d.timesteps}] or null", d.sample_steps),
            (d.eta is None or d.eta >= 0, "diffusion.eta", "must be >= 0 or null", d.eta),
            (0.0 <= d.p_uncond < 1.0, "diffusion.p_uncond", "must be in [0, 1)", d.p_uncond),
            (0.0 <= d.dropout < 1.0, "diffusion.dropout", "must be in [0, 1)", d.dropout),
            (d.guidance >= 0, "diffusion.guidance", "must be >= 0", d.guidance),
            (d.guidance == 0 or (config.model.conditional and d.p_uncond > 0), "diffusion.guidance",
             "needs model.conditional: true and diffusion.p_uncond > 0 (the unconditional model it mixes in)",
             d.guidance),
            (size % 2 ** (len(d.width_mults) - 1) == 0, "diffusion.width_mults",
             f"must allow halving data.image_size = {size} {len(d.width_mults) - 1} times with model.arch ddpm",
             list(d.width_mults)),
        ]
        return next((f"{key} {rule} (got {value!r})" for ok, key, rule, value in rules if not ok), None)

    def log_schema(self, config: Any) -> LogSchema:
        return LogSchema(("loss",), {"loss": LOSS_LABEL}, ("loss",))

    def steady(self, share: str) -> str:
        return f"no warning signs: over {share} the denoising loss is steady, without trend or spikes"
