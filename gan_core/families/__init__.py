"""Model families as the config, the reports and the run folder know them, without torch.

A family has two halves. Its *spec* (a ``Family`` here: no torch) says what the config, the
checks before any work and every reader need: its ``model.arch`` name, its own config section
(a frozen dataclass), what it cannot build, the columns it logs and how to plot and read them,
its TensorBoard tags and sample-grid layout. Its *implementation* (a ``gan_core.models``
``ModelFamily``: networks, ``training_step``, sampling) is imported only when a model is built,
from the spec's ``implementation`` ("module:Class").

Registering a family is one line: ``FAMILIES`` below for the built-in ones, or
``register(MyFamily())`` in a module of your own named in the environment variable
``GAN_WORKBOOK_FAMILIES`` (comma-separated modules, imported on first use in every process: the
sweep, its runs and their kernels), so a family can live outside gan_core.
"""
from __future__ import annotations

import importlib
import math
import os
from typing import Any, ClassVar

from .records import Description, LogSchema, Network, Panel, format_shape

PLUGINS = "GAN_WORKBOOK_FAMILIES"  # modules that register families of their own
MAX_GRID_COLUMNS = 10  # a conditional grid's columns (one row per trained class)


class Family:
    """The torch-free half of a model family; subclass it and override what differs."""

    arch: ClassVar[str] = ""  # its model.arch
    name: ClassVar[str] = ""  # in reports, e.g. "DCGAN"
    kind: ClassVar[str] = ""  # what it is, e.g. "GAN", "diffusion model"
    implementation: ClassVar[str] = ""  # "module:Class" of its ModelFamily (torch)
    section: ClassVar[str] = ""  # its config section ("" if it has no settings of its own)
    settings: ClassVar[type | None] = None  # that section's frozen dataclass, with the defaults
    channels_last: ClassVar[bool] = True  # train.channels_last auto: channels_last on the CPU (measured faster)

    def check(self, config: Any) -> str | None:
        """What this family cannot build of ``config`` (e.g. an image size), as ``key message
        (got value)``; None if it can. Called before any work."""
        return None

    def log_schema(self, config: Any) -> LogSchema:
        """The columns its ``training_step`` logs, their labels, losses and panels."""
        raise NotImplementedError

    def reading(self, stats: dict[str, float], schema: LogSchema, config: Any) -> list[str]:
        """Sentences on its losses beyond trends and spikes (``analysis.losses.loss_stats``),
        e.g. who wins in a GAN."""
        return []

    def trend_meaning(self, key: str, rise: float, config: Any) -> str:
        """What a steady rise (``rise`` > 0) or fall of logged loss ``key`` means, e.g.
        ": still learning, train longer"."""
        return ": still learning, train longer" if rise < 0 else ": training is diverging, try a lower learning rate"

    def steady(self, share: str) -> str:
        """The sentence when its losses show no warning sign over ``share`` of the log."""
        return f"no warning signs: over {share} the losses are steady, without trend or spikes"

    def tag(self, column: str, schema: LogSchema) -> str:
        """The TensorBoard tag of a logged column."""
        return f"{'loss' if column in schema.losses else 'logged'}/{schema.label(column)}"

    def grid(self, samples: int, trained_classes: int) -> tuple[int, int]:
        """(rows, columns) of the fixed-noise grid of ``samples`` images: a square, or for a
        conditional model (``trained_classes`` > 0) one row per class."""
        if trained_classes:
            return trained_classes, min(math.ceil(samples / trained_classes), MAX_GRID_COLUMNS)
        columns = math.ceil(math.sqrt(samples))
        return math.ceil(samples / columns), columns


FAMILIES: dict[str, Family] = {}
_plugins_loaded = False


def register(family: Family) -> Family:
    """Make ``family`` known by its ``arch``; returns it."""
    FAMILIES[family.arch] = family
    return family


def family_of(arch: str) -> Family:
    """The family registered for ``arch`` (the plugins of ``GAN_WORKBOOK_FAMILIES`` loaded first).

    Raises:
        KeyError: no such family, naming those there are.
    """
    known()
    if arch not in FAMILIES:
        raise KeyError(f"model.arch must be one of {', '.join(map(repr, FAMILIES))} (got {arch!r})")
    return FAMILIES[arch]


def known() -> dict[str, Family]:
    """Every registered family by arch, the plugins of ``GAN_WORKBOOK_FAMILIES`` loaded once."""
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS, "").split(","))):
            importlib.import_module(module)
    return FAMILIES


def sections() -> dict[str, Family]:
    """The families that have a config section, by section name."""
    return {f.section: f for f in known().values() if f.section}


def implementation(arch: str) -> type:
    """The ModelFamily class of ``arch`` (imports its module: torch)."""
    module, _, name = family_of(arch).implementation.partition(":")
    return getattr(importlib.import_module(module), name)


from . import ddpm, gan  # noqa: E402  (the built-in families register themselves below)

for _family in (gan.DCGANFamily(), gan.MLPFamily(), ddpm.DDPMFamily()):
    register(_family)

__all__ = ["Description", "FAMILIES", "Family", "LogSchema", "Network", "Panel", "family_of", "format_shape",
           "implementation", "known", "register", "sections"]
