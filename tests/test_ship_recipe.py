"""The shipped model's recipe: `instrec reproduce --preset ship` plans one fine-tuning from
the preset's chosen initialisation, scored on the small preset's cross-source benchmark,
and scripts/ship_model.py finds that run's model (and nothing ambiguous)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

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


def test_shipping_picks_the_named_seed_of_several(tmp_path: Path) -> None:
    script = _ship_model_script()
    cells = []
    for seed in (0, 1):
        cell = tmp_path / "cells" / "finetune" / f"sharesnet18-pre-music-f1-s{seed}-0{seed}"
        (cell / "run").mkdir(parents=True)
        (cell / "run" / "model.pt").write_bytes(b"")
        (cell / "cell.json").write_text(json.dumps({"overrides": [f"seed={seed}"]}))
        cells.append(cell)
    assert script.shipped_cell(tmp_path, seed=1) == cells[1]
    assert script.shipped_cell(tmp_path, seed=0) == cells[0]
    with pytest.raises(InstrecError, match=r"one finished fine-tuning \(of seed 2\), found none"):
        script.shipped_cell(tmp_path, seed=2)


@pytest.mark.slow
def test_shipping_a_ship_run_measures_its_card_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished ship run's model goes into the package with the threshold its
    cross-source valid songs chose, and a card measured at that threshold: in-source F1
    re-scored there, cross-source figures as evaluated, solos of the held-out members."""
    from instrec.evaluate import evaluate_model
    from instrec.model.io import load_model_file, save_model_file
    from instrec.model.registry import read_manifest, resolve
    from instrec.model.zoo import build_model
    from instrec.synth.solos import render_solo

    data = tmp_path / "out" / "data" / "ship"
    solo = render_solo("tru", 2.0, 16_000, seed=1, member="csound:trumpet-fm")
    with StoreWriter(data / "music-test", "irmas-test", IRMAS_CLASSES) as writer:
        for k in range(3):
            entry = Entry(Path(f"{k}.wav"), f"{k}.wav", (8, k), "test", k)
            writer.add(entry, [np.roll(solo, 4000 * k)], [{}])
        writer.finish(16_000, {})
    (data / "rendered-cross-source").mkdir(parents=True)
    families = {
        "csound:fm-brass": {
            "classes": ["tru"],
            "members": ["csound:trumpet-fm"],
            "split": "held-out",
        },
        "csound:bowed-string": {
            "classes": ["vio"],
            "members": ["csound:bowed-wg"],
            "split": "train",
        },
    }
    (data / "rendered-cross-source" / "families.json").write_text(
        json.dumps({"catalogue": {}, "families": families})
    )
    cell = tmp_path / "out" / "cells" / "finetune" / "sharesnet18-pre-music-f1-s0-0a"
    torch.manual_seed(0)
    tiny = build_model("sharesnet18", width_multiplier=0.25, sinc_filters=16, sinc_stride=48)
    model = save_model_file(cell / "run" / "model.pt", tiny, IRMAS_CLASSES, threshold=0.9)
    described = {"config": "ship_finetune", "overrides": ["seed=0"], "init": "music-s0"}
    (cell / "cell.json").write_text(json.dumps(described))
    cross = {"f1_micro": 0.61, "f1_macro": 0.52, "lrap": 0.73, "threshold": 0.3}
    for name, metrics in {
        "eval-cross-source-valid-1": {
            **cross,
            "sweep": {"best_f1_micro": 0.66},
            "data": {"store": str(data / "cross-source"), "items": 39},
        },
        "eval-validation-2": {
            "sweep": {"best_f1_micro": 0.9},
            "data": {"store": str(data / "music-test"), "items": 3},
        },
    }.items():
        (cell / name).mkdir()
        (cell / name / "metrics.json").write_text(json.dumps(metrics))
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "models.json").write_text(json.dumps({"default": None, "models": {}}))
    script = _ship_model_script()
    monkeypatch.setattr(script, "weights_folder", lambda: weights)
    argv = ["ship_model.py", "--from-reproduce", str(tmp_path / "out"), "--name", "m"]
    monkeypatch.setattr(sys, "argv", argv)
    script.main()

    default, shipped = read_manifest(weights)
    card = shipped["m"].card
    assert default == "m" and card["threshold_value"] == 0.3
    assert load_model_file(resolve("m", "pt", folder=weights)).threshold == 0.3
    assert resolve("m", folder=weights).suffix == ".onnx"  # checked against its digest
    at_shipped = evaluate_model(model, data / "music-test", tmp_path / "e", 0.3, tsne_points=0)
    assert card["scores"]["in-source test (3 files)"] == {
        **{key: round(at_shipped[key], 3) for key in ("f1_micro", "f1_macro", "lrap")},
        "best_f1_micro": 0.9,
    }
    assert card["scores"]["cross-source test (39 files)"] == {
        "f1_micro": 0.61,
        "f1_macro": 0.52,
        "lrap": 0.73,
        "best_f1_micro": 0.66,
    }
    assert card["solo_members"] == {"tru": "csound:trumpet-fm"}  # the held-out family only
    assert card["solo_top1_accuracy"] in (0.0, 1.0)
    assert "initialisation music-s0" in card["trained_on"] and "flags:" in card["speed"]
