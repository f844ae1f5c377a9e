"""Your own data: a folder plus a CSV of path,labels with any class list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
from dataset_trees import prepare_store, write_folder_tree

from instrec.cli import main
from instrec.data.store import ClipStore

ROWS = {
    "live set/01 Überleitung (take 2).wav": ("banjo", "voice"),
    "studio/[demo] riff.flac": ("banjo",),
    "studio/ambience.wav": (),
    "studio/duet.wav": ("voice", "harp"),
}


def test_whole_files_with_multiple_labels_for_evaluation(tmp_path: Path) -> None:
    csv_path = write_folder_tree(tmp_path / "mine", ROWS)
    store = ClipStore.open(
        prepare_store("folder", csv_path.parent, tmp_path / "s", "--csv", str(csv_path))
    )
    assert store.kind == "folder" and store.classes == ("banjo", "harp", "voice")
    assert list(store.sources) == list(ROWS) and set(store.splits) == {"test"}
    np.testing.assert_array_equal(store.targets, [[1, 0, 1], [1, 0, 0], [0, 0, 0], [0, 1, 1]])
    assert store.clip_length == store.audio(0).size == 40_000  # 2.5 s at 16 kHz, all alike
    meter = pyloudnorm.Meter(16_000)
    assert meter.integrated_loudness(store.audio(1).astype(np.float64)) == pytest.approx(
        -12, abs=0.05
    )


def test_clips_for_fine_tuning_with_a_fixed_class_list(tmp_path: Path, capsys) -> None:
    csv_path = write_folder_tree(tmp_path / "mine", ROWS)
    out = tmp_path / "s"
    prepare_store(
        "folder",
        csv_path.parent,
        out,
        "--csv",
        str(csv_path),
        "--clips",
        "--classes",
        "voice,banjo",
        "--valid-fraction",
        "0.3",
    )
    store = ClipStore.open(out)
    assert store.classes == ("voice", "banjo") and store.clip_length == 16_000
    assert "duet.wav: unknown class (label 'harp'" in capsys.readouterr().err
    assert len(store) == 3 * 2  # 3 files kept, two whole seconds each
    assert list(store.column("clip")) == ["0", "1"] * 3
    assert set(store.splits) <= {"train", "valid"} and "train" in set(store.splits)


def test_csv_split_column_is_respected_and_missing_files_skipped(tmp_path: Path, capsys) -> None:
    csv_path = write_folder_tree(tmp_path / "mine", ROWS)
    lines = csv_path.read_text().splitlines()
    splits = ["split", "train", "valid", "test", "train"]
    rows = [f"{line},{split}" for line, split in zip(lines, splits, strict=True)]
    csv_path.write_text("\n".join([*rows, "gone.wav,banjo,train"]) + "\n")
    store = ClipStore.open(
        prepare_store("folder", csv_path.parent, tmp_path / "s", "--csv", str(csv_path))
    )
    assert list(store.splits) == splits[1:]
    assert "gone.wav: no such file (listed on line 6 of labels.csv)" in capsys.readouterr().err


def test_csv_without_labels_column_is_an_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "x.csv").write_text("file,instruments\na.wav,pia\n")
    args = ["prepare", "folder", str(tmp_path), "--csv", str(tmp_path / "x.csv"), "--out", "o"]
    assert main(args) == 2
    assert "x.csv: no 'path' column" in capsys.readouterr().err
