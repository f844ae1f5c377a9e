"""The music pre-training corpus: every part that sounds in a 1 s clip is labelled, and
only those; the render is deterministic, resumes, keeps scores apart by split, and
prepares into a multi-label clip store whose targets are the clips' labels."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_benchmark import tim_holdout

from instrec.audio import integrated_loudness
from instrec.data import prepare
from instrec.data.store import ClipStore
from instrec.experiments.presets import PRESETS
from instrec.experiments.stores import rendered_corpus
from instrec.labels import (
    ACCOMPANIMENT_GM_PROGRAMS,
    CHOIR_PAD_GM_PROGRAMS,
    CORPUS_CLASSES,
    CORPUS_GM_PROGRAMS,
    IRMAS_CLASSES,
    IRMAS_GM_PROGRAMS,
)
from instrec.synth import corpus, production, render
from instrec.synth.accompaniment import GROOVES
from instrec.synth.ensembles import Voice
from instrec.synth.performance import PERFORMANCE_OPTIONS, Performance
from instrec.synth.production import PRODUCTION_OPTIONS
from instrec.synth.scores import ScoreNote
from instrec.synth.soundfonts import Preset, read_presets, resolve_soundfonts
from instrec.synth.sources import (
    Catalogue,
    Pool,
    installed_catalogue,
    preset_families,
    replays_held_out,
)

TIM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
needs_soundfont = pytest.mark.skipif(not Path(TIM).exists(), reason="timgm6mb-soundfont")
SMALL: dict[str, Any] = {
    "renditions": 4,
    "seconds": 3,
    "composers": ("bach",),
    "soundfonts": [TIM],
    "drums": 1.0,
    "valid_share": 0.25,
    "seed": 3,
    "progress": False,
}
# the same corpus played and produced as realistically as the renderer can
PRODUCED: dict[str, Any] = {
    **SMALL,
    "performance_options": ("all",),
    "production_options": ("all",),
}
SETTINGS = {"plain": SMALL, "produced": PRODUCED}


# ---- the label set ------------------------------------------------------------------------


def test_the_label_set_widens_irmas_with_accompaniment_and_gm_groups() -> None:
    assert CORPUS_CLASSES[: len(IRMAS_CLASSES)] == IRMAS_CLASSES  # IRMAS first, in order
    assert {"bass", "pad", "drums"} < set(CORPUS_CLASSES) and len(CORPUS_CLASSES) == 22
    used = [p for programs in CORPUS_GM_PROGRAMS.values() for p in programs]
    used += [p for programs in IRMAS_GM_PROGRAMS.values() for p in programs]
    used += [p for programs in ACCOMPANIMENT_GM_PROGRAMS.values() for p in programs]
    assert len(used) == len(set(used))  # every program has one class
    assert not set(used) & {3, 4, 5, 18, 20, 28, 31, 85} - set(CHOIR_PAD_GM_PROGRAMS)


@needs_soundfont
def test_every_wider_group_has_presets_in_a_gm_soundfont() -> None:
    pool = Pool((TIM,), (), 1, Catalogue((TIM,), ()), frozenset())
    groups = corpus._group_presets(pool)
    assert all(groups[label] for label in CORPUS_GM_PROGRAMS)


@needs_soundfont
def test_a_wider_group_plays_no_preset_replaying_a_held_out_family() -> None:
    catalogue = installed_catalogue(resolve_soundfonts([TIM]))
    plain = Pool(catalogue.soundfonts[:1], (), 1, catalogue, frozenset())
    held = dataclasses.replace(plain, held_out=frozenset({"sf:TimGM6mb.sf2:000:042 Cello"}))
    strings = {p.program for p in corpus._group_presets(plain)["strings"]}
    assert 43 in strings  # TimGM6mb's contrabass, built on its cello's samples
    assert {p.program for p in corpus._group_presets(held)["strings"]} == strings - {43}


# ---- labels follow activity and audibility ------------------------------------------------


def test_sounding_counts_the_seconds_notes_cover_in_each_clip() -> None:
    covered = corpus.sounding([(0.2, 0.5), (0.4, 1.3), (2.5, 9.0)], 3)
    assert covered.tolist() == pytest.approx([0.8, 0.3, 0.5])
    assert corpus.sounding([(-2.0, -0.5), (3.0, 4.0)], 3).tolist() == [0.0, 0.0, 0.0]


def test_a_part_is_labelled_only_where_its_score_sounds_and_it_is_audible() -> None:
    sounds = np.array([[1.0, 0.0, 0.05, 0.04], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    levels = np.array([[-20.0, -20.0, -20.0, -20.0],  # loud, but silent by the score in clip 1
                       [-40.0, -39.9, -50.0, -np.inf],  # 20 dB under the mix: the floor
                       [-20.0, -20.0, -20.0, -20.0]])  # fmt: skip
    mix = np.array([-20.0, -20.0, -20.0, -20.0])
    assert corpus.labelled(sounds, levels, mix).tolist() == [
        [True, False, True, False],
        [True, True, False, False],
        [True, True, True, True],
    ]
    silent = np.full((1, 2), -np.inf)  # a silent clip labels nothing
    assert not corpus.labelled(np.ones((1, 2)), silent, silent[0]).any()


def _preset(program: int) -> Preset:
    return next(p for p in read_presets(TIM) if (p.bank, p.program) == (0, program))


def make_voice(role: str, program: int, notes: list[ScoreNote]) -> Voice:
    played = tuple(enumerate(notes))
    return Voice(
        role, True, _preset(program), tuple(notes), jitter=(0,) * len(notes), played=played
    )


def _db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20)


STUDIOS = {
    "dry": production.OFF,
    "produced": production.draw(
        production.PRODUCTION_OPTIONS, np.random.default_rng(1), parts=3, excerpts=1
    ),
}


@needs_soundfont
@pytest.mark.parametrize("studio", STUDIOS)
def test_rendered_parts_are_labelled_where_they_sound_and_not_where_they_are_silent(
    studio: str,
) -> None:
    start, seconds = 3.0, 4  # s into the score; one quarter note lasts 1 s (spq 1)
    flute = make_voice("flu", 73, [ScoreNote(3.0 + 0.3 * k, 0.3, 72 + k, 90) for k in range(4)])
    organ = make_voice("org", 19, [ScoreNote(3.0, 4.0, 60, 90)])  # held through the excerpt
    # held from 3 s before the excerpt, before its 1 s pre-roll: the score says it sounds
    # throughout, but the synthesiser never starts it
    strings = make_voice("strings", 48, [ScoreNote(0.0, 10.0, 55, 90)])
    voices = [flute, organ, strings]
    stems = corpus.render_stems(voices, None, start, seconds, 1.0, STUDIOS[studio])
    levelled, mix = corpus.mix_stems(stems, np.array([-23.0, -26.0, -23.0]))
    excerpt = corpus.Excerpt(voices, None, start, seconds, 1.0)
    chosen, sounds, relative = excerpt.labels(levelled, mix)
    assert np.allclose(sounds, [[1.0, 0.2, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]])
    assert chosen.tolist() == [
        [True, True, False, False],  # the flute's notes end at 1.2 s
        [True, True, True, True],
        [False, False, False, False],  # sounding by the score, silent in the render
    ]
    assert np.isneginf(relative[2]).all() or np.isnan(relative[2]).all()
    for part, clip in zip(*np.nonzero(chosen), strict=True):  # audible, measured apart
        piece = slice(clip * 16_000, (clip + 1) * 16_000)
        assert _db(levelled[part, piece]) > _db(mix[piece]) - 30
    heard = corpus.finish_mix(mix, STUDIOS[studio])  # through the bus and the codec
    assert (heard is mix) == (studio == "dry")
    assert integrated_loudness(heard) == pytest.approx(corpus.MIX_LUFS, abs=0.1)
    assert np.abs(heard).max() <= corpus.MAX_PEAK
    for clip in range(seconds):  # the bus and codec move every part alike: clip by clip,
        piece = slice(clip * 16_000, (clip + 1) * 16_000)  # the mix stays near its level
        assert abs(integrated_loudness(heard[piece]) - integrated_loudness(mix[piece])) < 3


def _labels(voices: list[Voice], start: float, seconds: int) -> tuple[np.ndarray, np.ndarray]:
    """(labelled, seconds sounding) of the voices rendered alone (spq 1)."""
    stems = corpus.render_stems(voices, None, start, seconds, 1.0)
    levelled, mix = corpus.mix_stems(stems, np.full(len(voices), -23.0))
    labelled, sounds, _ = corpus.Excerpt(voices, None, start, seconds, 1.0).labels(levelled, mix)
    return labelled, sounds


@needs_soundfont
def test_with_timing_a_part_sounds_and_is_labelled_when_performed_not_when_written() -> None:
    # performed 0.7 s late (real timing moves notes by at most 75 ms: large here to show)
    flute = make_voice("flu", 73, [ScoreNote(3.0, 0.6, 72, 90)])
    flute.playing = Performance(
        lag=0.7, spread=0.0, articulation=1.0, shifts=(0.7,), lengths=(1.0,)
    )
    organ = make_voice("org", 19, [ScoreNote(3.0, 3.0, 60, 90)])
    labelled, sounds = _labels([flute, organ], 3.0, 3)
    assert sounds[0] == pytest.approx([0.3, 0.3, 0.0])  # the score says [0.6, 0, 0]
    assert labelled[0].tolist() == [True, True, False]  # heard where it is played


@needs_soundfont
def test_with_the_pedal_a_piano_note_sounds_until_the_pedal_is_lifted() -> None:
    notes = [ScoreNote(3.0, 0.2, 60, 100), ScoreNote(5.5, 0.3, 64, 100)]  # a short note
    pedalled = make_voice("pia", 0, notes)
    pedalled.playing = Performance(pedal=(0.8, 0.05))  # down 50 ms after the first note, up
    labelled, sounds = _labels([pedalled], 3.0, 4)  # at the next change: the second note
    assert sounds[0] == pytest.approx([1.0, 1.0, 0.8, 0.0])  # held 0-2.5 s, then 2.5-2.8 s
    assert labelled[0].tolist() == [True, True, True, False]
    dry, dry_sounds = _labels([make_voice("pia", 0, notes)], 3.0, 4)
    assert dry_sounds[0] == pytest.approx([0.2, 0.0, 0.3, 0.0])  # without: as written
    assert dry[0].tolist() == [True, False, True, False]


# ---- a whole corpus -----------------------------------------------------------------------


@pytest.fixture(scope="module", params=SETTINGS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small corpus (folder named for its SETTINGS); the produced one through the CLI."""
    if not Path(TIM).exists():
        pytest.skip("timgm6mb-soundfont")
    out = tmp_path_factory.mktemp("corpus") / request.param
    if request.param == "plain":
        return corpus.render_corpus(out, **SMALL)
    parser = argparse.ArgumentParser()
    render.add_arguments(parser, "synth")
    args = ["corpus", str(out), "--renditions", "4", "--seconds", "3", "--composers", "bach"]
    args += ["--soundfonts", TIM, "--drums", "1", "--valid-share", "0.25", "--seed", "3"]
    args += ["--performance", "all", "--production", "all", "--no-progress"]
    assert render.run(parser.parse_args(args)) == 0
    return out


def _records(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((root / "audio").glob("*.json"))]


def test_every_clip_labels_exactly_its_sounding_audible_parts(rendered: Path) -> None:
    records = _records(rendered)
    assert len(records) == SMALL["renditions"]
    for record in records:
        assert record["error"] is None and len(record["clips"]) == record["seconds"] == 3
        names = [part["label"] for part in record["parts"]]
        assert names[-1] == "drums"  # every rendition has a kit here
        for clip in record["clips"]:
            parts = list(zip(names, clip["sounding"], clip["level_db"], strict=True))
            heard = {
                name
                for name, s, level in parts
                if s >= corpus.MIN_SOUNDING_S and level is not None and level >= -corpus.AUDIBLE_DB
            }
            near_floor = {
                name for name, _, level in parts if level and abs(level + corpus.AUDIBLE_DB) < 0.1
            }
            assert clip["labels"] and set(clip["labels"]) ^ heard <= near_floor  # rounded dB
            assert clip["labels"] == [c for c in CORPUS_CLASSES if c in clip["labels"]]


@pytest.mark.parametrize("rendered", ["produced"], indirect=True)
def test_a_produced_corpus_records_how_each_part_was_played_and_produced(
    rendered: Path,
) -> None:
    options = json.loads((rendered / "render-corpus.json").read_text())["options"]
    assert options["performance"] == list(PERFORMANCE_OPTIONS)
    assert options["production"] == list(PRODUCTION_OPTIONS)
    for record in _records(rendered):
        assert set(record["production"]) == {"room", "parts", "mix", "codec"}
        *parts, kit = record["parts"]
        assert kit["label"] == "drums" and kit["groove"] in GROOVES
        assert all("timing" not in p and "lag" in p["performance"] for p in parts)
        comping = [p for p in parts if "comping" in p]
        bass_lines = [p for p in parts if "bass_line" in p]
        assert [p["label"] for p in comping] == ["pad"]  # labelled by its role
        assert [p["label"] for p in bass_lines] == ["bass"] or any(
            p["label"] == "bass" for p in parts if "bass_line" not in p
        )  # a bass line only where no score part is bass
        pedalled = [p for p in parts if "pedal" in p.get("performance", {})]
        assert all(p["label"] == "pia" for p in pedalled)


@pytest.mark.parametrize("rendered", ["plain"], indirect=True)
def test_a_plain_corpus_records_no_performance_or_production(rendered: Path) -> None:
    options = json.loads((rendered / "render-corpus.json").read_text())["options"]
    assert "performance" not in options and "production" not in options  # as before
    for record in _records(rendered):
        assert "production" not in record
        assert not any("performance" in p or "groove" in p for p in record["parts"])


def test_scores_are_kept_apart_by_split_and_the_table_lists_every_clip(rendered: Path) -> None:
    records = _records(rendered)
    works = {
        split: {r["work"] for r in records if r["split"] == split} for split in ("train", "valid")
    }
    assert works["train"] and works["valid"] and not works["train"] & works["valid"]
    with open(rendered / "clips.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(len(r["clips"]) for r in records)
    by_file = {(row["file"], int(row["clip"])): row["labels"].split(";") for row in rows}
    for r in records:
        for k, clip in enumerate(r["clips"]):
            assert by_file[(f"audio/{r['number']:05d}.wav", k)] == clip["labels"]
    summary = json.loads((rendered / "render-corpus.json").read_text())["summary"]
    assert summary["renditions"] == 4 and sum(summary["clips"].values()) == len(rows)


def test_the_same_seed_gives_the_same_files_and_a_rerun_resumes(
    rendered: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    shutil.copytree(rendered, again)
    for suffix in (".wav", ".json"):  # an interrupted rendition
        (again / "audio" / f"00002{suffix}").unlink()
    (again / "audio" / "00003.json").unlink()  # its audio written, its record not yet
    corpus.render_corpus(again, **SETTINGS[rendered.name])
    for path in sorted((rendered / "audio").iterdir()):
        assert (again / "audio" / path.name).read_bytes() == path.read_bytes(), path.name
    assert (again / "clips.csv").read_text() == (rendered / "clips.csv").read_text()


def _played(root: Path) -> list[tuple[str | None, Preset]]:
    """(family, preset) of every part the corpus's renditions play (a kit: no family)."""
    presets = {p.label: p for p in read_presets(TIM)}
    return [(p.get("family"), presets[p["instrument"]]) for r in _records(root) for p in r["parts"]]


@pytest.mark.parametrize("rendered", ["plain"], indirect=True)
def test_a_corpus_held_out_from_a_benchmark_plays_none_of_its_families(
    rendered: Path, tmp_path: Path
) -> None:
    families, held = tim_holdout(tmp_path)
    assert any(family in held for family, _ in _played(rendered))  # without it: some
    out = tmp_path / "held"
    parser = argparse.ArgumentParser()
    render.add_arguments(parser, "synth")
    args = ["corpus", str(out), "--renditions", "4", "--seconds", "3", "--composers", "bach"]
    args += ["--soundfonts", TIM, "--drums", "1", "--valid-share", "0.25", "--seed", "3"]
    args += ["--holdout-from", str(families), "--no-progress"]
    assert render.run(parser.parse_args(args)) == 0
    catalogue = installed_catalogue(resolve_soundfonts([TIM]))
    family_of = preset_families(catalogue.soundfonts)
    played = _played(out)
    assert len(_records(out)) == 4 and played
    for family, preset in played:
        assert family not in held and family_of.get(preset) not in held, preset.label
        assert not replays_held_out(preset, catalogue, held), preset.label
    options = json.loads((out / "render-corpus.json").read_text())["options"]
    assert options["holdout_from"] == str(families.resolve())
    plain = json.loads((rendered / "render-corpus.json").read_text())["options"]
    assert "holdout_from" not in plain  # a corpus rendered without it keeps its manifest


def _prepare(root: Path, out: Path) -> ClipStore:
    parser = argparse.ArgumentParser()
    prepare.add_arguments(parser, "prepare")
    prepare.run(parser.parse_args(["corpus", str(root), "--out", str(out), "--workers", "1"]))
    return ClipStore.open(out)


def test_the_corpus_prepares_into_a_multi_label_store_of_its_clips(
    rendered: Path, tmp_path: Path
) -> None:
    store = _prepare(rendered, tmp_path / "store")
    assert store.kind == "corpus" and store.multi_label and store.classes == CORPUS_CLASSES
    assert store.clip_length == 16_000 and len(store) == 12
    with open(rendered / "clips.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for k, row in enumerate(rows):
        wanted = np.zeros(len(CORPUS_CLASSES), dtype=np.float32)
        wanted[[CORPUS_CLASSES.index(n) for n in row["labels"].split(";")]] = 1
        assert store.targets[k].tolist() == wanted.tolist()
        assert store.splits[k] == row["split"] and store.column("clip")[k] == row["clip"]
        assert integrated_loudness(store.audio(k)) == pytest.approx(-12.0, abs=0.2)
    assert store.header["splits"] == {"train": 9, "valid": 3}  # the render's, kept


def test_a_corpus_fraction_is_an_exact_seeded_number_of_clips(
    rendered: Path, tmp_path: Path
) -> None:
    store = _prepare(rendered, tmp_path / "store")
    for fraction, count in ((1 / 9, 1), (4 / 9, 4), (8 / 9, 8)):
        chosen = store.indices("train", fraction, seed=5)
        assert chosen.size == count and set(chosen) <= set(store.indices("train"))
        assert np.array_equal(chosen, store.indices("train", fraction, seed=5))


def test_scores_are_dealt_in_turn_and_test_scores_of_ensembles_are_left_out(
    tmp_path: Path,
) -> None:
    plan = corpus.plan_scores(["a", "b", "c"], renditions=5, valid_share=0.3, seed=0)
    assert sorted(numbers for *_, numbers in plan) == [(1, 4), (2, 5), (3,)]
    assert [split for _, _, split, _ in plan] == ["valid", "train", "train"]
    songs = {"0001": {"work": "bach/x.mxl", "split": "train"},
             "0002": {"work": "bach/y.mxl", "split": "test"},
             "5001": {"work": "bach/z.mxl", "split": "cross-source"}}  # fmt: skip
    (tmp_path / "songs.json").write_text(json.dumps(songs))
    assert corpus.excluded_works(tmp_path) == {"bach/y.mxl", "bach/z.mxl"}


def test_the_grid_renders_and_prepares_its_corpus_once_without_the_test_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not Path(TIM).exists():
        pytest.skip("timgm6mb-soundfont")
    works = corpus.multipart_works(("bach",))
    ensembles = (tmp_path / "ensembles", tmp_path / "cross-source")
    for folder, scores, split in zip(
        ensembles, (works[:-5], works[-5:-3]), ("test", "cross-source"), strict=True
    ):
        folder.mkdir()
        songs = {f"{k:04d}": {"work": w, "split": split} for k, w in enumerate(scores)}
        (folder / "songs.json").write_text(json.dumps(songs))  # every score but three
    preset = dataclasses.replace(PRESETS["tiny"], corpus={**SMALL, "renditions": 3})
    path = rendered_corpus(tmp_path / "data", preset, 1, ensembles)
    store = ClipStore.open(path)
    assert store.kind == "corpus" and path == tmp_path / "data" / "corpus"
    assert set(store.column("work")) == set(works[-3:])
    assert rendered_corpus(tmp_path / "data", preset, 1, ensembles) == path
    said = capsys.readouterr().err.splitlines()
    assert said[-2:] == [f"[instrec] rendered corpus {path.parent / 'rendered-corpus'}: cached",
                         f"[instrec] store {path}: cached"]  # fmt: skip
