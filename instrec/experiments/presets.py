"""What the paper ran, at three scales: experiments, their rows (`Recipe`) and presets.

An experiment (Table II, Table III, Fig. 3, Fig. 4, Fig. 7, Table IV) is a set of rows;
a row is a `Recipe` (initial weights, backbone, share of the fine-tuning data) run once
per seed. A `Preset` is a scale: its training configs and how much data it renders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from instrec.errors import InstrecError
from instrec.model.zoo import MODEL_NAMES

EXPERIMENTS = ("table2", "fig3", "table3", "fig4", "fig7", "table4")
# Table III: pre-training augmentations switched off, as config overrides
ABLATIONS: dict[str, tuple[str, ...]] = {
    "all": (),
    "no-mixup": ("augment.mixup_p=0",),
    "no-effects": ("augment.effects_ratio=0",),
    "no-both": ("augment.mixup_p=0", "augment.effects_ratio=0"),
    "no-concat": ("augment.concat_p=0",),
}
DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)  # Fig. 4: shares of the IRMAS training songs


@dataclass(frozen=True)
class Preset:
    """A scale: the three training configs, how much data to render, how much real data
    to use (a `prepare --limit` per dataset; None: all of it)."""

    name: str
    pretrain: str
    finetune: str
    scratch: str
    notes: dict[str, Any]  # instrec.synth.notes.render_notes options
    music: dict[str, Any]  # render_ensembles options
    limits: dict[str, int | None]
    about: str


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        "tiny",
        "tiny_pretrain",
        "tiny_finetune",
        "tiny_scratch",
        notes={"max_instruments": 24, "pitches": 24, "velocities": (70, 110)},
        music={"train_songs": 66, "test_songs": 30, "train_excerpts": 4, "test_excerpts": 2},
        limits={"nsynth": 3000, "irmas-train": 300, "irmas-test": 100},
        about="CPU, minutes: a cut-down ShaResNet18 (133 K parameters), 4 epochs, about "
        "a thousand clips",
    ),
    "small": Preset(
        "small",
        "small_pretrain",
        "small_finetune",
        "small_scratch",
        notes={"max_instruments": 80, "pitches": 16, "velocities": (60, 110)},
        music={"train_songs": 110, "test_songs": 40, "train_excerpts": 6, "test_excerpts": 2},
        limits={"nsynth": 30000, "irmas-train": 1500, "irmas-test": 500},
        about="CPU, about an hour per seed of Table II (64 min on 2 cores): ShaResNet18 at "
        "the paper's width with 64 sinc filters, 10 + 15 epochs, about 2,200 notes and "
        "1,600 clips",
    ),
    "paper": Preset(
        "paper",
        "pretrain",
        "finetune",
        "scratch",
        notes={"max_instruments": None, "pitches": None, "velocities": (25, 50, 75, 100, 127)},
        music={"train_songs": 1200, "test_songs": 400, "train_excerpts": 6, "test_excerpts": 3},
        limits={"nsynth": None, "irmas-train": None, "irmas-test": None},
        about="GPU: the paper's recipe (ResNet34, 30 + 40 epochs, batch 128 / 64)",
    ),
}


@dataclass(frozen=True)
class Recipe:
    """One row of an experiment before seeds: how the fine-tuned model is made."""

    pretrain: str | None  # the pre-training's augmentations (an ABLATIONS key); None: random
    model: str  # backbone (instrec.model.zoo name)
    fraction: float = 1.0  # share of the fine-tuning songs

    @property
    def init(self) -> str:
        return "random" if self.pretrain is None else self.pretrain


def experiment_rows(
    experiment: str, model: str, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> list[Recipe]:
    """The recipes an experiment compares; `model` is the preset's backbone."""
    if experiment in ("table2", "fig3", "table4"):
        return [Recipe(None, model), Recipe("all", model)]
    if experiment == "table3":
        return [Recipe(name, model) for name in ABLATIONS]
    if experiment == "fig4":
        return [Recipe(init, model, f) for init in (None, "all") for f in sorted(fractions)]
    if experiment == "fig7":
        return [Recipe("all", name) for name in MODEL_NAMES]
    raise InstrecError(f"unknown experiment {experiment!r} (known: {', '.join(EXPERIMENTS)})")
