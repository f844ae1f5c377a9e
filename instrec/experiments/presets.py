"""What the paper ran, at three scales: experiments, their rows (`Recipe`) and presets.

An experiment (Table II, Table III, Fig. 3, Fig. 4, Fig. 7, Table IV, and beyond the
paper `widths`: Fig. 7's ShaResNets made wider, and `init`: initialisations at equal
pre-training compute) is a set of rows; a row is a `Recipe` (initial weights, backbone,
its width, share of the fine-tuning data) run once per seed. A `Preset` is a scale: its
training configs and how much data it renders; the `ship` preset is the shipped model's
recipe, whose one experiment (`ship`) is the row of the initialisation it names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from instrec.errors import InstrecError
from instrec.model.zoo import MODEL_NAMES

EXPERIMENTS = ("table2", "fig3", "table3", "fig4", "fig7", "widths", "table4", "init")
# The shipped model's recipe: one row, the preset's chosen initialisation (Preset.ship_init)
SHIP = "ship"
KNOWN_EXPERIMENTS = (*EXPERIMENTS, SHIP)
# `widths`: these backbones at these multiples of the preset's width, on the same data
WIDE_MODELS = ("sharesnet18", "sharesnet34")
WIDTHS = (1.0, 2.0, 4.0)
# The paper's future work, measured: random / notes / rendered music / notes then music,
# every pre-training the same number of optimiser steps; then Fig. 4's curve (one seed)
# for the best two, planned once their scores are in (a follow-up of "init")
INIT_CURVE = "init-fractions"
CURVE_ROWS = 2
PRETRAIN_DATA = ("notes", "music", "notes+music")  # what a Recipe pre-trains on
INITS = ("random", *PRETRAIN_DATA)  # the initialisations `init` compares
# Table III: pre-training augmentations switched off, as config overrides
ABLATIONS: dict[str, tuple[str, ...]] = {
    "all": (),
    "no-mixup": ("augment.mixup_p=0",),
    "no-effects": ("augment.effects_ratio=0",),
    "no-both": ("augment.mixup_p=0", "augment.effects_ratio=0"),
    "no-concat": ("augment.concat_p=0",),
}
DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)  # Fig. 4: shares of the IRMAS training songs
# every source and timbre variation installed here: pre-training should hear many timbres
CORPUS_SOURCES: dict[str, Any] = {"sources_used": ("all",), "timbre_options": ("all",)}


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
    pretrain_music: str = "pretrain_music"  # the pre-training config on rendered music
    # instrec.synth.corpus.render_corpus options: at least as many training clips as the
    # note pre-training's clips x epochs, so the music pre-training sees each clip once
    corpus: dict[str, Any] = field(default_factory=dict)
    cross_source_songs: int = 80  # songs of the cross-source benchmark (half pick thresholds)
    experiments: tuple[str, ...] = EXPERIMENTS  # what `reproduce --preset NAME` runs
    ship_init: str = "random"  # the `ship` row's initialisation (an INITS name)


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
        pretrain_music="tiny_pretrain_music",
        corpus={"renditions": 500, **CORPUS_SOURCES},  # 4 x 31 steps x 32 = 3,968 clips
        cross_source_songs=24,
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
        pretrain_music="small_pretrain_music",
        corpus={"renditions": 2800, **CORPUS_SOURCES},  # 10 x 34 steps x 64 = 21,760 clips
    ),
    "ship": Preset(
        "ship",
        "ship_pretrain",
        "ship_finetune",
        "ship_scratch",
        notes={"max_instruments": 160, "pitches": 16, "velocities": (60, 110)},
        music={
            "train_songs": 880,
            "test_songs": 40,
            "train_excerpts": 6,
            "test_excerpts": 2,
            "sources_used": ("all",),
            # per-part timbre variation and performance (dynamics, timing, pedal, comping,
            # grooves): at this budget they helped across sources, most on songs rendered
            # with every ingredient (benchmarks/results/ship_levers), where 360 steps were
            # too few for them
            "timbre_options": ("all",),
            "performance_options": ("all",),
        },
        limits={"nsynth": 60000, "irmas-train": 6000, "irmas-test": 500},
        about="CPU, about 1.5 hours: the shipped model's recipe: the small preset's model "
        "(bf16 autocast, channels-last) pre-trained on rendered music, fine-tuned on eight "
        "times its songs from every installed source, each part's timbre and playing varied, "
        "for 40 epochs with mixup and effects; "
        "the small preset's cross-source benchmark",
        pretrain_music="ship_pretrain_music",
        # 20 x 68 steps x 64 = 87,040 clips of pre-training: 4 epochs of 340 steps over its
        # 35,093 training clips (as the recorded run had them: about 2.5 passes)
        corpus={"renditions": 4000, **CORPUS_SOURCES},
        experiments=(SHIP,),
        # the init grid's best cross-source F1 at its valid threshold (small preset, 2 seeds:
        # 0.500 ± 0.011 against 0.479 ± 0.040 from random weights; within the noise)
        ship_init="music",
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
        corpus={"renditions": 10000, **CORPUS_SOURCES},  # repeated: NSynth is 290 K notes
    ),
}


@dataclass(frozen=True)
class Recipe:
    """One row of an experiment before seeds: how the fine-tuned model is made."""

    pretrain: str | None  # the pre-training's augmentations (an ABLATIONS key); None: random
    model: str  # backbone (instrec.model.zoo name)
    fraction: float = 1.0  # share of the fine-tuning songs
    data: str = "notes"  # what it pre-trains on (PRETRAIN_DATA)
    width: float = 1.0  # times the preset's model width, in pre-training and fine-tuning

    @property
    def backbone(self) -> str:
        """The backbone as cell labels name it: the model, then its width unless 1."""
        return self.model if self.width == 1 else f"{self.model}x{self.width:g}"

    @property
    def init(self) -> str:
        """random, the augmentations of a note pre-training, or music / notes+music."""
        if self.pretrain is None:
            return "random"
        return self.pretrain if self.data == "notes" else self.data


def init_recipe(init: str, model: str) -> Recipe:
    """The full-data recipe of an initialisation (an INITS name; notes: all augmentations)."""
    if init not in INITS:
        raise InstrecError(f"unknown initialisation {init!r} (known: {', '.join(INITS)})")
    if init == "random":
        return Recipe(None, model)
    return Recipe("all", model, 1.0, init)


def experiment_rows(
    experiment: str,
    model: str,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    ship_init: str = "random",
) -> list[Recipe]:
    """The recipes an experiment compares; `model` is the preset's backbone."""
    if experiment in ("table2", "fig3"):
        return [Recipe(None, model), Recipe("all", model)]
    if experiment == "table4":  # and ours with mel-spectrogram input, on the same data
        return [Recipe(None, model), Recipe("all", model), Recipe("all", f"{model}-mel")]
    if experiment == "table3":
        return [Recipe(name, model) for name in ABLATIONS]
    if experiment == "fig4":
        return [Recipe(init, model, f) for init in (None, "all") for f in sorted(fractions)]
    if experiment == "fig7":
        return [Recipe("all", name) for name in MODEL_NAMES]
    if experiment == "widths":
        return [Recipe("all", name, width=w) for name in WIDE_MODELS for w in WIDTHS]
    if experiment == "init":
        return [init_recipe(init, model) for init in INITS]
    if experiment == SHIP:
        return [init_recipe(ship_init, model)]
    raise InstrecError(f"unknown experiment {experiment!r} (known: {', '.join(KNOWN_EXPERIMENTS)})")
