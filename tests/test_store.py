"""The clip store: what is written is what is read, atomically, and splits keep their promises."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from instrec.data.store import (
    ClipStore,
    Entry,
    StoreWriter,
    cover_classes_in_train,
    sample_units,
    split_groups,
)
from instrec.errors import InstrecError

CLASSES = ("a", "b", "c")


def entry(k: int, labels: tuple[int, ...], split: str = "train", group: int = 0) -> Entry:
    return Entry(Path(f"/data/f{k}.wav"), f"f{k}.wav", labels, split, group, {"note": f"n{k}"})


def write_store(path: Path, clips: list[np.ndarray], entries: list[Entry]) -> ClipStore:
    with StoreWriter(path, "folder", CLASSES) as writer:
        for clip, item in zip(clips, entries, strict=True):
            writer.add(item, clip[None, :], [{"clip": "0"}])
        writer.finish(16_000, {"skipped": {"no such file": 2}})
    return ClipStore.open(path)


def test_round_trip_of_variable_length_items(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clips = [rng.normal(0, 0.3, n).astype(np.float32) for n in (100, 16_000, 7)]
    entries = [entry(0, (0,), "test", 5), entry(1, (1, 2), "test", 6), entry(2, (), "test", 7)]
    store = write_store(tmp_path / "s", clips, entries)
    assert len(store) == 3 and store.kind == "folder" and store.classes == CLASSES
    assert store.clip_length is None and store.sample_rate == 16_000
    for clip, i in zip(clips, range(3), strict=True):
        got = store.audio(i)
        assert got.dtype == np.float32 and got.shape == clip.shape
        # 16 bits below the item's own peak: error at most half a step of peak / 32767
        step = np.abs(clip).max() / 32_767
        assert np.abs(got - clip).max() <= 0.5001 * step
    np.testing.assert_array_equal(store.targets, [[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(store.labels, [0, -1, -1])
    np.testing.assert_array_equal(store.groups, [5, 6, 7])
    assert list(store.sources) == ["f0.wav", "f1.wav", "f2.wav"]
    assert list(store.column("note")) == ["n0", "n1", "n2"]
    assert store.skipped == {"no such file": 2}
    with pytest.raises(InstrecError, match="different lengths"):
        store.batch([0])
    with pytest.raises(IndexError):
        store.audio(3)


def test_sixteen_bit_audio_is_stored_exactly_and_loud_audio_keeps_its_peaks(
    tmp_path: Path,
) -> None:
    pcm = np.arange(-32_768, 32_768, 7, dtype=np.int16)
    exact = (pcm / 32_768).astype(np.float32)  # what load_audio gives for a 16-bit wav
    loud = np.linspace(-3.5, 2.0, 1000).astype(np.float32)  # -12 LUFS peaks may exceed 1
    store = write_store(tmp_path / "s", [exact, loud], [entry(0, (0,)), entry(1, (1,))])
    np.testing.assert_array_equal(store.audio(0), exact)
    np.testing.assert_allclose(store.audio(1), loud, atol=3.5 / 32_767)
    assert store.audio(1).min() == pytest.approx(-3.5, abs=1e-6)


def test_fixed_length_batches_and_split_indices(tmp_path: Path) -> None:
    clips = [np.full(16_000, k / 10, dtype=np.float32) for k in range(6)]
    splits = ["train", "valid", "train", "test", "train", "valid"]
    entries = [entry(k, (k % 3,), split, k) for k, split in enumerate(splits)]
    store = write_store(tmp_path / "s", clips, entries)
    assert store.clip_length == 16_000
    batch = store.batch(np.array([4, 0, 4]))
    assert batch.shape == (3, 16_000) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[:, 0], [0.4, 0.0, 0.4], rtol=1e-6)
    np.testing.assert_array_equal(store.indices("train"), [0, 2, 4])
    np.testing.assert_array_equal(store.indices("valid"), [1, 5])
    assert store.header["splits"] == {"train": 3, "valid": 2, "test": 1}
    with pytest.raises(InstrecError, match="unknown split"):
        store.indices("dev")


def test_pickles_as_its_path(tmp_path: Path) -> None:
    store = write_store(tmp_path / "s", [np.zeros(16_000, np.float32)], [entry(0, (1,))])
    data = pickle.dumps(store)
    assert len(data) < 500  # the audio map is not copied into a DataLoader worker
    again = pickle.loads(data)
    assert again.path == store.path and len(again) == 1


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), StoreWriter(tmp_path / "s", "folder", CLASSES) as writer:
        writer.add(entry(0, (0,)), np.zeros((1, 10)), [{}])
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    first = write_store(tmp_path / "s", [np.zeros(5, np.float32)], [entry(0, (0,))])
    with pytest.raises(InstrecError, match="already exists"):
        StoreWriter(first.path, "folder", CLASSES)
    with StoreWriter(first.path, "folder", CLASSES, force=True) as writer:
        writer.add(entry(1, (2,)), np.ones((1, 9)), [{"clip": "0"}])
        writer.finish(16_000, {})
    assert len(ClipStore.open(first.path).audio(0)) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temp or old folders


def test_empty_store_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InstrecError, match="no items"):
        StoreWriter(tmp_path / "s", "folder", CLASSES).finish(16_000, {})
    assert list(tmp_path.iterdir()) == []


def test_open_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InstrecError, match="not a clip store"):
        ClipStore.open(tmp_path)
    (tmp_path / "store.json").write_text('{"format": "other"}')
    with pytest.raises(InstrecError, match=r"store\.json"):
        ClipStore.open(tmp_path)


def test_split_groups_is_group_disjoint_and_stratified() -> None:
    # 2 classes x 40 songs x 3 excerpts
    entries = [entry(s * 3 + k, (s % 2,), "train", s) for s in range(80) for k in range(3)]
    split = split_groups(entries, 0.15, seed=1)
    valid_groups = {e.group for e in split if e.split == "valid"}
    train_groups = {e.group for e in split if e.split == "train"}
    assert valid_groups and not valid_groups & train_groups
    for label in (0, 1):
        share = np.mean([e.split == "valid" for e in split if e.labels == (label,)])
        assert 0.15 <= share < 0.15 + 3 / 120 + 1e-9  # overshoots by under one song
    assert split_groups(entries, 0.15, seed=1) == split  # seeded


def test_split_groups_keeps_a_lone_song_in_training() -> None:
    entries = [entry(k, (0,), "train", 0) for k in range(3)]
    assert all(e.split == "train" for e in split_groups(entries, 0.5, seed=0))


def test_sample_units_takes_a_fraction_of_each_class() -> None:
    units = np.repeat(np.arange(20), 3)  # 20 songs of 3 clips
    labels = units % 2
    kept = sample_units(units, labels, 0.3, seed=0)
    assert len(kept) == 6 and {int(u) % 2 for u in kept} == {0, 1}
    assert len(sample_units(units, labels, 0.01, seed=0)) == 2  # at least one per class


def test_cover_classes_in_train_moves_unseen_classes() -> None:
    entries = [entry(0, (0,), "train"), entry(1, (0,), "valid"), entry(2, (1,), "valid")]
    moved = cover_classes_in_train(entries)
    assert [e.split for e in moved] == ["train", "valid", "train"]


def test_an_evaluation_store_keeps_its_validation_split() -> None:
    """No training entries: the validation split is there to pick thresholds, not to train."""
    entries = [
        Entry(Path(f"{k}.wav"), f"{k}.wav", (k % 2,), "valid" if k < 2 else "test", k)
        for k in range(4)
    ]
    assert cover_classes_in_train(entries) == entries
    trained = [*entries, Entry(Path("t.wav"), "t.wav", (0,), "train", 9)]
    moved = cover_classes_in_train(trained)  # class 1 was never trained: its valid item moves
    assert [e.split for e in moved] == ["valid", "train", "test", "test", "train"]
