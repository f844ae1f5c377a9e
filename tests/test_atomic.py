"""Atomic writes: an output is either the old one or the whole new one, never a part."""

from __future__ import annotations

from pathlib import Path

import pytest

from instrec.atomic import atomic_path, replace_folder, write_text_atomic


def test_write_text_atomic_replaces_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "table.md"
    write_text_atomic(path, "old")
    write_text_atomic(path, "new ±")
    assert path.read_text(encoding="utf-8") == "new ±"
    assert [p.name for p in path.parent.iterdir()] == ["table.md"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as temp:
        temp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_replace_folder_swaps_in_the_new_and_removes_the_old(tmp_path: Path) -> None:
    destination, finished = tmp_path / "store", tmp_path / "store.tmp"
    destination.mkdir()
    (destination / "old.txt").write_text("old")
    finished.mkdir()
    (finished / "new.txt").write_text("new")
    replace_folder(finished, destination)
    assert [p.name for p in destination.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["store"]
