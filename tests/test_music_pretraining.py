"""Pre-training on multi-instrument music: a sigmoid per class and BCE when the store is
multi-label, and the chain "notes, then music" that starts from a note model and resumes.

Stores are written straight through the store writer: six synthetic "instruments"
(distinct partials and decays), labelled with six of the corpus's 22 classes, and clips
mixing one to three of them, so only timbre tells which are present. The tiny CPU model
keeps every run to seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from test_reproduce import TINY, TINY_MODEL, FakeSteps

from instrec.data.store import ClipStore, Entry, StoreWriter
from instrec.experiments import grid as gr
from instrec.experiments import report as rr
from instrec.experiments.presets import INIT_CURVE, Recipe
from instrec.labels import CORPUS_CLASSES, IRMAS_CLASSES
from instrec.metrics import lrap
from instrec.model.io import load_model_file
from instrec.model.zoo import build_model
from instrec.train.config import Config, load_config
from instrec.train.fit import fit, pretrain
from instrec.train.lightning_module import Training

SR = 16_000
PLAYED = ("cel", "flu", "pia", "vio", "drums", "strings")  # the six instruments' classes
PARTIALS = np.array(
    [[1, 0.5, 0.33, 0.25, 0.2, 0.16], [1, 0, 0.33, 0, 0.2, 0], [1, 0.05, 0.02, 0.01, 0, 0],
     [0.3, 1, 0.2, 0.8, 0.1, 0.5], [0, 0, 1, 0, 0, 1], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]]
)  # fmt: skip
DECAY = (1.0, 3.0, 0.5, 6.0, 0.2, 10.0)  # 1/s


def note(instrument: int, rng: np.random.Generator) -> np.ndarray:
    """One second of a synthetic instrument at a random pitch."""
    t = np.arange(SR) / SR
    f0 = 110 * 2 ** rng.uniform(0, 2.5)
    partials = sum(
        a * np.sin(2 * np.pi * f0 * (k + 1) * t) for k, a in enumerate(PARTIALS[instrument])
    )
    return (0.1 * partials * np.exp(-t * DECAY[instrument])).astype(np.float32)


def write_corpus_store(path: Path, clips: int, seed: int = 0) -> Path:
    """A multi-label store: each clip mixes one to three instruments; every 5th song
    (three clips) is validation."""
    rng = np.random.default_rng(seed)
    with StoreWriter(path, "corpus", CORPUS_CLASSES) as writer:
        for i in range(clips):
            present = sorted(rng.choice(len(PLAYED), rng.integers(1, 4), replace=False))
            audio = sum(note(k, rng) for k in present) + rng.normal(0, 0.002, SR)
            split = "valid" if (i // 3) % 5 == 0 else "train"
            labels = tuple(sorted(CORPUS_CLASSES.index(PLAYED[k]) for k in present))
            entry = Entry(Path(f"{i}.wav"), f"{i}.wav", labels, split, i // 3)
            writer.add(entry, [np.asarray(audio, dtype=np.float32)], [{}])
        return writer.finish(SR, {})


def write_notes_store(path: Path, per_class: int) -> Path:
    """A single-label note store of the same instruments (NSynth kind)."""
    rng = np.random.default_rng(1)
    with StoreWriter(path, "nsynth", PLAYED) as writer:
        for k in range(len(PLAYED)):
            for j in range(per_class):
                split = "valid" if j % 5 == 0 else "train"
                entry = Entry(Path(f"{k}-{j}.wav"), f"{k}-{j}.wav", (k,), split, k)
                writer.add(entry, [note(k, rng)], [{}])
        return writer.finish(SR, {})


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stores")
    return {
        "corpus": write_corpus_store(root / "corpus", 300),
        "notes": write_notes_store(root / "notes", 10),
    }


def tiny(name: str, *overrides: str) -> Config:
    return load_config(
        name,
        ["trainer.batch_size=16", "trainer.log_every_steps=1", "trainer.num_workers=0", *overrides],
    )


def test_a_corpus_store_is_multi_label_and_a_note_store_is_not(stores: dict[str, Path]) -> None:
    corpus, notes = ClipStore.open(stores["corpus"]), ClipStore.open(stores["notes"])
    assert corpus.multi_label and not notes.multi_label
    assert corpus.targets.sum(axis=1).max() > 1


def test_multi_label_pretraining_writes_a_sigmoid_model_over_the_wide_label_set(
    stores: dict[str, Path], tmp_path: Path, one_torch_thread: None
) -> None:
    config = tiny("tiny_pretrain_music", "trainer.epochs=1", "data.fraction=0.4")
    model_file = load_model_file(pretrain(config, stores["corpus"], tmp_path / "run"))
    assert model_file.classes == CORPUS_CLASSES and model_file.model.config.head == "finetune"
    assert model_file.model.config.num_classes == len(CORPUS_CLASSES) == 22
    metrics = model_file.meta["metrics"]  # validated as a multi-label model, not by accuracy
    assert {"valid_f1_micro", "valid_lrap", "valid_threshold"} <= set(metrics)
    assert model_file.threshold == pytest.approx(metrics["valid_threshold"])
    assert model_file.meta["stage"] == "pretrain"


def test_the_command_line_chains_notes_then_music(
    stores: dict[str, Path], tmp_path: Path, one_torch_thread: None
) -> None:
    """`instrec pretrain --init NOTES_MODEL` on a corpus: the notes body, a new sigmoid head."""
    from instrec.cli import main

    base = ["--set", "trainer.batch_size=16", "--set", "trainer.num_workers=0"]
    notes = ["pretrain", "--config", "tiny_pretrain", "--data", str(stores["notes"])]
    assert main([*notes, "--out", str(tmp_path / "notes"), *base]) == 0
    music = ["pretrain", "--config", "tiny_pretrain_music", "--data", str(stores["corpus"])]
    chained = ["--init", str(tmp_path / "notes" / "model.pt"), "--set", "trainer.epochs=1"]
    assert main([*music, "--out", str(tmp_path / "music"), *chained, *base]) == 0
    model_file = load_model_file(tmp_path / "music" / "model.pt")
    assert model_file.classes == CORPUS_CLASSES
    assert model_file.meta["init"] == str((tmp_path / "notes" / "model.pt").resolve())


def _prior_baselines(store: ClipStore) -> tuple[float, float]:
    """(F1-micro of calling every class the training clips hold, LRAP of ranking the
    classes by their training frequency) on the validation clips: what the class prior
    alone scores."""
    train, valid = (np.asarray(store.targets[store.indices(s)]) for s in ("train", "valid"))
    frequency = train.mean(axis=0)
    called = np.broadcast_to(frequency > 0, valid.shape)
    hits = float((called & (valid > 0)).sum())
    f1 = 2 * hits / (called.sum() + valid.sum())
    return f1, lrap(valid, np.broadcast_to(frequency, valid.shape))


@pytest.mark.slow
def test_multi_label_pretraining_learns_timbre_beyond_the_class_prior(
    stores: dict[str, Path], tmp_path: Path, one_torch_thread: None
) -> None:
    config = tiny(
        "tiny_pretrain_music", "trainer.epochs=4", "optim.peak_lr=3e-3", "augment.effects_ratio=0"
    )  # mixup stays on, mixing multi-hot targets
    metrics = load_model_file(pretrain(config, stores["corpus"], tmp_path / "run")).meta["metrics"]
    f1, ranking = _prior_baselines(ClipStore.open(stores["corpus"]))
    assert metrics["valid_f1_micro"] > f1 + 0.1
    assert metrics["valid_lrap"] > ranking + 0.1


def test_the_multi_label_loss_is_bce_on_targets_smoothed_towards_one_half() -> None:
    config = load_config("tiny_pretrain_music")  # label smoothing 0.05
    training = Training(build_model("sharesnet18", 6, head="finetune"), config)
    logits = torch.tensor([[2.0, -1.0, 0.5, -3.0, 0.0, 1.0]])
    mixed = torch.tensor([[0.7, 0.3, 1.0, 0.0, 0.0, 0.3]])  # mixup of two multi-hot targets
    training.multi_label = True
    want = F.binary_cross_entropy_with_logits(logits, mixed * 0.95 + 0.025)
    assert torch.allclose(training.loss(logits, mixed), want)
    training.multi_label = False  # a note store: softmax cross-entropy
    want = F.cross_entropy(logits, mixed, label_smoothing=0.05)
    assert torch.allclose(training.loss(logits, mixed), want)


class StopAtStep(L.Callback):
    """Stops the run with an error once it reaches `step` (checkpoints before it stay)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("stopped by the test")


def test_the_chain_starts_music_from_the_notes_model_and_resumes(
    stores: dict[str, Path], tmp_path: Path, one_torch_thread: None
) -> None:
    notes = pretrain(tiny("tiny_pretrain", "trainer.epochs=1"), stores["notes"], tmp_path / "n")
    config = tiny(
        "tiny_pretrain_music",
        "trainer.epochs=1",
        "data.fraction=0.5",
        "trainer.checkpoint_every_steps=2",
        "augment.effects_ratio=0",
    )
    out = tmp_path / "chain"
    with pytest.raises(RuntimeError, match="stopped by the test"):
        fit(config, stores["corpus"], out, str(notes), resume=False, callbacks=[StopAtStep(3)])
    assert (out / "checkpoints" / "last.ckpt").is_file() and not (out / "model.pt").exists()
    path = fit(config, stores["corpus"], out, str(notes), resume=True)
    chain, start = load_model_file(path), load_model_file(notes)
    train_items = ClipStore.open(stores["corpus"]).indices("train", 0.5, 0).size
    assert chain.meta["steps"] == train_items // 16 >= 4
    assert chain.meta["init"] == str(notes.resolve()) and chain.classes == CORPUS_CLASSES
    assert len(yaml.safe_load((out / "run.json").read_text())["resumed"]) == 1
    # the body came from the note model: the sinc cut-offs move slowly
    for key, value in start.model.sinc.state_dict().items():
        moved = chain.model.sinc.state_dict()[key]
        assert torch.allclose(value, moved, atol=0.05 * float(value.abs().max()))


# ---- the init experiment: equal pre-training compute, the chain, the best two's curve ----

INIT_F1 = {"scratch": 0.5, "all": 0.55, "music": 0.62, "notes+music": 0.6}


class InitSteps(FakeSteps):
    """FakeSteps whose fine-tunings score by what they start from (the pre-training's
    cell label names it), and which also fake a pre-training that starts from a model."""

    def steps(self) -> gr.Steps:
        return gr.Steps(self.pretrain, self.finetune, self.evaluate, self.pretrain_from)

    def pretrain_from(self, config: Config, data: Path, init: str, out: Path, resume: bool) -> Path:
        self.calls.append(("pretrain_from", Path(init).parts[-3], data.name))
        return self._model(out, {})

    def finetune(self, config: Config, data: Path, init: str, out: Path, resume: bool) -> Path:
        self.calls.append(("finetune", config.model.name, init, str(resume)))
        kind = "scratch" if init == "scratch" else Path(init).parts[-3].split("-")[1]
        info = {"init": kind, "fraction": config.data.fraction, "seed": config.seed}
        return self._model(out, info)

    def evaluate(
        self, model: Path, test: Path, out: Path, threshold_from: str, validation: Path, split: str
    ) -> dict[str, Any]:
        info = json.loads(model.read_text())
        f1 = INIT_F1[info["init"]] + 0.1 * info["fraction"] + 0.01 * info["seed"]
        out.mkdir(parents=True)
        metrics = {"f1_micro": f1, "f1_macro": f1 - 0.1, "lrap": f1 + 0.1}
        (out / "metrics.json").write_text(json.dumps(metrics))
        return metrics


@pytest.fixture
def grid_stores(tmp_path: Path) -> gr.Stores:
    def store(path: Path, kind: str, classes: tuple[str, ...], splits: dict[str, int]) -> Path:
        rng = np.random.default_rng(0)
        with StoreWriter(path, kind, classes) as writer:
            for k, split in enumerate(s for s, n in splits.items() for _ in range(n)):
                entry = Entry(Path(f"{k}.wav"), f"{k}.wav", (k % 2,), split, k)
                writer.add(entry, [rng.normal(0, 0.1, SR).astype(np.float32)], [{}])
            writer.finish(SR, {})
        return path

    return gr.Stores(
        store(tmp_path / "notes", "nsynth", ("a", "b"), {"train": 8, "valid": 2}),
        store(tmp_path / "music", "irmas-train", IRMAS_CLASSES, {"train": 4, "valid": 2}),
        store(tmp_path / "test", "irmas-test", IRMAS_CLASSES, {"test": 2}),
        store(tmp_path / "corpus", "corpus", CORPUS_CLASSES, {"train": 40, "valid": 4}),
    )


BATCH = ("trainer.batch_size=2",)  # the notes store: 8 clips, 4 steps an epoch


def _trained_steps(cell: gr.Cell) -> int:
    """The steps a pre-training cell's config takes on its store, as ClipData counts."""
    config = cell.config()
    items = ClipStore.open(cell.data).indices("train", config.data.fraction, config.seed)
    return config.trainer.epochs * (items.size // config.trainer.batch_size)


def test_init_compares_four_initialisations_at_equal_pre_training_steps(
    grid_stores: gr.Stores,
) -> None:
    grid = gr.plan_grid(["table2", "init"], TINY, [0, 1], grid_stores, overrides=BATCH)
    rows = grid.rows["init"]
    assert [r.init for r in rows] == ["random", "all", "music", "notes+music"]
    assert rows[Recipe("all", TINY_MODEL)] == grid.rows["table2"][Recipe("all", TINY_MODEL)]
    # per seed: notes, music, and the chain's two stages
    assert len(grid.pretrain_cells()) == 8 and len(grid.finetune_cells()) == 8
    for recipe, cells in rows.items():
        want = 0 if recipe.pretrain is None else 4 * 4  # tiny: 4 epochs of 4 steps
        assert [c.pretrain_steps for c in cells] == [want, want]
    for cell in grid.pretrain_cells():  # what each config really runs, on its store
        assert _trained_steps(cell) == cell.steps
    music = rows[Recipe("all", TINY_MODEL, data="music")][0].init
    chain = rows[Recipe("all", TINY_MODEL, data="notes+music")][0].init
    assert music is not None and chain is not None and chain.init is not None
    assert music.init is None and music.data == str(grid_stores.corpus)
    assert music.config_name == chain.config_name == "tiny_pretrain_music"
    assert music.config().trainer.epochs == 1  # 16 steps x 2 clips fit the corpus once
    assert (chain.steps, chain.init.steps) == (8, 8) and chain.init.data.endswith("notes")
    half = chain.init.config()
    assert (half.trainer.epochs, half.optim.warmup_epochs) == (2, 0.5)  # 1 of 4 epochs
    assert music.config().optim.warmup_epochs == 0.25  # the same share of its steps


def test_the_schedule_gives_exact_steps_with_the_fewest_epochs() -> None:
    assert gr.music_schedule(16, 40, 2) == (1, 0.8)
    assert gr.music_schedule(16, 20, 2) == (2, 0.8)  # 8 steps x 2 clips, twice
    assert gr.music_schedule(12, 7, 2) == (4, 6 / 7)  # 3 steps an epoch: 6 of 7 clips


def test_init_runs_the_chain_then_the_best_two_curves_and_caches(
    grid_stores: gr.Stores, tmp_path: Path
) -> None:
    grid = gr.plan_grid(["init"], TINY, [0, 1], grid_stores, (0.25, 1.0), BATCH)
    fake = InitSteps()
    outcome = gr.run_grid(grid, grid_stores, tmp_path, "validation", fake.steps())
    chained = [call for call in fake.calls if call[0] == "pretrain_from"]
    assert [(c[1].split("-s")[0], c[2]) for c in chained] == [
        (f"{TINY_MODEL}-notes-half", "corpus")
    ] * 2  # the music stage starts from the notes half, on the corpus
    results = gr.collect(grid, outcome)
    curve = results[INIT_CURVE]  # the best two: music, then notes+music, one seed
    assert [(r.init, r.fraction) for r in curve] == [
        ("music", 0.25), ("music", 1.0), ("notes+music", 0.25), ("notes+music", 1.0)]  # fmt: skip
    assert [len(runs) for runs in curve.values()] == [1, 1, 1, 1]
    assert curve[Recipe("all", TINY_MODEL, 1.0, "music")][0]["f1_micro"] == pytest.approx(0.72)
    assert outcome.failed == [] and outcome.ran == 8 + 8 + 2  # only the 25 % cells are new
    assert {r["pretrain_steps"] for runs in results["init"].values() for r in runs} == {0, 16}

    again = InitSteps()
    rerun = gr.run_grid(grid, grid_stores, tmp_path, "validation", again.steps())
    assert again.calls == [] and rerun.cached == 18 and gr.collect(grid, rerun) == results


def test_the_report_shows_steps_beside_scores_and_the_best_two_curve(tmp_path: Path) -> None:
    def runs(steps: int, *f1: float) -> list[dict[str, Any]]:
        return [{"f1_micro": v, "f1_macro": v, "lrap": v, "pretrain_steps": steps} for v in f1]

    init = {Recipe(None, "m"): runs(0, 0.5, 0.6), Recipe("all", "m"): runs(16, 0.6),
            Recipe("all", "m", data="music"): runs(16, 0.7, 0.8)}  # fmt: skip
    table = rr.init_table(init)
    assert "| random init | 0 | 0.550 ± 0.071 |" in table
    assert "| pre-trained on rendered music | 16 | 0.750 ± 0.071 |" in table
    curve = {Recipe("all", "m", f, "music"): runs(16, 0.4 + f / 2) for f in (0.1, 1.0)}
    text = rr.init_curve(curve, tmp_path)
    assert "| 10 % | 0.450 |" in text and "F1-micro, pre-trained on rendered music" in text
    assert (tmp_path / "init_f1_vs_fraction.png").stat().st_size > 1000
    assert "No initialisation" in rr.init_curve({}, tmp_path)


@pytest.mark.slow
def test_the_init_experiment_trains_evaluates_and_reports_for_real(
    grid_stores: gr.Stores, tmp_path: Path
) -> None:
    overrides = ("trainer.batch_size=2", "trainer.epochs=2", "trainer.num_workers=0",
                 "trainer.accelerator=cpu", "trainer.devices=1")  # fmt: skip
    grid = gr.plan_grid(["init"], TINY, [0], grid_stores, (0.5, 1.0), overrides)
    outcome = gr.run_grid(grid, grid_stores, tmp_path, "validation")
    assert outcome.failed == [] and outcome.ran == 4 + 4 + 2
    for cell in grid.pretrain_cells():
        model = load_model_file(cell.directory(tmp_path) / "run" / "model.pt")
        assert model.meta["steps"] == cell.steps  # planned steps are the steps run
    chain = grid.rows["init"][Recipe("all", TINY_MODEL, data="notes+music")][0].init
    assert chain is not None and chain.init is not None
    trained = load_model_file(chain.directory(tmp_path) / "run" / "model.pt")
    assert trained.meta["init"].endswith(f"{chain.init.name}/run/model.pt")
    results = gr.collect(grid, outcome)
    context = {"preset": "tiny", "seeds": [0], "data": "test stores", "stores": [],
               "threshold_from": "validation"}  # fmt: skip
    text = rr.write_report(tmp_path, results, context, "tiny").read_text()
    assert "initialisations at equal pre-training compute" in text
    assert "| notes, then rendered music | 8 |" in text and "init_f1_vs_fraction.png" in text
