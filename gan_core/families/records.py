"""The plain data a model family hands its readers, without torch: what its log.csv holds and how
to plot it (``LogSchema``, ``Panel``), and its networks in words and layer rows for the
architecture report (``Description``, ``Network``). Training writes the schema into the run
folder (``family.json``); reports read it back from there."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Panel:
    """A figure of log columns in the loss analysis: its title, columns and y-axis label."""

    title: str
    columns: tuple[str, ...]
    ylabel: str
    probability: bool = False  # values in [0, 1]: drawn with the 0.5 line and a fixed range


@dataclass(frozen=True)
class LogSchema:
    """The columns a family's ``training_step`` logs (log.csv, after epoch and step), their
    names in reports, which of them are losses, and the further panels to plot."""

    columns: tuple[str, ...]
    labels: dict[str, str]
    losses: tuple[str, ...]
    panels: tuple[Panel, ...] = ()
    last_epoch: tuple[str, ...] = ()  # columns summarised per run beside the losses (final_*)

    def label(self, column: str) -> str:
        return self.labels.get(column, column)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "LogSchema":
        panels = tuple(Panel(**{**p, "columns": tuple(p["columns"])}) for p in raw.get("panels", ()))
        return cls(tuple(raw["columns"]), dict(raw["labels"]), tuple(raw["losses"]), panels,
                   tuple(raw.get("last_epoch", ())))


@dataclass(frozen=True)
class Network:
    """One network of a family for the architecture report: layer rows (``layer_table``) and
    the labels of its two ends."""

    title: str
    rows: list[dict[str, Any]]
    input_label: str
    output_label: str


@dataclass(frozen=True)
class Description:
    """A family in words (markdown) and its networks, for the architecture report."""

    text: str
    networks: list[Network] = field(default_factory=list)


def format_shape(shape: tuple[int, ...]) -> str:
    """``(128, 14, 14)`` -> ``128×14×14``; a scalar per sample -> ``1``."""
    return "×".join(map(str, shape)) or "1"
