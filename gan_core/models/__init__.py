"""Model families' implementations (torch): networks, ``training_step`` and sampling.

Which families exist, and what the config and the reports know of them without torch, is
``gan_core.families``: its registry names each implementation ("module:Class"), imported here
only when a model is built. To add a family: a ``ModelFamily`` subclass (its networks,
``training_step``, ``summary`` and ``describe``; a GAN subclasses ``GAN`` and builds its pair of
networks) and a ``families.Family`` spec registered by one line (docs/reference/architecture.md, Adding a model family).
The trainer, the scores and every notebook then run it without knowing which it is.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .. import families
from ..config import Config, ConfigError, from_dict
from .base import Gallery, ModelFamily, Precision, count_parameters, eval_mode
from .checkpoint import CheckpointError, read_checkpoint
from .gan import GAN, dcgan_init


def family_of(config: Config) -> type[ModelFamily]:
    """The implementation class of ``config.model.arch``."""
    return families.implementation(config.model.arch)


def build(config: Config, shape: Sequence[int], classes: Sequence[str] = (),
          precision: Precision | None = None) -> ModelFamily:
    """The family of ``config.model.arch`` for images of ``shape`` (C, H, W) and the data set's
    class names ``classes`` (in id order)."""
    return family_of(config)(config, shape, classes, precision)


def load_family(checkpoint: str | Path, device: str = "cpu") -> tuple[ModelFamily, Config]:
    """The family of a checkpoint (last.pt or an epoch snapshot) with its weights (and its
    average, which samples come from), ready to sample, and its config.

    Raises:
        CheckpointError: a missing, unreadable or incomplete checkpoint, or one whose config
            no longer validates (named in the message).
    """
    state = read_checkpoint(checkpoint, keys=("config", "generator", "image_shape"))
    try:
        config = from_dict(state["config"], str(checkpoint))
    except ConfigError as err:
        raise CheckpointError(f"{err} (a checkpoint of an older gan_core?)") from None
    family = build(config, state["image_shape"], state.get("classes", ()), Precision(device))
    family.load_state_dict(state, sampling_only=True)
    return family, config


__all__ = ["CheckpointError", "GAN", "Gallery", "ModelFamily", "Precision", "build", "count_parameters",
           "dcgan_init", "eval_mode", "family_of", "load_family", "read_checkpoint"]
