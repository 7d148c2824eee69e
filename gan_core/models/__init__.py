"""Model families, registered by ``model.arch``.

To add a family: write one module with a ``ModelFamily`` subclass (its networks, ``check`` for
the image sizes it builds, ``log_schema``, ``training_step``, ``summary`` and ``describe``; a GAN
subclasses ``GAN`` and builds its pair of networks), add it to ``FAMILIES`` below and its
arch name to ``ModelConfig.arch`` in ``gan_core.config``, and test it in tests/test_families.py.
The trainer, the scores and every notebook then run it without knowing which it is.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config import Config, ConfigError, from_dict
from .base import (EMA, Description, Gallery, LogSchema, ModelFamily, Network, Panel, Precision,
                   count_parameters, eval_mode)
from .checkpoint import CheckpointError, read_checkpoint
from .dcgan import DCGAN
from .ddpm import DDPM
from .gan import GAN, dcgan_init
from .mlp import MLPGAN

FAMILIES: dict[str, type[ModelFamily]] = {arch: family for family in (DCGAN, MLPGAN, DDPM)
                                          for arch in family.archs}


def family_of(config: Config) -> type[ModelFamily]:
    """The family class of ``config.model.arch``."""
    return FAMILIES[config.model.arch]


def check(config: Config, source: str = "config") -> Config:
    """Refuse what the config's family cannot build (e.g. its image size), naming ``source``;
    returns the config."""
    family_of(config).check(config, source)
    return config


def build(config: Config, shape: Sequence[int], classes: Sequence[str] = (),
          precision: Precision | None = None) -> ModelFamily:
    """The family of ``config.model.arch`` for images of ``shape`` (C, H, W) and the data set's
    class names ``classes`` (in id order)."""
    return family_of(check(config))(config, shape, classes, precision)


def log_schema(config: Config) -> LogSchema:
    """The columns of a run's log.csv and how to name and plot them."""
    return family_of(config).log_schema(config)


def load_family(checkpoint: str | Path, device: str = "cpu") -> tuple[ModelFamily, Config]:
    """The family of a checkpoint (last.pt or an epoch snapshot) with its weights (and its EMA,
    which samples come from), ready to sample, and its config.

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


__all__ = ["CheckpointError", "DCGAN", "DDPM", "Description", "EMA", "FAMILIES", "GAN", "Gallery", "LogSchema",
           "MLPGAN", "ModelFamily", "Network", "Panel", "Precision", "build", "check", "count_parameters",
           "dcgan_init", "eval_mode", "family_of", "load_family", "log_schema", "read_checkpoint"]
