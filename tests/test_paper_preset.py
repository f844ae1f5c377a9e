"""The paper's preset, every cell, on CPU: the path nobody can afford to run here.

`instrec reproduce --preset paper` is a GPU job of days. This runs each of its cells
(every pre-training on notes, on music and both in turn, both kinds of fine-tuning, every
evaluation, at the paper's
architectures and augmentation settings) for one or two optimiser steps on tiny stores,
so a config or shape error in that path fails CI instead of a GPU day. Only the batch
size and epochs are overridden; everything else is the preset's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from instrec.data.store import Entry, StoreWriter
from instrec.experiments.grid import Stores, plan_grid, run_grid
from instrec.experiments.presets import EXPERIMENTS, PRESETS
from instrec.labels import CORPUS_CLASSES
from instrec.model.io import load_model_file
from instrec.train.config import config_to_dict

pytestmark = pytest.mark.slow

SR = 16_000
STEPS_OVERRIDES = (
    "trainer.batch_size=2",
    "trainer.epochs=2",  # the notes-then-music chain splits its epochs in two
    "optim.warmup_epochs=0.5",
    "trainer.num_workers=0",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
)


def _tone(f0: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    wave = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def _store(path: Path, kind: str, classes: tuple[str, ...], items: list[tuple]) -> Path:
    """items: (class index or indices, split, group, seconds)."""
    rng = np.random.default_rng(0)
    with StoreWriter(path, kind, classes) as writer:
        for i, (label, split, group, seconds) in enumerate(items):
            labels = label if isinstance(label, tuple) else (label,)
            entry = Entry(Path(f"{i}.wav"), f"{i}.wav", labels, split, group)
            writer.add(entry, [_tone(220 * (labels[0] + 1), seconds, rng)], [{}])
        writer.finish(SR, {})
    return path


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    two = ("cel", "flu")
    notes = [(k, "train", k, 1.0) for k in (0, 1, 0, 1)] + [(k, "valid", k, 1.0) for k in (0, 1)]
    music = [(k, "train", 10 * k + j, 1.0) for k in (0, 1) for j in range(2)]
    music += [(k, "valid", 100 + k, 1.0) for k in (0, 1)]
    test = [(k, "test", 200 + k, 2.3) for k in (0, 1)]
    corpus = [((0, 13), "train", 300 + j, 1.0) for j in range(8)] + [((1,), "valid", 400, 1.0)]
    return Stores(
        _store(tmp_path / "notes", "nsynth", ("ins0", "ins1"), notes),
        _store(tmp_path / "music", "irmas-train", two, music),
        _store(tmp_path / "test", "irmas-test", two, test),
        _store(tmp_path / "corpus", "corpus", CORPUS_CLASSES, corpus),
    )


def test_every_cell_of_the_paper_preset_trains_and_evaluates(
    stores: Stores, tmp_path: Path
) -> None:
    preset = PRESETS["paper"]
    grid = plan_grid(EXPERIMENTS, preset, [0], stores, overrides=STEPS_OVERRIDES)
    outcome = run_grid(grid, stores, tmp_path / "out", threshold_from="validation")
    cells = [*grid.pretrain_cells(), *grid.finetune_cells()]
    # (the init experiment's fraction curve adds cells once its rows have scores)
    assert outcome.failed == [] and outcome.ran >= len(cells)
    assert len(outcome.metrics) >= len(grid.finetune_cells())
    for cell in cells:
        model = load_model_file(cell.directory(tmp_path / "out") / "run" / "model.pt")
        assert model.meta["steps"] >= 1
        assert model.meta["config"] == config_to_dict(cell.config())  # the preset's, as run
