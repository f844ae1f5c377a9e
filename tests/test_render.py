"""Rendered notes and ensembles: official layouts, right labels, reproducible, resumable."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from test_benchmark import tim_holdout

from instrec.cli import main
from instrec.errors import InstrecError
from instrec.labels import IRMAS_CLASSES, IRMAS_GENRES, NSYNTH_FAMILIES
from instrec.synth.ensembles import arrange, render_ensembles
from instrec.synth.notes import render_note, render_notes, select_instruments
from instrec.synth.scores import Score, ScoreNote
from instrec.synth.soundfonts import note_presets, read_presets, resolve_soundfonts
from instrec.synth.sources import installed_catalogue, preset_families, replays_held_out

TIM = "/usr/share/sounds/sf2/TimGM6mb.sf2"  # the smallest soundfont: fastest to load
pytestmark = pytest.mark.skipif(not Path(TIM).exists(), reason="timgm6mb-soundfont")
NSYNTH_FIELDS = {
    "note",
    "note_str",
    "instrument",
    "instrument_str",
    "instrument_family",
    "instrument_family_str",
    "instrument_source",
    "instrument_source_str",
    "pitch",
    "velocity",
    "sample_rate",
    "qualities",
    "qualities_str",
}
NOTE_OPTIONS: dict[str, Any] = {
    "soundfonts": [TIM],
    "max_instruments": 4,
    "pitches": [48, 60],
    "velocities": [50, 127],
    "split_fractions": (0.5, 0.25, 0.25),
    "seed": 3,
    "progress": False,
}
IRMAS_TRAIN_NAME = re.compile(
    r"^(\d{3}__)?\[(?P<cls>[a-z]{3})\](\[(dru|nod)\])?\[(?P<genre>[a-z_]+)\]\d{4}__\d+$"
)


@pytest.fixture(scope="module")
def notes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_notes(tmp_path_factory.mktemp("notes"), **NOTE_OPTIONS)


def _examples(root: Path) -> dict[str, dict[str, dict]]:
    return {
        split: json.loads((root / f"nsynth-{split}" / "examples.json").read_text())
        for split in ("train", "valid", "test")
    }


def test_notes_have_the_nsynth_layout_and_fields(notes_dir: Path) -> None:
    examples = _examples(notes_dir)
    assert all(examples.values())  # four instruments: 2 train, 1 valid, 1 test
    for split, entries in examples.items():
        for name, fields in entries.items():
            assert set(fields) == NSYNTH_FIELDS
            assert re.fullmatch(r"[a-z_]+_(acoustic|electronic|synthetic)_\d{3}-\d{3}-\d{3}", name)
            assert fields["note_str"] == name
            assert (
                name == f"{fields['instrument_str']}-{fields['pitch']:03d}-{fields['velocity']:03d}"
            )
            assert NSYNTH_FAMILIES[fields["instrument_family"]] == fields["instrument_family_str"]
            assert fields["instrument_str"].startswith(fields["instrument_family_str"] + "_")
            audio, sr = soundfile.read(notes_dir / f"nsynth-{split}" / "audio" / f"{name}.wav")
            info = soundfile.info(notes_dir / f"nsynth-{split}" / "audio" / f"{name}.wav")
            assert (sr, audio.shape, info.subtype) == (16_000, (64_000,), "PCM_16")
            assert np.abs(audio).max() > 1e-3  # no silent files
            assert np.abs(audio[-4000:]).max() < np.abs(audio[:16_000]).max()  # released


def test_note_splits_hold_out_whole_instruments(notes_dir: Path) -> None:
    examples = _examples(notes_dir)
    per_split = [{f["instrument_str"] for f in e.values()} for e in examples.values()]
    assert sum(map(len, per_split)) == len(set().union(*per_split)) == 4
    instruments = json.loads((notes_dir / "instruments.json").read_text())
    recordings: dict[tuple[int, ...], set[str]] = {}
    for info in instruments.values():
        recordings.setdefault(tuple(info["recording"]), set()).add(info["split"])
    assert all(len(splits) == 1 for splits in recordings.values())


def test_rendered_flute_sounds_at_its_pitch() -> None:
    flute = next(p for p in read_presets(TIM) if (p.bank, p.program) == (0, 73))
    for pitch in (60, 81):
        audio = render_note(flute, pitch, 100)
        spectrum = np.abs(np.fft.rfft(audio[4000:20_000] * np.hanning(16_000)))  # 1 Hz bins
        f0 = 440 * 2 ** ((pitch - 69) / 12)
        lowest_partial = np.flatnonzero(spectrum > 0.1 * spectrum.max())[0]
        assert lowest_partial == pytest.approx(f0, rel=0.02)
        assert spectrum[round(f0 * 0.97) : round(f0 * 1.03)].max() > 0.1 * spectrum.max()


def test_same_seed_gives_identical_notes_and_resume_fills_gaps(
    notes_dir: Path, tmp_path: Path
) -> None:
    again = render_notes(tmp_path / "again", **NOTE_OPTIONS)
    files = sorted(p.relative_to(notes_dir) for p in notes_dir.rglob("*.wav"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.wav"))
    assert all((notes_dir / f).read_bytes() == (again / f).read_bytes() for f in files)
    removed = again / files[0]
    removed.unlink()
    render_notes(again, **NOTE_OPTIONS)
    summary = json.loads((again / "render-notes.json").read_text())["summary"]
    assert (summary["rendered"], summary["existing"]) == (1, len(files) - 1)
    assert removed.read_bytes() == (notes_dir / files[0]).read_bytes()
    assert not list(again.rglob(".*.tmp"))  # no temporary file left behind
    assert _examples(again) == _examples(notes_dir)


def test_notes_held_out_from_a_benchmark_play_none_of_its_families(
    notes_dir: Path, tmp_path: Path
) -> None:
    families, held = tim_holdout(tmp_path)
    options = {**NOTE_OPTIONS, "max_instruments": 8, "pitches": [60], "velocities": [100]}
    catalogue = installed_catalogue(resolve_soundfonts([TIM]))
    chosen = [note_presets([TIM])[i] for i in select_instruments(note_presets([TIM]), 8, 3)]
    assert any(replays_held_out(p, catalogue, held) for p in chosen)  # without it: some
    out = render_notes(tmp_path / "notes", holdout_from=families, **options)
    presets = {(p.bank, p.program, p.name): p for p in read_presets(TIM)}
    played = [
        presets[entry["bank"], entry["program"], entry["preset_name"]]
        for entry in json.loads((out / "instruments.json").read_text()).values()
    ]
    assert len(played) == 8
    family = preset_families(catalogue.soundfonts)
    assert not any(family.get(p) in held or replays_held_out(p, catalogue, held) for p in played)
    manifest = json.loads((out / "render-notes.json").read_text())
    assert manifest["options"]["holdout_from"] == str(families.resolve())
    assert manifest["summary"]["instruments_held_out"] > 0
    plain = json.loads((notes_dir / "render-notes.json").read_text())
    assert "holdout_from" not in plain["options"]  # renders without it keep their manifest


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"velocities": [0]}, "velocities"),
        ({"pitches": [12]}, "pitches"),
        ({"max_instruments": 0}, "max_instruments"),
        ({"split_fractions": (0.5, 0.6, 0.1)}, "sum"),
        ({"workers": 0}, "workers"),
        ({"soundfonts": ["/nonexistent.sf2"]}, "no such soundfont"),
    ],
)
def test_bad_note_options_raise(tmp_path: Path, option: dict, message: str) -> None:
    with pytest.raises(InstrecError, match=message):
        render_notes(tmp_path, **{**NOTE_OPTIONS, **option})


def test_other_options_in_a_rendered_folder_are_refused(notes_dir: Path) -> None:
    with pytest.raises(InstrecError, match="other options"):
        render_notes(notes_dir, **{**NOTE_OPTIONS, "seed": 4})


def _score(*mean_pitches: int) -> Score:
    parts = tuple(
        tuple(ScoreNote(float(i), 1.0, pitch + (i % 3), 80) for i in range(16))
        for pitch in mean_pitches
    )
    return Score("test", parts)


def test_leading_part_is_chosen_by_register() -> None:
    from instrec.synth.ensembles import SongTask
    from instrec.synth.sources import Catalogue, Pool

    pool = Pool((TIM,), (), 1, Catalogue((TIM,), ()), frozenset())

    def lead(label: str) -> int:
        task = SongTask(1, "test", "train", label, False, 1, (), pool, (5, 20), 10.0, 0)
        voices = arrange(_score(72, 64, 55, 43), task, np.random.default_rng(0))
        return next(i for i, v in enumerate(voices) if v.lead)

    assert lead("flu") == 0  # soprano: flute range starts at C4
    assert lead("cel") == 2  # tenor fits the cello without transposing; soprano would not
    assert lead("vio") == 0


TINY_ENSEMBLES: dict[str, Any] = {
    "train_songs": 2,
    "test_songs": 1,
    "train_excerpts": 1,
    "test_excerpts": 1,
    "test_seconds": (5.0, 5.0),
    "composers": ("bach",),
    "soundfonts": [TIM],
    "drums": 0.5,
    "seed": 1,
    "progress": False,
}


@pytest.fixture(scope="module")
def ensembles_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_ensembles(tmp_path_factory.mktemp("ensembles"), **TINY_ENSEMBLES)


def test_ensembles_have_the_irmas_layout(ensembles_dir: Path) -> None:
    train = sorted((ensembles_dir / "IRMAS-TrainingData").glob("*/*.wav"))
    assert len(train) == 2
    for path in train:
        match = IRMAS_TRAIN_NAME.match(path.stem)
        assert match and match["cls"] == path.parent.name in IRMAS_CLASSES
        assert match["genre"] in IRMAS_GENRES
        audio, sr = soundfile.read(path)
        assert (sr, audio.shape) == (44_100, (132_300, 2))
        assert soundfile.info(path).subtype == "PCM_16"
        assert np.abs(audio).max() > 0.1
    test = sorted((ensembles_dir / "IRMAS-TestingData-Part1").glob("*.wav"))
    assert len(test) == 1
    audio, sr = soundfile.read(test[0])
    assert (sr, audio.shape) == (44_100, (220_500, 2))
    labels = [line.strip() for line in test[0].with_suffix(".txt").read_text().splitlines()]
    assert labels and set(labels) <= set(IRMAS_CLASSES)
    songs = json.loads((ensembles_dir / "songs.json").read_text())
    works = {song["split"]: song["work"] for song in songs.values() if song["split"] == "test"}
    assert works["test"] not in {s["work"] for s in songs.values() if s["split"] == "train"}
    assert next(s for s in songs.values() if s["split"] == "test")["labels"] == labels


@pytest.mark.slow
def test_same_seed_gives_identical_ensembles(ensembles_dir: Path, tmp_path: Path) -> None:
    again = render_ensembles(tmp_path, **TINY_ENSEMBLES, workers=2)
    files = sorted(p.relative_to(ensembles_dir) for p in ensembles_dir.rglob("*.*"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.*"))
    for name in files:
        if name.suffix in (".wav", ".txt"):
            assert (ensembles_dir / name).read_bytes() == (again / name).read_bytes()


def test_bad_ensemble_options_raise(tmp_path: Path) -> None:
    with pytest.raises(InstrecError, match="test_seconds"):
        render_ensembles(tmp_path, test_seconds=(9.0, 5.0))
    with pytest.raises(InstrecError, match="no score files by nobody"):
        render_ensembles(tmp_path, composers=("nobody",))
    with pytest.raises(InstrecError, match="scores"):
        render_ensembles(tmp_path, train_songs=10_000, composers=("bach",))


def test_cli_reports_bad_options_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["synth", "notes", str(tmp_path), "--velocities", "300"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("instrec synth: error:") and "\n" not in error
