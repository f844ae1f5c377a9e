"""`instrec prepare`: one summary line, atomic and non-destructive, same result in parallel."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pytest
from dataset_trees import prepare_store, write_irmas_train_tree

from instrec.cli import main
from instrec.data.prepare import SHOWN_SKIPS, SkipLog, add_arguments
from instrec.data.store import ClipStore
from instrec.errors import InstrecError

SONGS = {"cel": ("[cel][cla]0001", "[cel][cla]0002"), "flu": ("[flu][cla]0003", "[flu][jaz_blu]4")}


@pytest.fixture(scope="module")
def irmas_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_irmas_train_tree(tmp_path_factory.mktemp("irmas"), SONGS)


def test_prints_one_summary_line(irmas_root: Path, tmp_path: Path, capsys) -> None:
    prepare_store("irmas-train", irmas_root, tmp_path / "s")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        r"prepared irmas-train: 36 items from 12 files \(train \d+, valid \d+\) -> .*s "
        r"\([0-9.e-]+ GB\); skipped 0 files",
        lines[0],
    )


def test_never_overwrites_without_force(irmas_root: Path, tmp_path: Path, capsys) -> None:
    out = prepare_store("irmas-train", irmas_root, tmp_path / "s", "--limit", "2")
    before = (out / "store.json").read_text()
    args = ["prepare", "irmas-train", str(irmas_root), "--out", str(out)]
    assert main(args) == 2
    assert "already exists (use --force" in capsys.readouterr().err
    assert (out / "store.json").read_text() == before
    prepare_store("irmas-train", irmas_root, out, "--force")
    assert len(ClipStore.open(out)) == 36
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_limit_takes_a_seeded_sample_of_files(irmas_root: Path, tmp_path: Path) -> None:
    a = ClipStore.open(prepare_store("irmas-train", irmas_root, tmp_path / "a", "--limit", "5"))
    b = ClipStore.open(prepare_store("irmas-train", irmas_root, tmp_path / "b", "--limit", "5"))
    assert len(set(a.sources)) == 5 and list(a.sources) == list(b.sources)


@pytest.mark.slow
def test_parallel_workers_write_the_same_store(irmas_root: Path, tmp_path: Path) -> None:
    one = ClipStore.open(prepare_store("irmas-train", irmas_root, tmp_path / "one"))
    two = ClipStore.open(
        prepare_store("irmas-train", irmas_root, tmp_path / "two", "--workers", "2")
    )
    assert list(one.sources) == list(two.sources)
    np.testing.assert_array_equal(one.batch(np.arange(len(one))), two.batch(np.arange(len(two))))


def test_skip_log_counts_by_reason_and_strict_raises() -> None:
    log = SkipLog()
    log(Path("a.wav"), "cannot decode audio (bad header)")
    log(Path("b.wav"), "cannot decode audio (truncated)")
    assert log.counts == {"cannot decode audio": 2}
    assert log.summary() == "skipped 2 files (2 cannot decode audio)"
    assert log.first_few(Path("s/store.json")).splitlines() == [
        "skipped a.wav: cannot decode audio (bad header)",
        "skipped b.wav: cannot decode audio (truncated)",
    ]
    with pytest.raises(InstrecError, match=r"^c\.wav: near-silent note$"):
        SkipLog(strict=True)(Path("c.wav"), "near-silent note")


def test_many_skips_are_summarised_and_all_kept_in_the_header() -> None:
    log = SkipLog()
    for k in range(SHOWN_SKIPS + 3):
        log(Path(f"{k}.wav"), "is silent")
    lines = log.first_few(Path("s/store.json")).splitlines()
    assert lines[:SHOWN_SKIPS] == [f"skipped {k}.wav: is silent" for k in range(SHOWN_SKIPS)]
    assert lines[SHOWN_SKIPS:] == [
        '... and 3 more: every skipped file is listed under "skipped_files" in s/store.json'
    ]
    assert len(log.files) == SHOWN_SKIPS + 3


def test_every_option_has_help() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, "prepare")
    for action in parser._actions:
        assert action.help, action.dest
