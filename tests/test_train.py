"""Training: it learns, it writes a usable model file, it resumes exactly, it stops cleanly.

Stores are written straight through instrec.data.store's writer: four synthetic
"instruments" (distinct partial amplitudes and decays) playing notes at random pitches,
so only timbre tells them apart. The tiny CPU model keeps every run to seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from instrec.data.store import ClipStore, Entry, StoreWriter
from instrec.errors import InstrecError
from instrec.model.io import load_model_file
from instrec.train.augment import AugmentConfig, concatenate_notes
from instrec.train.config import Config, load_config
from instrec.train.data_module import clip_loader
from instrec.train.dataset import ClipDataset, EpochSampler, _members_by_group
from instrec.train.fit import finetune, pretrain

SR = 16_000
PARTIALS = np.array(
    [[1, 0.5, 0.33, 0.25, 0.2, 0.16], [1, 0, 0.33, 0, 0.2, 0], [1, 0.05, 0.02, 0.01, 0, 0],
     [0.3, 1, 0.2, 0.8, 0.1, 0.5]]
)  # fmt: skip
DECAY = (1.0, 3.0, 0.5, 6.0)  # 1/s


def note(instrument: int, f0: float, rng: np.random.Generator) -> np.ndarray:
    """One second of a synthetic instrument's note at f0 Hz."""
    t = np.arange(SR) / SR
    partials = sum(
        a * np.sin(2 * np.pi * f0 * (k + 1) * t) for k, a in enumerate(PARTIALS[instrument])
    )
    wave = 0.2 * partials * np.exp(-t * DECAY[instrument]) + rng.normal(0, 0.003, t.size)
    return wave.astype(np.float32)


def write_store(path: Path, kind: str, classes: tuple[str, ...], per_class: int) -> Path:
    """Every 5th note of a class to validation; NSynth groups = instrument, IRMAS = 3-clip song."""
    rng = np.random.default_rng(len(classes) + per_class)
    with StoreWriter(path, kind, classes) as writer:
        for k in range(len(classes)):
            for j in range(per_class):
                group = k if kind == "nsynth" else k * 1000 + j // 3
                split = "valid" if (j // 3 if kind != "nsynth" else j) % 5 == 0 else "train"
                entry = Entry(Path(f"{k}-{j}.wav"), f"{k}-{j}.wav", (k,), split, group)
                writer.add(entry, [note(k, 110 * 2 ** rng.uniform(0, 3), rng)], [{}])
        return writer.finish(SR, {})


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stores")
    return {
        "notes": write_store(root / "notes", "nsynth", ("ins0", "ins1", "ins2", "ins3"), 60),
        "small": write_store(root / "small", "nsynth", ("ins0", "ins1", "ins2", "ins3"), 12),
        "music": write_store(root / "music", "irmas-train", ("cel", "flu", "pia", "vio"), 30),
        "odd": write_store(root / "odd", "nsynth", ("ins0", "ins1", "ins2"), 12),  # 9 valid
    }


def tiny(name: str, *overrides: str) -> Config:
    return load_config(name, ["trainer.batch_size=16", "trainer.log_every_steps=1", *overrides])


def metrics_rows(run: Path) -> list[dict[str, str]]:
    import csv

    rows: list[dict[str, str]] = []
    for path in sorted((run / "logs" / "csv").glob("version_*/metrics.csv")):
        with open(path, newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


# ---- data order and items ---------------------------------------------------------------


def test_sampler_shards_cover_every_item_once_per_epoch() -> None:
    items = np.arange(10, 33)
    shards = [list(EpochSampler(items, True, seed=3, rank=r, world_size=3)) for r in range(3)]
    assert all(len(s) == 8 for s in shards)  # ceil(23 / 3), padded by wrapping
    seen = [item for shard in shards for item, epoch in shard]
    assert set(seen) == set(items.tolist()) and len(seen) == 24
    assert {epoch for shard in shards for _, epoch in shard} == {0}


def test_sampler_order_depends_on_epoch_and_resumes_mid_epoch() -> None:
    sampler = EpochSampler(np.arange(40), True, seed=0)
    first = list(sampler)
    assert list(sampler) == first  # same epoch, same order
    sampler.set_epoch(1)
    second = list(sampler)
    assert [i for i, _ in second] != [i for i, _ in first] and second[0][1] == 1
    sampler.resume(1, 16)
    assert list(sampler) == second[16:]
    assert list(sampler) == second  # the skip applies once


def test_concatenation_joins_notes_of_the_same_instrument_only(tmp_path: Path) -> None:
    # constant "notes" whose value is their item number + 1; groups {0..4}, {5..9}
    with StoreWriter(tmp_path / "s", "nsynth", ("a", "b")) as writer:
        for i in range(10):
            entry = Entry(Path(f"{i}.wav"), f"{i}.wav", (i // 5,), "train", i // 5)
            writer.add(entry, [np.full(SR, i + 1, dtype=np.float32)], [{}])
        writer.finish(SR, {})
    store = ClipStore.open(tmp_path / "s")
    pieces = AugmentConfig(concat_p=1.0, concat_mode="pieces")  # whole notes would fill 1 s
    dataset = ClipDataset(store, np.arange(10), pieces, seed=0)
    for item in range(10):
        wave, target = dataset[(item, 0)]
        levels, counts = np.unique(wave.numpy(), return_counts=True)
        values = set(levels[counts > 1000].tolist())  # held levels: notes, not fade samples
        same_group = {float(v) for v in range(1, 11) if (v - 1) // 5 == item // 5}
        assert wave.shape == (SR,) and target.tolist() == [item < 5, item >= 5]
        assert len(values) >= 2 and values <= same_group
    again = dataset[(3, 0)][0]
    assert torch.equal(again, dataset[(3, 0)][0])  # seeded by (seed, epoch, item)
    assert not torch.equal(again, dataset[(3, 1)][0])


def short_notes(path: Path) -> ClipStore:
    """12 training notes of 3 instruments (item % 3): each holds the level (item + 1) / 16
    for 0.2-0.5 s, then silence, so concatenation visibly joins notes in either mode."""
    rng = np.random.default_rng(0)
    with StoreWriter(path, "nsynth", ("a", "b", "c")) as writer:
        for i in range(12):
            wave = np.zeros(SR, dtype=np.float32)
            wave[: round(rng.uniform(0.2, 0.5) * SR)] = (i + 1) / 16
            writer.add(Entry(Path(f"{i}.wav"), f"{i}.wav", (i % 3,), "train", i % 3), [wave], [{}])
        writer.finish(SR, {})
    return ClipStore.open(path)


def one_key(
    store: ClipStore,
    items: np.ndarray,
    augment: AugmentConfig | None,
    seed: int,
    key: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """What a dataset key means, read clip by clip: the note and, for pre-training, up to 4
    other training notes of its instrument drawn by the (seed, epoch, item) generator,
    then concatenate_notes with that same generator."""
    item, epoch = key
    wave = store.audio(item)
    if augment is not None:
        rng = np.random.default_rng([seed, epoch, item])
        group = items[store.groups[items] == store.groups[item]]
        others = group[group != item]
        chosen = rng.choice(others, size=min(4, others.size), replace=False)
        partners = [store.audio(int(i)) for i in chosen]
        wave = concatenate_notes(wave, partners, rng, length=SR, sr=SR, p=augment.concat_p,
                                 mode=augment.concat_mode, trim_db=augment.concat_trim_db,
                                 seconds=augment.concat_seconds)  # fmt: skip
    return wave, np.asarray(store.targets[item])


@pytest.mark.parametrize("concat_p", [0.0, 0.5, 1.0])
def test_loader_batches_hold_each_keys_clip_in_order_also_after_a_resume(
    tmp_path: Path, concat_p: float
) -> None:
    store = short_notes(tmp_path / "s")
    items = store.indices("train")
    augment = AugmentConfig(concat_p=concat_p) if concat_p else None
    dataset = ClipDataset(store, items, augment, seed=5)
    sampler = EpochSampler(items, True, seed=5)
    sampler.set_epoch(1)
    keys = list(sampler)
    whole = list(clip_loader(dataset, sampler, 4, True, 0))
    sampler.resume(1, 4)  # one batch done
    resumed = list(clip_loader(dataset, sampler, 4, True, 0))
    expected = [one_key(store, items, augment, 5, key) for key in keys]
    assert len(whole) == 3 and len(resumed) == 2
    for k, (waves, targets) in enumerate(whole):
        assert torch.equal(waves, torch.from_numpy(np.stack([w for w, _ in expected[4 * k :][:4]])))
        assert torch.equal(
            targets, torch.from_numpy(np.stack([t for _, t in expected[4 * k :][:4]]))
        )
    for (waves, targets), (again, again_targets) in zip(whole[1:], resumed, strict=True):
        assert torch.equal(waves, again) and torch.equal(targets, again_targets)
    assert torch.equal(dataset[keys[5]][0], whole[1][0][1])  # one key alone: the same clip
    pairs = zip(expected, keys, strict=True)
    joined = sum(not np.array_equal(wave, store.audio(item)) for (wave, _), (item, _) in pairs)
    low, high = {0.0: (0, 0), 0.5: (1, 11), 1.0: (12, 12)}[concat_p]
    assert low <= joined <= high  # concatenation ran where it should


def test_a_batch_is_read_in_two_store_reads_not_one_per_clip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = short_notes(tmp_path / "s")
    items = store.indices("train")
    reads: list[int] = []
    batch = ClipStore.batch

    def counted(self: ClipStore, idx: Any) -> np.ndarray:
        reads.append(len(idx))
        return batch(self, idx)

    def per_clip(self: ClipStore, i: int) -> np.ndarray:
        raise AssertionError("one read per clip")

    monkeypatch.setattr(ClipStore, "batch", counted)
    monkeypatch.setattr(ClipStore, "audio", per_clip)
    dataset = ClipDataset(store, items, AugmentConfig(concat_p=1.0), seed=0)
    waves, targets = next(iter(clip_loader(dataset, EpochSampler(items, True), 8, True, 0)))
    assert waves.shape == (8, SR) and targets.shape == (8, 3)
    assert len(reads) == 2 and reads[0] == 8  # the notes, then their partners (distinct ones)
    assert 0 < reads[1] <= len(items)  # each distinct partner once


@pytest.mark.slow
def test_loader_workers_persist_across_epochs_and_deliver_the_same_batches(tmp_path: Path):
    store = short_notes(tmp_path / "s")
    items = store.indices("train")
    dataset = ClipDataset(store, items, AugmentConfig(concat_p=0.5), seed=1)

    def two_epochs(workers: int) -> tuple[Any, list[Any]]:
        sampler = EpochSampler(items, True, seed=1)
        loader = clip_loader(dataset, sampler, 4, True, workers, pin_memory=False)
        batches = []
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            batches += list(loader)
        return loader, batches

    loader, in_a_worker = two_epochs(1)
    _, here = two_epochs(0)
    assert loader.persistent_workers and len(here) == 6
    for (waves, targets), (again, again_targets) in zip(in_a_worker, here, strict=True):
        assert torch.equal(waves, again) and torch.equal(targets, again_targets)
    assert not torch.equal(here[0][0], here[3][0])  # epoch 1 is another order


# ---- runs ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_pretraining_learns_timbre_well_above_chance(stores: dict[str, Path], tmp_path: Path):
    config = tiny("tiny_pretrain", "trainer.epochs=4", "optim.peak_lr=3e-3",
                  "augment.mixup_p=0", "augment.effects_ratio=0")  # fmt: skip
    model_path = pretrain(config, stores["notes"], tmp_path / "run")
    accuracy = [float(r["valid_acc"]) for r in metrics_rows(tmp_path / "run") if r["valid_acc"]]
    assert len(accuracy) == 4
    assert accuracy[-1] >= 0.6 > 0.25 + 0.2  # chance is 1 / 4
    model_file = load_model_file(model_path)
    assert model_file.classes == ("ins0", "ins1", "ins2", "ins3")
    assert model_file.meta["stage"] == "pretrain" and model_file.meta["steps"] == 4 * 12
    assert model_file.meta["metrics"]["valid_acc"] == pytest.approx(accuracy[-1])


@pytest.mark.slow
def test_finetuning_replaces_the_head_and_keeps_a_validation_threshold(
    stores: dict[str, Path], tmp_path: Path
) -> None:
    pre = pretrain(tiny("tiny_pretrain", "trainer.epochs=1"), stores["small"], tmp_path / "pre")
    fine = finetune(tiny("tiny_finetune", "trainer.epochs=2"), stores["music"], pre,
                    tmp_path / "fine")  # fmt: skip
    pre_file, fine_file = load_model_file(pre), load_model_file(fine)
    assert fine_file.classes == ("cel", "flu", "pia", "vio")
    assert fine_file.meta["init"] == str(pre.resolve())
    assert fine_file.threshold == pytest.approx(fine_file.meta["metrics"]["valid_threshold"])
    assert 0 < fine_file.threshold < 1 and 0 <= fine_file.meta["metrics"]["valid_f1_micro"] <= 1
    # the body came from the pre-trained model (the sinc cut-offs move slowly at lr 2.5e-4)
    pre_sinc, fine_sinc = pre_file.model.sinc.state_dict(), fine_file.model.sinc.state_dict()
    for key, value in pre_sinc.items():
        assert torch.allclose(value, fine_sinc[key], atol=0.05 * float(value.abs().max()))
    scratch = finetune(tiny("tiny_scratch", "trainer.epochs=1", "data.fraction=0.5"),
                       stores["music"], "scratch", tmp_path / "scratch")  # fmt: skip
    assert load_model_file(scratch).meta["init"] == "scratch"


def test_a_run_directory_is_never_overwritten(stores: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.txt").write_text("earlier results")
    with pytest.raises(InstrecError, match="--resume"):
        pretrain(tiny("tiny_pretrain"), stores["small"], out)
    with pytest.raises(InstrecError, match=r"no config\.yaml"):
        pretrain(tiny("tiny_pretrain"), stores["small"], out, resume=True)
    assert (out / "results.txt").read_text() == "earlier results"


def test_wrong_stage_and_tiny_data_are_clear_errors(stores: dict[str, Path], tmp_path: Path):
    with pytest.raises(InstrecError, match="finetune config"):
        pretrain(load_config("tiny_finetune"), stores["small"], tmp_path / "a")
    with pytest.raises(InstrecError, match="fewer than one batch"):
        pretrain(load_config("tiny_pretrain", ["trainer.batch_size=512"]), stores["small"],
                 tmp_path / "b")  # fmt: skip


def _poison_weights(module: Any) -> None:
    with torch.no_grad():
        module.model.head.out.weight.fill_(float("nan"))  # the next loss is NaN


def _poison_gradient(module: Any) -> None:
    module.model.head.out.bias.grad[0] = float("inf")  # the loss was finite


@pytest.mark.parametrize(
    ("poison", "hook", "message"),
    [
        (_poison_weights, "on_train_batch_start", "the training loss is nan"),
        (_poison_gradient, "on_after_backward", "a gradient is not finite"),
    ],
)
def test_non_finite_training_stops_and_keeps_the_last_good_checkpoint(
    stores: dict[str, Path], tmp_path: Path, poison: Any, hook: str, message: str
) -> None:
    import lightning as L

    def at_step_3(trainer: Any, module: Any, *args: Any) -> None:
        if trainer.global_step == 3:
            poison(module)

    callback = type("Poison", (L.Callback,), {hook: lambda self, *args: at_step_3(*args)})()
    config = tiny("tiny_pretrain", "trainer.checkpoint_every_steps=2", "trainer.epochs=3")
    with pytest.raises(InstrecError, match=f"step 3: {message}"):
        pretrain(config, stores["small"], tmp_path / "run", callbacks=[callback])
    checkpoint = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())
    assert not (tmp_path / "run/model.pt").exists()


def test_bf16_mixed_precision_trains_and_keeps_fp32_weights(
    stores: dict[str, Path], tmp_path: Path
) -> None:
    """The GPU default (bf16 autocast, augmentation kept in fp32) exercised on CPU autocast."""
    config = tiny("tiny_pretrain", "trainer.precision=bf16-mixed", "trainer.epochs=1")
    path = pretrain(config, stores["small"], tmp_path / "run")
    parameters = list(load_model_file(path).model.parameters())
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in parameters)
    assert any(float(row.get("train_loss_step") or 0) > 0 for row in metrics_rows(tmp_path / "run"))


DDP_RUN = """
import sys
from instrec.train.config import load_config
from instrec.train.fit import pretrain

pretrain(load_config("tiny_pretrain", sys.argv[3:]), sys.argv[1], sys.argv[2])
"""


@pytest.mark.slow
def test_two_process_ddp_on_cpu_trains_and_validates_every_item_once(
    stores: dict[str, Path], tmp_path: Path
) -> None:
    """DDP (gloo) with 2 CPU processes: the batch is split, both ranks train, validation is
    gathered from both shares without the padding duplicate (9 items over 2 ranks), and
    rank 0 writes the model file."""
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(DDP_RUN))
    overrides = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.batch_size=8",
                 "trainer.epochs=2", "trainer.num_workers=0"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(script), str(stores["odd"]), str(tmp_path / "run"), *overrides]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MEMBER: 2/2" in done.stderr and "distributed_backend=gloo" in done.stderr
    last = [row for row in metrics_rows(tmp_path / "run") if row.get("valid_acc")][-1]

    model = load_model_file(tmp_path / "run/model.pt").model
    store = ClipStore.open(stores["odd"])
    valid = store.indices("valid")
    assert len(valid) == 9
    with torch.no_grad():
        logits = model(torch.from_numpy(store.batch(valid)))
    targets = torch.from_numpy(store.targets[valid])
    accuracy = (logits.argmax(1) == targets.argmax(1)).float().mean().item()
    loss = torch.nn.functional.cross_entropy(logits, targets).item()
    assert float(last["valid_acc"]) == pytest.approx(accuracy, abs=1e-6)
    assert float(last["valid_loss"]) == pytest.approx(loss, rel=1e-4)


KILLED_RUN = """
import os, sys
import lightning as L
from instrec.train.config import load_config
from instrec.train.fit import pretrain

class Kill(L.Callback):  # a hard kill (no clean-up) once `step` steps are done
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == int(sys.argv[3]):
            os._exit(9)

config = load_config("tiny_pretrain", [a for a in sys.argv[4:] if a != "--resume"])
pretrain(config, sys.argv[1], sys.argv[2], resume="--resume" in sys.argv, callbacks=[Kill()])
"""


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_steps_and_weights(
    stores: dict[str, Path], tmp_path: Path
) -> None:
    script = tmp_path / "killed_run.py"
    script.write_text(textwrap.dedent(KILLED_RUN))
    overrides = ["trainer.batch_size=16", "trainer.epochs=3", "trainer.checkpoint_every_steps=3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(out: Path, kill_at: int, *extra: str) -> subprocess.CompletedProcess:
        command = [sys.executable, str(script), str(stores["small"]), str(out), str(kill_at)]
        return subprocess.run([*command, *overrides, *extra], env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip

    whole = run(tmp_path / "whole", -1)
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = run(tmp_path / "killed", 4)  # 2 steps an epoch: saved mid-epoch 1 at step 3
    assert killed.returncode == 9 and not (tmp_path / "killed/model.pt").exists()
    resumed = run(tmp_path / "killed", -1, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = (
        load_model_file(tmp_path / "whole/model.pt"),
        load_model_file(tmp_path / "killed/model.pt"),
    )
    assert a.meta["steps"] == b.meta["steps"] == 3 * (36 // 16)
    for key, value in a.model.state_dict().items():
        assert torch.allclose(value, b.model.state_dict()[key], atol=1e-5), key
    info = yaml.safe_load((tmp_path / "killed/run.json").read_text())
    assert len(info["resumed"]) == 1
    again = run(tmp_path / "killed", -1, "--resume")
    assert again.returncode != 0 and "has finished" in again.stderr


def test_same_instrument_partners_are_grouped_and_an_empty_split_has_none() -> None:
    groups, items = np.array([2, 0, 2, 1]), np.array([10, 11, 12, 13])
    members = _members_by_group(groups, items)
    assert {group: list(found) for group, found in members.items()} == {
        0: [11],
        1: [13],
        2: [10, 12],
    }
    assert _members_by_group(np.array([], dtype=np.int64), np.array([], dtype=np.int64)) == {}
