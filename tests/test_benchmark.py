"""The cross-source benchmark (instrec.synth.benchmark) and what keeps training off it:
its held-out families (sources.replays_held_out), which notes and corpus renders drop
with `holdout_from` (their own tests: test_render.py, test_corpus.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from instrec.labels import IRMAS_CLASSES
from instrec.synth import benchmark, models, sources
from instrec.synth.outputs import write_json
from instrec.synth.soundfonts import read_presets, resolve_soundfonts

TIM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
needs_soundfont = pytest.mark.skipif(not Path(TIM).exists(), reason="timgm6mb-soundfont")


def tim_holdout(folder: Path) -> tuple[Path, frozenset[str]]:
    """A families.json (and its held-out families) that holds out every TimGM6mb family of
    a class but the first, so TimGM6mb alone still plays every class in training."""
    catalogue = sources.installed_catalogue(resolve_soundfonts([TIM]))
    pool = sources.Pool((catalogue.soundfonts[0],), (), 1, catalogue, frozenset())
    held = frozenset(
        family for code in IRMAS_CLASSES for family in list(sources.candidates(pool, code))[1:]
    )
    path = folder / "families.json"
    write_json(path, sources.families_record(catalogue, dict.fromkeys(held, sources.HELD_OUT)))
    return path, held


@needs_soundfont
def test_a_preset_outside_the_roles_replaying_a_held_out_recording_counts_as_held_out() -> None:
    catalogue = sources.installed_catalogue(resolve_soundfonts([TIM]))
    held = frozenset({"sf:TimGM6mb.sf2:000:042 Cello"})
    replaying = {
        p.program for p in read_presets(TIM) if sources.replays_held_out(p, catalogue, held)
    }
    assert replaying == {42, 43}  # the cello, and the contrabass built on its samples


def test_a_model_voice_is_held_out_with_its_family() -> None:
    voice = models.voice("clarinet-wg", 0)
    catalogue = sources.Catalogue((), ("clarinet-wg",))
    assert sources.replays_held_out(voice, catalogue, frozenset({voice.family}))
    assert not sources.replays_held_out(voice, catalogue, frozenset({"csound:flute-waveguide"}))


def test_the_benchmark_is_every_source_a_third_held_out_and_scored_on_irmas() -> None:
    options = benchmark.BENCHMARK_OPTIONS
    assert options["sources_used"] == ("all",) and options["holdout_share"] == 0.34
    assert (options["train_songs"], options["test_songs"]) == (0, 0)
    assert (benchmark.SONGS, options["test_excerpts"]) == (80, 1)
    assert "seed" not in options  # the caller's: the training music's seed
    assert benchmark.BENCHMARK_CLASSES.split(",") == list(IRMAS_CLASSES)


@pytest.fixture(scope="module")
def small_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The benchmark's first four songs (5001-5004)."""
    if not Path(TIM).exists():
        pytest.skip("timgm6mb-soundfont")
    return benchmark.render_cross_source(
        tmp_path_factory.mktemp("bench") / "b", seed=0, progress=False, songs=4
    )


def test_labels_split_songs_by_parity_and_copy_each_excerpts_codes(small_benchmark: Path) -> None:
    folder = benchmark.cross_source_folder(small_benchmark)
    wavs = sorted(folder.glob("*.wav"))
    assert [int(w.name.split()[0]) for w in wavs] == [5001, 5002, 5003, 5004]
    with open(small_benchmark / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["path"] for row in rows] == [w.name for w in wavs]
    for row, wav in zip(rows, wavs, strict=True):
        song = int(wav.name.split()[0])
        codes = wav.with_suffix(".txt").read_text(encoding="utf-8").split()
        assert row["labels"].split(";") == codes
        assert set(codes) <= set(IRMAS_CLASSES)
        assert row["split"] == ("valid" if song % 2 == 0 else "test")
        assert row["group"] == str(song)
    families = json.loads(benchmark.families_file(small_benchmark).read_text())["families"]
    assert any(entry["split"] == sources.HELD_OUT for entry in families.values())


def test_a_finished_benchmark_is_not_rendered_again(
    small_benchmark: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def render(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendered again")

    labels = (small_benchmark / "labels.csv").read_bytes()
    monkeypatch.setattr(benchmark, "render_ensembles", render)
    assert benchmark.render_cross_source(small_benchmark) == small_benchmark
    assert (small_benchmark / "labels.csv").read_bytes() == labels
