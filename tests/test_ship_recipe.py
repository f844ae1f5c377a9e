"""The shipped model's recipe: `instrec reproduce --preset ship` plans one fine-tuning from
the preset's chosen initialisation, scored on the small preset's cross-source benchmark,
and scripts/ship_model.py finds that run's model (and nothing ambiguous)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from instrec.cli import main
from instrec.data.store import Entry, StoreWriter
from instrec.errors import InstrecError
from instrec.experiments import grid as gr
from instrec.experiments import presets
from instrec.experiments import reproduce as rp
from instrec.labels import CORPUS_CLASSES, IRMAS_CLASSES
from instrec.train.config import load_config

SHIP = presets.PRESETS["ship"]
SILENCE = np.zeros(16_000, dtype=np.float32)
BATCH = ("trainer.batch_size=2",)  # the fixture's stores hold a few batches
SMALL = presets.PRESETS["small"]


def _store(path: Path, kind: str, classes: tuple[str, ...], train: int = 4) -> Path:
    with StoreWriter(path, kind, classes) as writer:
        for i in range(train + 2):
            split = "train" if i < train else "valid"
            labels = (i % len(classes),)
            writer.add(Entry(Path(f"{i}.wav"), f"{i}.wav", labels, split, i), [SILENCE], [{}])
        writer.finish(16_000, {})
    return path


@pytest.fixture
def stores(tmp_path: Path) -> gr.Stores:
    return gr.Stores(
        _store(tmp_path / "notes", "nsynth", ("a", "b"), train=8),
        _store(tmp_path / "music", "irmas-train", IRMAS_CLASSES),
        _store(tmp_path / "test", "irmas-test", IRMAS_CLASSES),
        _store(tmp_path / "corpus", "corpus", CORPUS_CLASSES, train=40),
    )


def _ship_model_script() -> ModuleType:
    path = Path(__file__).parents[1] / "scripts" / "ship_model.py"
    spec = importlib.util.spec_from_file_location("ship_model", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ship_model"] = module
    spec.loader.exec_module(module)
    return module


def test_the_ship_row_is_the_presets_initialisation() -> None:
    for init in presets.INITS:
        (recipe,) = presets.experiment_rows(presets.SHIP, "sharesnet18", ship_init=init)
        assert recipe == presets.init_recipe(init, "sharesnet18")
        assert recipe in presets.experiment_rows("init", "sharesnet18")  # the same cell
    with pytest.raises(InstrecError, match="unknown initialisation 'imagenet'"):
        presets.experiment_rows(presets.SHIP, "sharesnet18", ship_init="imagenet")


def test_the_ship_preset_plans_one_longer_finetuning_of_the_small_model_on_more_songs(
    stores: gr.Stores,
) -> None:
    grid = gr.plan_grid(SHIP.experiments, SHIP, [0], stores, overrides=BATCH)
    (cell,) = grid.finetune_cells()
    config = cell.config()
    small = load_config(SMALL.scratch if cell.init is None else SMALL.finetune)
    assert cell.init is not None and cell.init.data == str(stores.corpus)  # rendered music
    assert cell.init.config().trainer.precision == "bf16-mixed"
    assert config.model.name == small.model.name
    assert config.model.options["sinc_filters"] == small.model.options["sinc_filters"]
    assert config.trainer.epochs > 2 * small.trainer.epochs
    assert config.trainer.channels_last and config.trainer.precision == "bf16-mixed"
    assert SHIP.music["train_songs"] == 8 * SMALL.music["train_songs"]


def test_the_ship_preset_scores_on_the_small_presets_benchmark() -> None:
    """The benchmark is rendered from the music's seed and its song count (stores.py):
    equal, so the shipped model and the small preset's grids are compared on one set."""
    assert SHIP.cross_source_songs == SMALL.cross_source_songs
    assert SHIP.music.get("seed", 0) == SMALL.music.get("seed", 0)


def test_reproduce_runs_the_presets_own_experiments_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[rp.Job] = []

    def fake(job: rp.Job) -> tuple[Path, gr.Outcome, dict]:
        asked.append(job)
        (tmp_path / "report.md").write_text("report\n")
        return tmp_path / "report.md", gr.Outcome(), {}

    monkeypatch.setattr(rp, "reproduce", fake)
    assert main(["reproduce", "--preset", "ship", "--seeds", "1", "--out", str(tmp_path)]) == 0
    assert main(["reproduce", "--preset", "tiny", "--out", str(tmp_path)]) == 0
    assert main(["reproduce", "--preset", "ship", "--experiments", "init", "--out", "x"]) == 0
    assert [job.experiments for job in asked] == [
        (presets.SHIP,),
        presets.EXPERIMENTS,
        ("init",),
    ]


@pytest.mark.fault
@pytest.mark.parametrize("finished", [0, 2])
def test_shipping_refuses_a_run_without_exactly_one_finished_model(
    tmp_path: Path, finished: int
) -> None:
    script = _ship_model_script()
    for k in range(finished):
        run = tmp_path / "cells" / "finetune" / f"sharesnet18-scratch-f1-s{k}-0{k}" / "run"
        run.mkdir(parents=True)
        (run / "model.pt").write_bytes(b"")
    with pytest.raises(InstrecError, match=f"{tmp_path}: expected exactly one finished"):
        script.shipped_cell(tmp_path)


def test_shipping_finds_the_one_finished_model(tmp_path: Path) -> None:
    script = _ship_model_script()
    cell = tmp_path / "cells" / "finetune" / "sharesnet18-scratch-f1-s0-0a"
    (cell / "run").mkdir(parents=True)
    (cell / "run" / "model.pt").write_bytes(b"")
    (tmp_path / "cells" / "finetune" / "unfinished" / "run").mkdir(parents=True)
    assert script.shipped_cell(tmp_path) == cell
