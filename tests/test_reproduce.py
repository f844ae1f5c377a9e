"""The reproduction grid: which cells each experiment needs, their cache, the whole job.

Training and evaluation are replaced by fakes that write a model file and a metrics.json
whose scores encode the cell's settings, so planning, caching, resuming, failures and
the report they feed are checked in seconds; tests/test_demo.py runs the real thing.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dataset_trees import (
    write_irmas_test_tree,
    write_irmas_train_tree,
    write_nsynth_tree,
)

from instrec.data.store import Entry, StoreWriter
from instrec.errors import InstrecError
from instrec.experiments import grid as gr
from instrec.experiments import presets
from instrec.experiments import reproduce as rp
from instrec.labels import IRMAS_CLASSES
from instrec.model.zoo import MODEL_NAMES
from instrec.report import format_mean_std
from instrec.train.config import Config

TINY = presets.PRESETS["tiny"]
TINY_MODEL = "sharesnet18"  # tiny_pretrain's backbone


def _store(path: Path, kind: str, classes: tuple[str, ...]) -> Path:
    with StoreWriter(path, kind, classes) as writer:
        for i in range(4):
            entry = Entry(Path(f"{i}.wav"), f"{i}.wav", (i % len(classes),), "train", i)
            writer.add(entry, [np.zeros(16_000, dtype=np.float32)], [{}])
        writer.finish(16_000, {})
    return path


@pytest.fixture
def stores(tmp_path: Path) -> gr.Stores:
    return gr.Stores(
        _store(tmp_path / "notes", "nsynth", ("a", "b")),
        _store(tmp_path / "music", "irmas-train", IRMAS_CLASSES),
        _store(tmp_path / "test", "irmas-test", IRMAS_CLASSES),
    )


def fake_f1(init: str, fraction: float, seed: int) -> float:
    """The F1-micro the fake evaluation reports for a cell's settings."""
    return round(0.5 + (0.1 if init != "scratch" else 0.0) + 0.1 * fraction + 0.01 * seed, 6)


class FakeSteps:
    """Training and evaluation stand-ins that record their calls."""

    def __init__(self, fail_pretrain: str | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail_pretrain = fail_pretrain

    def steps(self) -> gr.Steps:
        return gr.Steps(self.pretrain, self.finetune, self.evaluate)

    def _model(self, out: Path, info: dict[str, Any]) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text("fake\n")
        (out / "model.pt").write_text(json.dumps(info))
        return out / "model.pt"

    def pretrain(self, config: Config, data: Path, out: Path, resume: bool) -> Path:
        self.calls.append(("pretrain", config.model.name, str(config.augment.mixup_p), str(resume)))
        if self.fail_pretrain and config.model.name == self.fail_pretrain:
            raise InstrecError(f"{out}: the loss is not finite")
        return self._model(out, {})

    def finetune(self, config: Config, data: Path, init: str, out: Path, resume: bool) -> Path:
        self.calls.append(("finetune", config.model.name, init, str(resume)))
        info = {
            "init": "scratch" if init == "scratch" else "pre",
            "fraction": config.data.fraction,
            "seed": config.seed,
            "model": config.model.name,
        }
        return self._model(out, info)

    def evaluate(
        self, model: Path, test: Path, out: Path, threshold_from: str, validation: Path, split: str
    ) -> dict[str, Any]:
        self.calls.append(("evaluate", threshold_from))
        info = json.loads(model.read_text())
        f1 = fake_f1(info["init"], info["fraction"], info["seed"])
        metrics = {
            "f1_micro": f1,
            "f1_macro": f1 - 0.1,
            "lrap": f1 + 0.1,
            "per_class": {c: {"f1": f1 - 0.01 * k} for k, c in enumerate(IRMAS_CLASSES)},
            "parameters": 1000 * (1 + MODEL_NAMES.index(info["model"])),
        }
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps(metrics))
        return metrics


# ---- planning ---------------------------------------------------------------------------


def test_table2_needs_one_pretraining_and_two_finetunings_per_seed(stores: gr.Stores) -> None:
    grid = gr.plan_grid(["table2"], TINY, [0, 1], stores)
    finetunes = grid.finetune_cells()
    assert len(grid.pretrain_cells()) == 2 and len(finetunes) == 4
    assert Counter(c.init is None for c in finetunes) == {True: 2, False: 2}
    scratch = next(c for c in finetunes if c.init is None)
    assert scratch.config_name == "tiny_scratch" and scratch.config().optim.peak_lr == 3.5e-3
    assert {c.config().seed for c in grid.pretrain_cells()} == {0, 1}


def test_shared_cells_are_planned_once(stores: gr.Stores) -> None:
    grid = gr.plan_grid(["table2", "fig3", "table3", "fig4", "fig7", "table4"], TINY, [0], stores)
    # pre-training: 5 augmentation sets of the tiny backbone + the 5 other backbones + its
    # mel-input twin (table4)
    assert len(grid.pretrain_cells()) == len(presets.ABLATIONS) + len(MODEL_NAMES) - 1 + 1
    # fine-tuning: table2 2, table3 +4, fig4 +3 random +3 pre-trained, fig7 +5, table4 +1
    assert len(grid.finetune_cells()) == 2 + 4 + 6 + 5 + 1
    mel = grid.rows["table4"][presets.Recipe("all", f"{TINY_MODEL}-mel")][0]
    assert mel.config().model.name == f"{TINY_MODEL}-mel" and mel.init is not None
    table2_pre = grid.rows["table2"][presets.Recipe("all", TINY_MODEL)][0]
    assert grid.rows["table3"][presets.Recipe("all", TINY_MODEL)][0] == table2_pre
    assert grid.rows["fig7"][presets.Recipe("all", TINY_MODEL)][0] == table2_pre
    assert grid.rows["fig4"][presets.Recipe("all", TINY_MODEL, 1.0)][0] == table2_pre
    ablation = grid.rows["table3"][presets.Recipe("no-both", TINY_MODEL)][0].init
    assert ablation is not None
    augment = ablation.config().augment
    assert (augment.mixup_p, augment.effects_ratio, augment.concat_p) == (0, 0, 0.5)


def test_widths_scales_both_sharesnets_by_one_two_and_four() -> None:
    rows = presets.experiment_rows("widths", "resnet34")  # not the preset's backbone
    assert rows == [
        presets.Recipe("all", model, width=w)
        for model in ("sharesnet18", "sharesnet34")
        for w in (1.0, 2.0, 4.0)
    ]
    assert [r.backbone for r in rows[:3]] == ["sharesnet18", "sharesnet18x2", "sharesnet18x4"]


def test_wider_cells_are_wide_in_both_stages_and_width_one_keeps_its_cells(
    stores: gr.Stores,
) -> None:
    grid = gr.plan_grid(["table2", "fig7", "widths"], TINY, [0], stores)
    widths = grid.rows["widths"]
    assert len({cells[0].key for cells in widths.values()}) == 6
    # x1: Table II's and Fig. 7's cell, with no new override or label
    one = widths[presets.Recipe("all", TINY_MODEL, width=1.0)][0]
    assert one == grid.rows["table2"][presets.Recipe("all", TINY_MODEL)][0]
    assert one == grid.rows["fig7"][presets.Recipe("all", TINY_MODEL)][0]
    assert one.overrides == (f"model.name={TINY_MODEL}", "seed=0", "data.fraction=1.0")
    assert one.label == f"{TINY_MODEL}-pre-all-f1-s0" and one.init is not None
    assert one.init.label == f"{TINY_MODEL}-all-s0"
    # x2 of the tiny preset's 0.5: width 1.0 in the pre-training and the fine-tuning
    two = widths[presets.Recipe("all", TINY_MODEL, width=2.0)][0]
    assert two.init is not None and two.init.key != one.init.key
    for cell in (two, two.init):
        assert "model.options.width_multiplier=1.0" in cell.overrides
        assert cell.config().model.options["width_multiplier"] == 1.0
    assert two.label == f"{TINY_MODEL}x2-pre-all-f1-s0"
    assert two.init.label == f"{TINY_MODEL}x2-all-s0"
    four = widths[presets.Recipe("all", "sharesnet34", width=4.0)][0]
    assert four.config().model.options["width_multiplier"] == 2.0
    assert four.name.startswith("sharesnet34x4-pre-all-f1-s0-")


def test_the_real_evaluation_counts_parameters_and_macs_per_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import instrec.evaluate
    from instrec.model.io import save_model_file
    from instrec.model.zoo import build_model, count_macs, count_parameters

    model = build_model("sharesnet18", width_multiplier=0.25, sinc_filters=8, sinc_stride=64)
    path = save_model_file(tmp_path / "m.pt", model, IRMAS_CLASSES, threshold=0.5)
    monkeypatch.setattr(instrec.evaluate, "evaluate_model", lambda *a, **k: {"f1_micro": 0.5})
    metrics = gr._real_evaluate(path, tmp_path, tmp_path / "eval", "validation", tmp_path, "auto")
    assert metrics["parameters"] == count_parameters(model)
    assert metrics["macs_per_second"] == count_macs(model, 1.0, 16_000) > 0


def test_cache_keys_are_stable_and_follow_every_setting(stores: gr.Stores) -> None:
    def names(seeds: list[int], overrides: tuple[str, ...] = ()) -> list[str]:
        grid = gr.plan_grid(["fig4"], TINY, seeds, stores, (0.5, 1.0), overrides)
        return [c.name for c in grid.finetune_cells()]

    first = names([0])
    assert names([0]) == first  # same settings, same directories
    assert len(set(first)) == 4
    assert set(names([1])).isdisjoint(first)  # the seed is part of the key
    assert set(names([0], ("trainer.epochs=1",))).isdisjoint(first)
    # speed-only settings compute the same thing: same keys
    assert names([0], ("trainer.channels_last=true", "trainer.compile=true")) == first
    assert all(re.fullmatch(r"sharesnet18-(scratch|pre-all)-f(0\.5|1)-s0-[0-9a-f]{10}", n)
               for n in first)  # fmt: skip
    # the header's bookkeeping (when, from where) is not data: same keys
    header = stores.music / "store.json"
    header.write_text(header.read_text().replace("{", '{"created": "later", ', 1))
    assert names([0]) == first
    # one label changed is new data: new keys
    targets = np.load(stores.music / "targets.npy")
    targets[0] = targets[1]
    np.save(stores.music / "targets.npy", targets)
    assert set(names([0])).isdisjoint(first)


def test_unknown_experiment_and_incomplete_real_data_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InstrecError, match="unknown table5"):
        rp.reproduce(rp.Job(tmp_path, experiments=("table5",)))
    with pytest.raises(InstrecError, match="--irmas"):
        rp.reproduce(rp.Job(tmp_path, nsynth=tmp_path))


# ---- running and caching ----------------------------------------------------------------


def test_finished_cells_are_skipped_and_interrupted_ones_resumed(
    stores: gr.Stores, tmp_path: Path
) -> None:
    grid = gr.plan_grid(["table2", "fig4"], TINY, [0], stores, (0.5, 1.0))
    fake = FakeSteps()
    outcome = gr.run_grid(grid, stores, tmp_path / "out", "validation", fake.steps())
    kinds = Counter(call[0] for call in fake.calls)
    assert kinds == {"pretrain": 1, "finetune": 4, "evaluate": 4}
    assert (outcome.ran, outcome.cached, outcome.failed) == (5, 0, [])
    assert fake.calls[0][0] == "pretrain"  # before the fine-tunings that need it
    pre = grid.pretrain_cells()[0].directory(tmp_path / "out") / "run" / "model.pt"
    assert all(call[2] in ("scratch", str(pre)) for call in fake.calls if call[0] == "finetune")

    again = FakeSteps()
    outcome = gr.run_grid(grid, stores, tmp_path / "out", "validation", again.steps())
    assert again.calls == [] and (outcome.ran, outcome.cached) == (0, 5)
    assert len(outcome.metrics) == 4

    # interrupted: config written, no model file, no evaluation -> resumed, then evaluated
    cell = grid.finetune_cells()[0]
    (cell.directory(tmp_path / "out") / "run" / "model.pt").unlink()
    evaluation = gr.evaluation_dir(cell, tmp_path / "out", stores, "validation")
    (evaluation / "metrics.json").unlink()
    evaluation.rmdir()
    resumed = FakeSteps()
    gr.run_grid(grid, stores, tmp_path / "out", "validation", resumed.steps())
    assert resumed.calls == [
        ("finetune", TINY_MODEL, "scratch", "True"),
        ("evaluate", "validation"),
    ]

    # another threshold protocol: evaluations again, no training
    other = FakeSteps()
    gr.run_grid(grid, stores, tmp_path / "out", "test", other.steps())
    assert other.calls == [("evaluate", "test")] * 4


def test_a_failed_pretraining_skips_its_finetunings_only(stores: gr.Stores, tmp_path: Path) -> None:
    grid = gr.plan_grid(["table2", "fig7"], TINY, [0], stores)
    fake = FakeSteps(fail_pretrain="resnet28")
    outcome = gr.run_grid(grid, stores, tmp_path, "validation", fake.steps())
    assert len(outcome.failed) == 2 and "not finite" in outcome.failed[0]
    assert "resnet28-pre-all" in outcome.failed[1] and "pre-training failed" in outcome.failed[1]
    assert len(outcome.metrics) == len(grid.finetune_cells()) - 1
    results = gr.collect(grid, outcome)
    assert len(results["fig7"][presets.Recipe("all", "resnet28")]) == 0


# ---- the whole job on real-layout data (fake training) ----------------------------------


def test_the_caveat_says_what_the_numbers_rest_on() -> None:
    assert "not on NSynth and IRMAS" in rp._caveat("tiny", rendered=True)
    assert "(CPU, minutes: a cut-down ShaResNet18" in rp._caveat("tiny", rendered=False)
    assert "far smaller than the paper's runs" in rp._caveat("small", rendered=False)
    assert "General MIDI" not in rp._caveat("tiny", rendered=False)
    assert rp._caveat("paper", rendered=False) == ""


def test_reproduce_prepares_real_layout_data_once_and_reports(tmp_path: Path) -> None:
    nsynth = write_nsynth_tree(tmp_path / "nsynth")
    irmas = write_irmas_test_tree(write_irmas_train_tree(tmp_path / "irmas"), seconds=(3,))
    job = rp.Job(tmp_path / "out", ("table2", "fig3"), seeds=2, nsynth=nsynth, irmas=irmas,
                 workers=1)  # fmt: skip
    fake = FakeSteps()
    path, outcome, _ = rp.reproduce(job, fake.steps())
    assert (outcome.ran, outcome.cached) == (6, 0)
    assert {p.name for p in (tmp_path / "out" / "data" / "tiny").iterdir()} == {
        "nsynth", "irmas-train", "irmas-test"}  # fmt: skip
    text = path.read_text()
    want = format_mean_std([fake_f1("pre", 1.0, 0), fake_f1("pre", 1.0, 1)])
    assert f"| pre-trained on notes | {want} |" in text
    assert "Caveat" in text and "NSynth" in text and "fig3_per_class_f1.png" in text
    assert f"- preset **tiny** ({TINY.about}); seeds 0, 1" in text

    again = FakeSteps()
    _, outcome, _ = rp.reproduce(job, again.steps())
    assert again.calls == [] and (outcome.ran, outcome.cached) == (0, 6)
