"""Ensembles with new sources, timbre variation and a cross-source test set: splits by
family, labelled and audible leading parts, every song's sources and chain recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from instrec.labels import IRMAS_CLASSES
from instrec.synth import ensembles, models, sources, timbre
from instrec.synth.csound import available
from instrec.synth.ensembles import SongTask, Voice, arrange, render_ensembles
from instrec.synth.scores import Score, ScoreNote
from instrec.synth.sources import HELD_OUT, TRAIN, Catalogue, Pool
from instrec.synth.timbre import TIMBRE_OPTIONS

TIM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
pytestmark = pytest.mark.skipif(
    not (Path(TIM).exists() and available()), reason="timgm6mb-soundfont and csound"
)
CROSS: dict[str, Any] = {
    "train_songs": 2,
    "test_songs": 1,
    "cross_source_songs": 2,
    "train_excerpts": 1,
    "test_excerpts": 1,
    "test_seconds": (5.0, 5.0),
    "composers": ("bach",),
    "soundfonts": [TIM],
    "sources_used": ("soundfonts", "models"),
    "model_names": ("clarinet-wg", "flute-wg", "bowed-wg", "trumpet-fm", "organ-additive"),
    "model_voices": 4,
    "timbre_options": ("all",),
    "drums": 0.5,
    "seed": 1,
    "progress": False,
}


# Held out: two synthesis methods and one recording family; every class keeps a source.
HELD = ("csound:clarinet-waveguide", "csound:fm-brass", "sf:TimGM6mb.sf2:000:073 Flute TB")


@pytest.fixture(scope="module")
def cross_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cross")
    catalogue = sources.installed_catalogue([TIM])
    split = {f: HELD_OUT if f in HELD else TRAIN for f in sources.holdout(catalogue, 0, 0)}
    record = sources.families_record(catalogue, split)
    (folder / "held.json").write_text(json.dumps(record))
    return render_ensembles(folder / "out", **CROSS, holdout_from=folder / "held.json")


def _songs(root: Path) -> dict[str, dict[str, Any]]:
    return json.loads((root / "songs.json").read_text())


def test_cross_source_songs_play_only_held_out_families(cross_dir: Path) -> None:
    families = json.loads((cross_dir / "families.json").read_text())["families"]
    split = {name: entry["split"] for name, entry in families.items()}
    songs = _songs(cross_dir)
    assert {s["split"] for s in songs.values()} == {"train", "test", "cross-source"}
    for song in songs.values():
        for part in song["parts"]:
            if song["split"] != "cross-source":
                assert split.get(part["family"], TRAIN) == TRAIN  # in every role
            elif part["lead"]:
                assert split[part["family"]] == HELD_OUT
    trained = {
        p["family"] for s in songs.values() if s["split"] != "cross-source" for p in s["parts"]
    }
    cross = [s for s in songs.values() if s["split"] == "cross-source"]
    tested = {p["family"] for s in cross for p in s["parts"] if p["lead"]}
    assert tested and tested <= set(HELD) and not trained & tested
    wavs = sorted((cross_dir / "cross-source" / "IRMAS-TestingData-Part1").glob("*.wav"))
    assert len(wavs) == 2 and all(w.with_suffix(".txt").exists() for w in wavs)
    assert soundfile.info(wavs[0]).samplerate == 44_100


def test_splits_share_no_score(cross_dir: Path) -> None:
    works = [s["work"] for s in _songs(cross_dir).values()]
    assert len(works) == len(set(works)) == 5


def test_every_song_records_its_sources_chain_and_levels(cross_dir: Path) -> None:
    for song in _songs(cross_dir).values():
        assert song["error"] is None and song["excerpts"]
        for part in song["parts"]:
            assert part["source"] in ("soundfont", "csound") and part["family"]
            assert part["instrument"].startswith(("csound:", "TimGM6mb.sf2:"))
            assert set(part["timbre"]) == {
                "eq", "attack", "release", "detune", "chorus", "vibrato", "velocity"
            }  # fmt: skip
        for excerpt in song["excerpts"]:
            assert len(excerpt["levels"]) in (len(song["parts"]), len(song["parts"]) + 1)
    sources = {p["source"] for s in _songs(cross_dir).values() for p in s["parts"]}
    assert sources == {"soundfont", "csound"}


def test_test_excerpts_label_every_irmas_part_and_leads_are_audible(cross_dir: Path) -> None:
    for song in _songs(cross_dir).values():
        leads = [p["role"] for p in song["parts"] if p["lead"]]
        assert song["labels"] == leads
        if song["split"] != "train":
            assert all(p["lead"] for p in song["parts"] if p["role"] in IRMAS_CLASSES)
            folder = "cross-source/" if song["split"] == "cross-source" else ""
            text = cross_dir / f"{folder}IRMAS-TestingData-Part1" / song["excerpts"][0]["file"]
            labels = text.with_suffix(".txt").read_text().split()
            assert sorted(labels) == sorted(leads)
        for excerpt in song["excerpts"]:
            loudest = max(level for level in excerpt["levels"] if level is not None)
            for part, level in zip(song["parts"], excerpt["levels"], strict=False):
                if part["lead"]:
                    assert level is not None and level >= loudest - ensembles.LEAD_MARGIN_DB


def _pool(use: str = TRAIN, model_names: tuple[str, ...] = ()) -> Pool:
    return Pool((TIM,), model_names, 2, Catalogue((TIM,), model_names), frozenset(), use)


def _score() -> Score:
    parts = tuple(
        tuple(ScoreNote(float(i), 1.0, pitch + (i % 5), 80) for i in range(24))
        for pitch in (72, 64, 55, 43)
    )
    return Score("test", parts)


def _task(label: str | None, pool: Pool, timbre: tuple[str, ...] = ()) -> SongTask:
    return SongTask(7, "test", "train", label, False, 1, (), pool, (5, 20), 10.0, 3, timbre)


def test_timbre_options_leave_the_rest_of_a_song_as_it_was() -> None:
    """Ablation arms differ only in what they switch on: same parts, instruments, pans."""
    plain = arrange(_score(), _task("flu", _pool()), np.random.default_rng(0))
    varied = arrange(_score(), _task("flu", _pool(), TIMBRE_OPTIONS), np.random.default_rng(0))
    assert [(v.role, v.instrument, v.pan, v.jitter) for v in plain] == [
        (v.role, v.instrument, v.pan, v.jitter) for v in varied
    ]
    assert all(v.variation.eq is None for v in plain)
    assert all(v.variation.eq is not None for v in varied)


def test_model_parts_render_the_same_samples_every_time() -> None:
    clarinet = models.voice("clarinet-wg", 0)
    notes = _score().parts[1]
    variation = timbre.draw(TIMBRE_OPTIONS, np.random.default_rng(0))
    played = ensembles.folded("cla", clarinet, notes, 0)
    jitter = (0,) * len(notes)
    lead = Voice("cla", True, clarinet, notes, 0, 40, "csound:x", variation, jitter, played)
    part = ensembles.part_notes(lead, 0.0, 3.0, 0.5)
    first = ensembles.render_part(lead, part, 44_100 * 3)
    np.testing.assert_array_equal(first, ensembles.render_part(lead, part, 44_100 * 3))
    assert first.shape == (44_100 * 3, 2) and np.abs(first[:, 0]).max() > np.abs(first[:, 1]).max()


def test_a_silent_leading_part_is_not_audible() -> None:
    voices = arrange(_score(), _task("vio", _pool()), np.random.default_rng(0))
    lead = next(v for v in voices if v.lead)
    _, levels = ensembles.render_excerpt(
        voices, None, 2.0, 3.0, 0.5, 10.0, np.random.default_rng(1)
    )
    assert ensembles.leads_audible(voices, levels)
    silent = [Voice(**{**vars(v), "played": ()}) if v is lead else v for v in voices]
    _, levels = ensembles.render_excerpt(
        silent, None, 2.0, 3.0, 0.5, 10.0, np.random.default_rng(1)
    )
    assert levels[voices.index(lead)] is None
    assert not ensembles.leads_audible(silent, levels)
    assert not ensembles.leads_audible(voices, [-40.0 if v.lead else -23.0 for v in voices])


def test_benchmark_rendered_alone_takes_no_training_score(tmp_path: Path) -> None:
    """A cross-source set rendered on its own draws its scores from the far end of the
    seeded order: a training render of the same seed never uses them."""
    from instrec.synth.ensembles import SongPlan, plan_songs

    works = [f"w{i}" for i in range(50)]
    pools = {TRAIN: _pool(), HELD_OUT: _pool(HELD_OUT)}
    bench = plan_songs(tmp_path, works, SongPlan(0, 0, 10, 1, 1, 0.3, (5, 5), 10, 0), pools)
    train = plan_songs(tmp_path, works, SongPlan(30, 10, 0, 1, 1, 0.3, (5, 5), 10, 0), pools)
    assert not {t.work for t in bench} & {t.work for t in train}
    assert {t.number for t in bench} == set(range(5001, 5011))
    assert all(t.pool.use == HELD_OUT for t in bench)


@pytest.mark.slow
def test_same_seed_gives_identical_files_and_a_rerun_fills_gaps(cross_dir: Path) -> None:
    again = render_ensembles(
        cross_dir.parent / "again", **CROSS, holdout_from=cross_dir.parent / "held.json", workers=2
    )
    files = sorted(
        p.relative_to(cross_dir) for p in cross_dir.rglob("*") if p.suffix in (".wav", ".txt")
    )
    assert files == sorted(
        p.relative_to(again) for p in again.rglob("*") if p.suffix in (".wav", ".txt")
    )
    assert all((cross_dir / f).read_bytes() == (again / f).read_bytes() for f in files)
    removed = again / next(f for f in files if "cross-source" in str(f) and f.suffix == ".wav")
    removed.unlink()
    render_ensembles(again, **CROSS, holdout_from=cross_dir.parent / "held.json")
    assert removed.read_bytes() == (cross_dir / removed.relative_to(again)).read_bytes()
    summary = json.loads((again / "render-ensembles.json").read_text())["summary"]
    assert summary["existing"] == len([f for f in files if f.suffix == ".wav"]) - 1
    without_counts = lambda root: {  # noqa: E731
        k: {**v, "existing": 0} for k, v in _songs(root).items()
    }
    assert without_counts(again) == without_counts(cross_dir)  # records survive a rerun


@pytest.mark.slow
def test_a_song_does_not_depend_on_what_its_process_rendered_before(
    cross_dir: Path, tmp_path: Path
) -> None:
    """Rendered after other songs in this process, or alone in fresh workers: the same
    bytes (libfluidsynth keeps traces of earlier renders; each part gets a synth of its own)."""
    held = cross_dir.parent / "held.json"
    render_ensembles(tmp_path / "warm", **{**CROSS, "seed": 5}, holdout_from=held)
    here = render_ensembles(tmp_path / "here", **CROSS, holdout_from=held, workers=1)
    fresh = render_ensembles(tmp_path / "fresh", **CROSS, holdout_from=held, workers=2)
    wavs = sorted(p.relative_to(here) for p in here.rglob("*.wav"))
    assert wavs and all((here / w).read_bytes() == (fresh / w).read_bytes() for w in wavs)
