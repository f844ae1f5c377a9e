"""Ensembles played like a performance: dynamics, timing and pedal, each switched on by
name, change what they name and only that, the same way for the same seed."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import soundfile

from instrec.errors import InstrecError
from instrec.synth import ensembles, models, performance
from instrec.synth.ensembles import SongTask, Voice, part_notes, render_part
from instrec.synth.performance import PERFORMANCE_OPTIONS, Performance
from instrec.synth.scores import ScoreNote, multipart_works
from instrec.synth.soundfonts import Preset, read_presets
from instrec.synth.sources import Catalogue, Pool

TIM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
MINE = ("dynamics", "timing", "pedal")
SPQ = 0.5  # s per quarter note
PIANO = Preset(TIM, 0, 0, "Piano", None, frozenset())
VIOLIN = Preset(TIM, 0, 40, "Violin", None, frozenset())
EPIANO = models.voice("epiano-fm", 0)


def _notes(quarters: int = 16, velocity: int = 80) -> tuple[ScoreNote, ...]:
    """Eighth notes, with a chord (a second note) on every beat."""
    notes = []
    for i in range(2 * quarters):
        notes.append(ScoreNote(i / 2, 0.5, 60 + i % 7, velocity))
        if i % 2 == 0:
            notes.append(ScoreNote(i / 2, 0.5, 48, velocity))
    return tuple(notes)


def _draw(options: tuple[str, ...], role: str = "pia", seed: int = 0, **kw: Any) -> Performance:
    return performance.draw(options, np.random.default_rng(seed), role, _notes(**kw))


def _voice(
    options: tuple[str, ...], role: str = "pia", instrument: Any = EPIANO, **kw: Any
) -> Voice:
    notes = _notes(**kw)
    playing = performance.draw(options, np.random.default_rng(0), role, notes)
    jitter = (0,) * len(notes)
    return Voice(
        role,
        True,
        instrument,
        notes,
        jitter=jitter,
        played=tuple(enumerate(notes)),
        playing=playing,
    )


def test_options_are_named_and_only_the_named_are_drawn() -> None:
    assert performance.parse_options(["pedal", "timing"]) == ("timing", "pedal")
    assert performance.parse_options(["all"]) == PERFORMANCE_OPTIONS
    with pytest.raises(InstrecError, match="unknown performance option swing"):
        performance.parse_options(["swing"])
    assert _draw(()) == Performance()
    assert set(_draw(("dynamics",)).record()) == {"phrase", "accent"}
    assert set(_draw(("timing",)).record()) == {"lag", "spread", "articulation"}
    assert set(_draw(("pedal",)).record()) == {"pedal"}
    assert _draw(("pedal",), role="vio").record() == {}  # only pianos are pedalled


def test_same_seed_same_draws_and_one_ingredient_leaves_the_others_alone() -> None:
    assert _draw(MINE) == _draw(MINE) != _draw(MINE, seed=1)
    dynamics, timing, both = _draw(("dynamics",)), _draw(("timing",)), _draw(MINE)
    assert (dynamics.phrase, dynamics.accent) == (both.phrase, both.accent)
    assert (timing.lag, timing.shifts, timing.lengths) == (both.lag, both.shifts, both.lengths)
    assert _draw(("pedal",)).pedal == both.pedal
    assert dynamics.shifts == () and timing.phrase is None


def test_without_timing_notes_are_the_score_grid() -> None:
    plain = part_notes(_voice(("dynamics", "pedal")), 0.0, 100.0, SPQ)
    score = _notes()
    assert [n.onset for n in plain] == [n.onset * SPQ for n in score]
    assert [n.duration for n in plain] == [n.duration * SPQ for n in score]


def test_timing_moves_onsets_by_lag_and_jitter_within_bounds() -> None:
    voice = _voice(("timing",))
    lag, spread = voice.playing.lag, voice.playing.spread
    assert lag is not None and abs(lag) <= 0.015
    assert spread is not None and 0.005 <= spread <= 0.02
    played = part_notes(voice, 0.0, 100.0, SPQ)
    grid = [n.onset * SPQ for n in voice.notes]
    shifts = np.array([p.onset - g for p, g in zip(played, grid, strict=True)])[2:]  # not clamped
    assert np.all(np.abs(shifts - lag) <= performance.JITTER_LIMIT * spread + 1e-9)
    assert np.std(shifts) > 0.3 * spread  # each chord moves on its own
    chords = [(a, b) for a, b in pairwise(played) if a.key != 48 == b.key]
    assert chords and all(a.onset == b.onset for a, b in chords)  # a chord moves together
    assert all(p.onset >= 0 and p.duration > 0 for p in played)
    factor = voice.playing.articulation
    ratios = [p.duration / (n.duration * SPQ) for p, n in zip(played, voice.notes, strict=True)]
    assert factor is not None and abs(np.log(np.median(ratios) / factor)) < 0.1


def test_an_excerpt_keeps_its_notes_by_score_onset() -> None:
    """A note played a little before the excerpt's start is still in it, at 0."""
    voice = _voice(("timing",))
    early = next(n for i, n in voice.played if voice.playing.shifts[i] < 0 and n.onset > 0)
    start = early.onset * SPQ
    played = part_notes(voice, start, start + 2.0, SPQ)
    in_window = [n for _, n in voice.played if start <= n.onset * SPQ < start + 2.0]
    assert len(played) == len(in_window)
    assert min(p.onset for p in played) == 0.0


def test_dynamics_follow_the_phrase_curve_and_stay_in_midi_range() -> None:
    voice = _voice(("dynamics",), quarters=32)
    played = part_notes(voice, 0.0, 100.0, SPQ)
    velocities = np.array([p.velocity for p in played]) - 80.0
    curve = np.array([performance.phrase_curve(voice.playing, n.onset) for n in voice.notes])
    beat = np.array([n.onset == int(n.onset) for n in voice.notes])
    assert np.corrcoef(velocities, curve)[0, 1] > 0.9
    assert np.ptp(velocities) > 2 * ensembles.VELOCITY_JITTER
    accent = voice.playing.accent
    assert accent is not None and 2 <= accent <= 8
    assert np.mean((velocities - curve)[beat]) - np.mean((velocities - curve)[~beat]) == (
        pytest.approx(accent, abs=1.0)
    )
    for extreme in (1, 127):
        loud = part_notes(_voice(("dynamics",), velocity=extreme), 0.0, 100.0, SPQ)
        assert {p.velocity for p in loud} <= set(range(1, 128))
        assert any(p.velocity != extreme for p in loud)


class _RecordingSynth:
    """Stands in for libfluidsynth: keeps the events it is asked to play."""

    played: ClassVar[list[list[Any]]] = []

    def __init__(self, rate: int) -> None:
        pass

    def render(
        self, programs: Any, events: Any, n_samples: int, generators: Any = None
    ) -> np.ndarray:
        self.played.append(sorted(events))
        return np.zeros((n_samples, 2), dtype=np.float32)

    def close(self) -> None:
        pass


def _pedal_events(voice: Voice, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    monkeypatch.setattr(ensembles, "Synth", _RecordingSynth)
    _RecordingSynth.played = []
    render_part(voice, part_notes(voice, 0.0, 100.0, SPQ), 44_100)
    return [e for e in _RecordingSynth.played[0] if e.kind == "cc" and e.key == 64]


def test_pedal_is_pressed_only_under_piano_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    pedalled = _pedal_events(_voice(("pedal",), instrument=PIANO), monkeypatch)
    assert pedalled[0].value == 127 and pedalled[-1].value == 0
    assert len(pedalled) >= 4  # changed at least once: lifted, pressed again
    _, gap = _voice(("pedal",)).playing.pedal or (0.0, 0.0)
    lifts = [e.sample for e in pedalled if e.value == 0][:-1]
    presses = [e.sample for e in pedalled if e.value == 127][1:]
    assert all(
        round(gap * 44_100) - 1 <= p - q <= round(gap * 44_100) + 1
        for q, p in zip(lifts, presses, strict=True)
    )
    assert not _pedal_events(_voice(("pedal",), role="vio", instrument=VIOLIN), monkeypatch)
    assert not _pedal_events(_voice((), instrument=PIANO), monkeypatch)


def test_a_csound_piano_holds_its_notes_to_the_pedal_lift(monkeypatch: pytest.MonkeyPatch) -> None:
    """Models have no CC64: a note the pedal catches lasts until the pedal is lifted."""
    rendered: list[list[Any]] = []

    def fake(voice: Any, notes: list[Any], n_samples: int, *_: Any) -> np.ndarray:
        rendered.append(notes)
        return np.zeros(n_samples, dtype=np.float32)

    monkeypatch.setattr(models, "render_notes", fake)
    for key in range(40, 70):
        monkeypatch.setitem(ensembles._PLAYABLE, (EPIANO, key), 1.0)
    voice = _voice(("pedal",))
    notes = part_notes(voice, 0.0, 100.0, SPQ)
    render_part(voice, notes, 44_100)
    lifts = [time for time, value in performance.pedal(voice.playing, notes) if value == 0]
    longer = [(n, h) for n, h in zip(notes, rendered[0], strict=True) if h.duration > n.duration]
    assert all(h.duration >= n.duration for n, h in zip(notes, rendered[0], strict=True))
    assert len(longer) > len(notes) // 2
    assert all(min(abs(n.onset + h.duration - t) for t in lifts) < 1e-9 for n, h in longer)
    render_part(_voice(()), notes, 44_100)
    assert [h.duration for h in rendered[1]] == [n.duration for n in notes]


@pytest.mark.skipif(not Path(TIM).exists(), reason="timgm6mb-soundfont")
def test_a_performed_song_renders_the_same_bytes_and_records_its_draws(tmp_path: Path) -> None:
    pool = Pool((TIM,), (), 1, Catalogue((TIM,), ()), frozenset())
    work = multipart_works(("bach",))[0]

    def render(folder: str, options: tuple[str, ...]) -> tuple[bytes, list[dict[str, Any]]]:
        path = tmp_path / folder / "song.wav"
        path.parent.mkdir()
        task = SongTask(
            1, work, "train", "pia", False, 1, (path,), pool, (5, 5), 10.0, 3, (), options
        )
        result = ensembles.render_song(task)
        assert result.error is None, result.error
        return path.read_bytes(), result.parts

    first, parts = render("a", MINE)
    again, _ = render("b", MINE)
    plain, plain_parts = render("c", ())
    assert first == again != plain
    assert soundfile.info(tmp_path / "a" / "song.wav").samplerate == 44_100
    piano = next(p for p in parts if p["lead"])
    assert piano["role"] == "pia" and set(piano["performance"]) == {
        "phrase", "accent", "lag", "spread", "articulation", "pedal"
    }  # fmt: skip
    assert all("pedal" not in p["performance"] for p in parts if p["role"] != "pia")
    assert all(p["performance"] == {} for p in plain_parts)


@pytest.mark.skipif(not Path(TIM).exists(), reason="timgm6mb-soundfont")
def test_the_pedal_sustains_a_soundfont_piano_between_its_notes() -> None:
    """Staccato notes a beat apart: with the pedal the gaps ring (measured ~13 dB louder)."""
    piano = next(p for p in read_presets(TIM) if (p.bank, p.program) == (0, 0))
    notes = tuple(ScoreNote(float(i), 0.25, 60 + i % 4 * 4, 90) for i in range(8))

    def gaps(options: tuple[str, ...]) -> float:
        playing = performance.draw(options, np.random.default_rng(0), "pia", notes)
        voice = Voice(
            "pia",
            True,
            piano,
            notes,
            jitter=(0,) * 8,
            played=tuple(enumerate(notes)),
            playing=playing,
        )
        audio = render_part(voice, part_notes(voice, 0.0, 100.0, SPQ), 44_100 * 4)
        between = [audio[round((i + 0.4) * 22_050) : round((i + 0.9) * 22_050)] for i in range(7)]
        return float(np.sqrt(np.mean(np.concatenate(between) ** 2)))

    assert 20 * np.log10(gaps(("pedal",)) / gaps(())) > 6
