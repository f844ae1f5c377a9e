"""IRMAS as distributed: real training names, test label files, song-disjoint clips at -12 LUFS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
from dataset_trees import (
    IRMAS_TEST_FILES,
    IRMAS_TRAIN_SONGS,
    prepare_store,
    write_irmas_test_tree,
    write_irmas_train_names,
    write_irmas_train_tree,
    write_wav,
)

from instrec.audio import load_audio
from instrec.cli import main
from instrec.data.irmas import TrainName, excerpt_clips, parse_train_name, read_test_labels
from instrec.data.store import ClipStore
from instrec.errors import AudioError
from instrec.labels import IRMAS_CLASSES, IRMAS_GENRES

REAL_NAMES = Path(__file__).parent / "fixtures" / "irmas-train-names.txt"


def real_names() -> list[str]:
    lines = REAL_NAMES.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def lufs(x: np.ndarray) -> float:
    return float(pyloudnorm.Meter(16_000).integrated_loudness(x.astype(np.float64)))


@pytest.fixture(scope="module")
def train_store(tmp_path_factory: pytest.TempPathFactory) -> ClipStore:
    root = write_irmas_train_tree(tmp_path_factory.mktemp("irmas"))
    return ClipStore.open(prepare_store("irmas-train", root, root / "store"))


def test_parses_the_real_training_names() -> None:
    names = real_names()
    assert len(names) == 30
    for name in names:
        folder, stem = name.split("/")
        parsed = parse_train_name(stem)
        assert parsed.label == folder
        assert parsed.drums in ("", "dru", "nod")
        assert parsed.genre in IRMAS_GENRES
        assert parsed.excerpt in (1, 2, 3)
        assert parsed.song == stem.rsplit("__", 1)[0]
    assert parse_train_name("115__[cel][nod][cla]0055__1") == TrainName(
        "cel", "nod", "cla", "115__[cel][nod][cla]0055", 1
    )
    assert parse_train_name("[gel][pop_roc]0740__3") == TrainName(
        "gel", "", "pop_roc", "[gel][pop_roc]0740", 3
    )


def test_rejects_a_name_without_label_and_genre() -> None:
    with pytest.raises(ValueError, match="does not look like"):
        parse_train_name("my recording__1")


def test_real_names_prepare_into_three_clips_each(tmp_path: Path) -> None:
    names = real_names()
    root = write_irmas_train_names(tmp_path / "irmas", names)
    store = ClipStore.open(prepare_store("irmas-train", root, tmp_path / "s"))
    assert len(store) == 3 * len(names)
    songs = {parse_train_name(n.split("/")[1]).song for n in names}
    assert len(set(store.groups)) == len(songs)
    for source, code in zip(store.sources, store.targets.argmax(axis=1), strict=True):
        assert source.split("/")[1] == IRMAS_CLASSES[code]


def test_training_clips_are_each_at_minus_12_lufs(train_store: ClipStore) -> None:
    """The authors' code normalises each 1 s clip after slicing (irmas_dataset.py)."""
    files = sum(len(songs) for songs in IRMAS_TRAIN_SONGS.values()) * 3
    assert len(train_store) == 3 * files and train_store.clip_length == 16_000
    assert set(train_store.sources[:3]) == {train_store.sources[0]}
    source = train_store.path.parent / train_store.sources[0]
    raw = load_audio(source)[:48_000].reshape(3, -1)  # 16 kHz mono, before normalisation
    for clip, original in zip(train_store.batch([0, 1, 2]), raw, strict=True):
        assert lufs(clip) == pytest.approx(-12.0, abs=0.05)
        gain = np.dot(clip, original) / np.dot(original, original)  # one gain per clip
        np.testing.assert_allclose(clip, gain * original, atol=2e-3)


def _loud_quiet_silent(path: Path) -> Path:
    """A 3 s excerpt: a loud second, a second 20 dB quieter, a silent second (44.1 kHz)."""
    sr = 44_100
    t = np.arange(sr) / sr
    loud = 0.5 * np.sin(2 * np.pi * 440 * t)
    return write_wav(path, np.concatenate([loud, loud / 10, np.zeros(sr)]), sr)


def test_clip_normalisation_levels_each_clip_and_drops_silent_ones(tmp_path: Path) -> None:
    clips = excerpt_clips(_loud_quiet_silent(tmp_path / "x.wav"))
    assert clips.shape == (2, 16_000)
    assert [lufs(c) for c in clips] == pytest.approx([-12.0, -12.0], abs=0.05)


def test_excerpt_normalisation_keeps_the_clips_relative_levels(tmp_path: Path) -> None:
    clips = excerpt_clips(_loud_quiet_silent(tmp_path / "x.wav"), normalize="excerpt")
    assert clips.shape == (3, 16_000) and np.abs(clips[2]).max() < 0.01  # resampler ringing
    assert lufs(clips.reshape(-1)) == pytest.approx(-12.0, abs=0.05)
    assert lufs(clips[0]) - lufs(clips[1]) == pytest.approx(20.0, abs=0.1)


def test_an_excerpt_with_no_audible_clip_is_refused(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "quiet.wav", np.zeros(44_100 * 3), 44_100)
    with pytest.raises(AudioError, match=r"quiet\.wav: is silent"):
        excerpt_clips(path)


def test_validation_is_song_disjoint_and_every_class_trains(train_store: ClipStore) -> None:
    valid, train = train_store.indices("valid"), train_store.indices("train")
    assert valid.size and not set(train_store.groups[valid]) & set(train_store.groups[train])
    classes = set(train_store.labels[train])
    assert classes == {IRMAS_CLASSES.index(code) for code in IRMAS_TRAIN_SONGS}
    songs = train_store.column("song")
    assert len(set(songs[valid])) == len(set(train_store.groups[valid]))


def test_fraction_keeps_training_songs_and_all_validation(tmp_path: Path) -> None:
    root = write_irmas_train_tree(tmp_path / "irmas")
    full = ClipStore.open(prepare_store("irmas-train", root, tmp_path / "full"))
    part = ClipStore.open(prepare_store("irmas-train", root, tmp_path / "p", "--fraction", "0.5"))
    assert list(part.sources[part.indices("valid")]) == list(full.sources[full.indices("valid")])
    train_songs = len(set(full.groups[full.indices("train")]))
    assert len(set(part.groups[part.indices("train")])) == train_songs // 2
    assert set(part.labels[part.indices("train")]) == set(full.labels[full.indices("train")])


def test_reads_test_label_files(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("voi\t\npia  \n\ngel\n", encoding="utf-8")
    assert read_test_labels(path) == tuple(IRMAS_CLASSES.index(c) for c in ("gel", "pia", "voi"))
    path.write_text("pia\nbanjo\n")
    with pytest.raises(ValueError, match="unknown class code 'banjo'"):
        read_test_labels(path)
    path.write_text("\n")
    with pytest.raises(ValueError, match="no class code"):
        read_test_labels(path)


def test_test_files_keep_awkward_names_whole_length_and_labels(tmp_path: Path) -> None:
    root = write_irmas_test_tree(tmp_path / "irmas")
    store = ClipStore.open(prepare_store("irmas-test", root, tmp_path / "s"))
    assert store.clip_length is None and set(store.splits) == {"test"}
    expected = {f"{name}.wav": codes for name, codes in IRMAS_TEST_FILES.items()}
    for i, source in enumerate(store.sources):
        part, stem = source.split("/")[0], source.split("/")[-1]
        codes = expected[f"{part.removeprefix('IRMAS-TestingData-')}/{stem}"]
        assert {IRMAS_CLASSES[k] for k in np.flatnonzero(store.targets[i])} == set(codes)
        assert store.audio(i).size in (5 * 16_000, 20 * 16_000)
        assert lufs(store.audio(i)) == pytest.approx(-12.0, abs=0.05)


def bad_test_tree(root: Path) -> Path:
    write_irmas_test_tree(root)
    folder = root / "IRMAS-TestingData-Part3" / "Part3"
    write_wav(folder / "no labels.wav", np.zeros((44_100, 2)), 44_100)
    write_wav(folder / "bad code.wav", np.full((44_100, 2), 0.1), 44_100)
    (folder / "bad code.txt").write_text("xyz\n")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "empty.txt").write_text("pia\n")
    write_wav(folder / "silent.wav", np.zeros((44_100, 2)), 44_100)
    (folder / "silent.txt").write_text("pia\n")
    return root


def test_bad_test_files_are_skipped_counted_and_named(tmp_path: Path, capsys) -> None:
    root = bad_test_tree(tmp_path / "irmas")
    prepare_store("irmas-test", root, tmp_path / "s")
    out, err = capsys.readouterr()
    assert "no labels.wav: no label file beside it (no labels.txt)" in err
    assert "bad code.txt: bad label file (unknown class code 'xyz'" in err
    assert "empty.wav: cannot decode audio" in err
    assert "silent.wav: is silent (no 400 ms block above -70 LUFS)" in err
    assert "3 items from 3 files" in out and "skipped 4 files" in out
    assert ClipStore.open(tmp_path / "s").skipped == {
        "no label file beside it": 1, "bad label file": 1, "cannot decode audio": 1,
        "is silent": 1,
    }  # fmt: skip
    listed = ClipStore.open(tmp_path / "s").header["skipped_files"]
    assert sorted(Path(path).name for path, _ in listed) == [
        "bad code.txt", "empty.wav", "no labels.wav", "silent.wav"
    ]  # fmt: skip


def test_strict_stops_at_the_first_bad_file(tmp_path: Path, capsys) -> None:
    root = bad_test_tree(tmp_path / "irmas")
    code = main(["prepare", "irmas-test", str(root), "--out", str(tmp_path / "s"), "--strict"])
    assert code == 2
    assert "bad code.txt: bad label file" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_label_disagreeing_with_folder_is_skipped(tmp_path: Path, capsys) -> None:
    root = write_irmas_train_tree(tmp_path / "irmas", {"cel": ("[cel][cla]0001",)}, excerpts=1)
    wav = root / "IRMAS-TrainingData" / "cel" / "[vio][cla]0009__1.wav"
    write_wav(wav, np.full((44_100, 2), 0.1), 44_100)
    prepare_store("irmas-train", root, tmp_path / "s")
    assert "label differs from its folder ([vio] in cel/)" in capsys.readouterr().err
