"""NSynth as distributed: merged train+valid, 4 % stratified hold-out, silent notes dropped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from dataset_trees import prepare_store, tone, write_nsynth_tree, write_wav

from instrec.cli import main
from instrec.data.nsynth import energy_db, hold_out
from instrec.data.store import ClipStore, Entry

INSTRUMENTS = ("bass_synthetic_000", "guitar_acoustic_001", "keyboard_electronic_002")


@pytest.fixture(scope="module")
def nsynth_store(tmp_path_factory: pytest.TempPathFactory) -> ClipStore:
    root = write_nsynth_tree(tmp_path_factory.mktemp("nsynth"), silent=1)
    return ClipStore.open(prepare_store("nsynth", root, root / "store", "--valid-fraction", "0.2"))


def test_energy_db_of_a_known_sine() -> None:
    t = np.arange(16_000) / 16_000
    assert energy_db(0.1 * np.sin(2 * np.pi * 440 * t)) == pytest.approx(-23.01, abs=0.01)
    assert energy_db(np.zeros(10)) == float("-inf")


def test_notes_are_the_first_second_at_their_own_level(nsynth_store: ClipStore) -> None:
    assert nsynth_store.clip_length == 16_000
    for i in (0, len(nsynth_store) - 1):
        wav, sr = soundfile.read(nsynth_store.path.parent / nsynth_store.sources[i])
        assert sr == 16_000
        np.testing.assert_array_equal(nsynth_store.audio(i), wav[:16_000])  # bit-exact


def test_classes_are_instrument_ids_and_groups_follow_them(nsynth_store: ClipStore) -> None:
    assert nsynth_store.classes == tuple(sorted((*INSTRUMENTS, "flute_acoustic_003")))
    np.testing.assert_array_equal(nsynth_store.groups, nsynth_store.labels)
    names = np.array(nsynth_store.classes)[nsynth_store.labels]
    assert all(
        s.split("/")[-1].startswith(n) for s, n in zip(nsynth_store.sources, names, strict=True)
    )
    assert set(nsynth_store.column("family")) == {"bass", "guitar", "keyboard", "flute"}


def test_silent_notes_are_dropped_and_counted(nsynth_store: ClipStore) -> None:
    assert nsynth_store.skipped == {"near-silent note": 5}  # one per instrument and split
    assert len(nsynth_store) == 5 * 4  # 5 instrument-splits x (5 notes - 1 silent)
    assert min(energy_db(nsynth_store.audio(i)) for i in range(len(nsynth_store))) > -40


def test_train_and_valid_merge_and_test_stays_apart(nsynth_store: ClipStore) -> None:
    official = nsynth_store.column("official_split")
    assert set(nsynth_store.splits[official == "test"]) == {"test"}
    merged = official != "test"
    assert set(nsynth_store.splits[merged]) == {"train", "valid"}
    valid = nsynth_store.indices("valid")
    assert set(nsynth_store.labels[valid]) <= set(
        nsynth_store.labels[nsynth_store.indices("train")]
    )


def test_hold_out_is_four_percent_stratified_and_leaves_every_instrument() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 90, size=200)  # notes per instrument, some with a single note
    entries = [
        Entry(Path(f"{g}-{n}.wav"), f"{g}-{n}.wav", (g,), "train", g)
        for g, size in enumerate(sizes)
        for n in range(size)
    ]
    split = hold_out(entries, 0.04, seed=3)
    valid = np.array([e.group for e in split if e.split == "valid"])
    assert valid.size == round(0.04 * sizes.sum())
    counts = np.bincount(valid, minlength=sizes.size)
    assert np.all(np.abs(counts - 0.04 * sizes) < 1)  # each instrument within one note
    assert np.all(counts < sizes)  # every instrument keeps a training note
    assert hold_out(entries, 0.04, seed=3) == split


def test_bad_nsynth_trees_are_reported_by_file(tmp_path: Path, capsys) -> None:
    root = write_nsynth_tree(
        tmp_path / "ns", {"train": INSTRUMENTS[:2], "valid": ("vocal_acoustic_004",)}
    )
    (root / "nsynth-valid" / "examples.json").unlink()
    audio = root / "nsynth-train" / "audio"
    write_wav(audio / "bass_synthetic_000-060-100.wav", tone(262, 4, 44_100), 44_100)
    write_wav(audio / "stray_note-060-100.wav", tone(262, 4, 16_000), 16_000)
    examples_path = root / "nsynth-train" / "examples.json"
    examples = json.loads(examples_path.read_text())
    examples["guitar_acoustic_001-048-100"]["sample_rate"] = 44_100
    examples_path.write_text(json.dumps(examples))
    (audio / "guitar_acoustic_001-055-100.wav").write_bytes(b"")
    prepare_store("nsynth", root, tmp_path / "s")
    err = capsys.readouterr().err
    assert "nsynth-valid/examples.json: missing" in err
    assert "bass_synthetic_000-060-100.wav: wrong sample rate (44100 Hz" in err
    assert "stray_note-060-100.wav: not listed in examples.json" in err
    assert "examples.json: unusable note record (guitar_acoustic_001-048-100: sample_rate" in err
    assert "guitar_acoustic_001-055-100.wav: cannot decode audio" in err
    assert len(ClipStore.open(tmp_path / "s")) == 10 - 3
    code = main(["prepare", "nsynth", str(root), "--out", str(tmp_path / "t"), "--strict"])
    assert code == 2 and "nsynth-valid/examples.json: missing" in capsys.readouterr().err


def test_no_examples_json_anywhere_is_an_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "nsynth-train" / "audio").mkdir(parents=True)
    assert main(["prepare", "nsynth", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    assert "no nsynth-train/valid/test folder with an examples.json" in capsys.readouterr().err
