"""Hostile inputs and faults around the music corpus: damaged renders, bad clip tables,
silent or truncated audio, wrong options, concatenation on a multi-label store, and
init plans that cannot give equal pre-training compute. Each is one line naming the
file and the reason, a file skipped and counted, or a refusal before any work."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from instrec.data import prepare
from instrec.data.store import ClipStore, Entry, StoreWriter
from instrec.errors import InstrecError
from instrec.experiments import grid as gr
from instrec.experiments.presets import PRESETS
from instrec.labels import CORPUS_CLASSES, IRMAS_CLASSES
from instrec.synth import corpus
from instrec.train.config import load_config
from instrec.train.fit import pretrain

pytestmark = pytest.mark.fault

SR = 16_000
TIM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
ROW = {"split": "train", "group": "0", "work": "bach/x.mxl"}


def _tone(seconds: int, silent_clip: int | None = None) -> np.ndarray:
    t = np.arange(seconds * SR) / SR
    audio = 0.2 * np.sin(2 * np.pi * 440 * t)
    if silent_clip is not None:
        audio[silent_clip * SR : (silent_clip + 1) * SR] = 0
    return audio.astype(np.float32)


def _corpus_folder(
    root: Path,
    files: dict[str, tuple[np.ndarray | None, list[dict[str, str]]]],
    summary: Any = None,
) -> Path:
    """A corpus render by hand: name -> (audio or None for no file, its clips.csv rows)."""
    (root / "audio").mkdir(parents=True)
    manifest = {"options": {"classes": list(CORPUS_CLASSES)}, "summary": summary or {"ok": 1}}
    (root / "render-corpus.json").write_text(json.dumps(manifest))
    with open(root / "clips.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=corpus.COLUMNS)
        writer.writeheader()
        for name, (audio, rows) in files.items():
            if audio is not None:
                soundfile.write(root / "audio" / name, audio, SR, subtype="PCM_16")
            for row in rows:
                writer.writerow({"file": f"audio/{name}", **ROW, **row})
    return root


def _rows(*labels: str) -> list[dict[str, str]]:
    return [{"clip": str(k), "labels": text} for k, text in enumerate(labels)]


def _prepare(root: Path, out: Path) -> ClipStore:
    parser = argparse.ArgumentParser()
    prepare.add_arguments(parser, "prepare")
    prepare.run(parser.parse_args(["corpus", str(root), "--out", str(out), "--workers", "1"]))
    return ClipStore.open(out)


GOOD = (_tone(2), _rows("pia;drums", "pia"))
BAD_FILES = {
    "listed but missing": ((None, _rows("pia")), "no such file"),
    "unknown label": ((_tone(1), _rows("kazoo")), "unknown class (label 'kazoo'"),
    "clips out of order": ((_tone(2), [_rows("pia", "pia")[1], _rows("pia")[0]]), "not numbered"),
    "split changes mid-file": (
        (_tone(2), [_rows("pia")[0], {"clip": "1", "labels": "pia", "split": "valid"}]),
        "disagree on split",
    ),
    "unknown split": (
        (_tone(1), [{"clip": "0", "labels": "pia", "split": "dev"}]),
        "unknown split",
    ),
    "a silent clip": ((_tone(3, silent_clip=1), _rows("pia", "pia", "pia")), "clip 1 is silent"),
    "truncated audio": ((_tone(2), _rows("pia", "pia", "pia")), "2 clips where its labels list 3"),
    "shorter than a clip": ((_tone(1)[:8000], _rows("pia")), "shorter than one 1 s clip"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_corpus_file_is_skipped_and_named_and_the_rest_kept(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad, reason = BAD_FILES[case]
    root = _corpus_folder(tmp_path / "render", {"good.wav": GOOD, "bad.wav": bad})
    store = _prepare(root, tmp_path / "store")
    assert len(store) == 2 and store.skipped and sum(store.skipped.values()) == 1
    assert store.column("labels").tolist() == ["pia;drums", "pia"]
    (path, why), = store.header["skipped_files"]  # fmt: skip
    assert path.endswith("bad.wav") and reason in why
    assert reason in capsys.readouterr().err


def _unfinished(root: Path) -> None:
    manifest = json.loads((root / "render-corpus.json").read_text())
    (root / "render-corpus.json").write_text(json.dumps({**manifest, "summary": None}))


BROKEN_RENDERS = {
    "no manifest": (lambda r: (r / "render-corpus.json").unlink(), "no render-corpus.json"),
    "unfinished render": (_unfinished, "has not finished"),
    "manifest not JSON": (lambda r: (r / "render-corpus.json").write_text("{"), "not a corpus"),
    "clip table without labels": (
        lambda r: (r / "clips.csv").write_text("file,clip,split,group,work\n"),
        "no 'labels' column",
    ),
    "no usable clip": (lambda r: (r / "audio" / "good.wav").unlink(), "no usable clips"),
}


@pytest.mark.parametrize("case", BROKEN_RENDERS)
def test_a_broken_render_is_refused_in_one_line_and_no_store_is_left(
    case: str, tmp_path: Path
) -> None:
    damage, message = BROKEN_RENDERS[case]
    root = _corpus_folder(tmp_path / "render", {"good.wav": GOOD})
    damage(root)
    with pytest.raises(InstrecError, match=message) as error:
        _prepare(root, tmp_path / "store")
    assert "\n" not in str(error.value) and not (tmp_path / "store").exists()


def test_clip_labels_that_do_not_match_the_clips_are_refused_before_writing(
    tmp_path: Path,
) -> None:
    entry = Entry(Path("a.wav"), "a.wav", (0, 1), "train", 0, clip_labels=((0,), (1,), (0, 1)))
    with pytest.raises(InstrecError, match="2 clips for 3 clip labels"):  # noqa: SIM117
        with StoreWriter(tmp_path / "store", "corpus", CORPUS_CLASSES) as writer:
            writer.add(entry, [np.zeros(SR), np.zeros(SR)], [{}, {}])
    assert not list(tmp_path.iterdir())  # the half-built store is gone


BAD_OPTIONS = {
    "one rendition": ({"renditions": 1}, "renditions must be at least 2"),
    "no seconds": ({"seconds": 0}, "seconds must be at least 1"),
    "all validation": ({"valid_share": 1.0}, r"valid_share must be in \(0, 1\)"),
    "drums above 1": ({"drums": 1.5}, "drums is a share"),
    "negative spread": ({"level_spread_db": -3.0}, "level_spread_db must be >= 0"),
    "unknown source": ({"sources_used": ("tape",)}, "unknown or no sources tape"),
    "exclude from a non-render": ({"exclude_from": "."}, "not a songs.json"),
    "unknown performance": ({"performance_options": ("swing",)}, "unknown performance option"),
    "unknown production": ({"production_options": ("tape",)}, "unknown production option"),
}


@pytest.mark.parametrize("case", BAD_OPTIONS)
def test_bad_corpus_options_are_refused_before_rendering(case: str, tmp_path: Path) -> None:
    options, message = BAD_OPTIONS[case]
    if "exclude_from" in options:
        options = {**options, "exclude_from": tmp_path}
    with pytest.raises(InstrecError, match=message):
        corpus.render_corpus(tmp_path / "out", soundfonts=[TIM], progress=False, **options)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not Path(TIM).exists(), reason="timgm6mb-soundfont")
def test_a_corpus_folder_rendered_with_other_options_is_refused(tmp_path: Path) -> None:
    small = {
        "renditions": 2,
        "seconds": 1,
        "composers": ("bach",),
        "soundfonts": [TIM],
        "progress": False,
    }
    corpus.render_corpus(tmp_path / "out", **small)
    before = sorted(p.name for p in (tmp_path / "out" / "audio").iterdir())
    with pytest.raises(InstrecError, match="rendered with other options"):
        corpus.render_corpus(tmp_path / "out", **{**small, "seconds": 2})
    assert sorted(p.name for p in (tmp_path / "out" / "audio").iterdir()) == before


def _store(path: Path, kind: str, classes: tuple[str, ...], split_items: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    with StoreWriter(path, kind, classes) as writer:
        number = 0
        for split, count in split_items.items():
            for _ in range(count):
                labels = (number % len(classes),) if kind != "corpus" else (0, 1)
                entry = Entry(Path(f"{number}.wav"), f"{number}.wav", labels, split, number)
                writer.add(entry, [rng.normal(0, 0.1, SR).astype(np.float32)], [{}])
                number += 1
        writer.finish(SR, {})
    return path


def test_concatenation_on_a_multi_label_store_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path / "corpus", "corpus", CORPUS_CLASSES, {"train": 4, "valid": 2})
    config = load_config("tiny_pretrain", ["trainer.batch_size=2"])  # concat_p 0.5: notes'
    with pytest.raises(InstrecError, match=r"augment.concat_p is 0.5.*set augment.concat_p=0"):
        pretrain(config, store, tmp_path / "run")
    assert not (tmp_path / "run" / "model.pt").exists()


def _stores(tmp_path: Path, corpus_train: int | None, notes_train: int = 8) -> gr.Stores:
    corpus_store = None
    if corpus_train is not None:
        corpus_store = _store(
            tmp_path / "corpus", "corpus", CORPUS_CLASSES, {"train": corpus_train, "valid": 2}
        )
    return gr.Stores(
        _store(tmp_path / "notes", "nsynth", ("a", "b"), {"train": notes_train, "valid": 2}),
        _store(tmp_path / "music", "irmas-train", IRMAS_CLASSES, {"train": 4, "valid": 2}),
        _store(tmp_path / "test", "irmas-test", IRMAS_CLASSES, {"test": 2}),
        corpus_store,
    )


IMPOSSIBLE_PLANS = {
    "no corpus": ((None, 8), ("trainer.batch_size=2",), "these stores have no corpus"),
    "one epoch to split": ((40, 8), ("trainer.batch_size=2", "trainer.epochs=1"),
                           "needs trainer.epochs of 2 or more"),
    "corpus under a batch": ((3, 8), ("trainer.batch_size=4",), "3 training clips, fewer than"),
    "notes under a batch": ((40, 3), ("trainer.batch_size=4",), "notes store has fewer"),
}  # fmt: skip


@pytest.mark.parametrize("case", IMPOSSIBLE_PLANS)
def test_an_init_plan_without_equal_compute_is_refused(case: str, tmp_path: Path) -> None:
    sizes, overrides, message = IMPOSSIBLE_PLANS[case]
    stores = _stores(tmp_path, *sizes)
    with pytest.raises(InstrecError, match=message):
        gr.plan_grid(["init"], PRESETS["tiny"], [0], stores, overrides=overrides)
