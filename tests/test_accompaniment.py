"""Generated accompaniment (performance options 'comping' and 'grooves'): chords read from
the score, drum grooves in several styles, strums, unlabelled parts that keep the label
rules, and renders that without the options stay as they were."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from instrec.labels import GM_PERCUSSION_CHANNEL, IRMAS_CLASSES
from instrec.synth import accompaniment, ensembles
from instrec.synth.accompaniment import GROOVES, Hit, comp, harmony, play_groove
from instrec.synth.ensembles import SongTask, accompany, arrange, render_song
from instrec.synth.fluidsynth import Event
from instrec.synth.scores import Score, ScoreNote
from instrec.synth.sources import TRAIN, Catalogue, Pool

TIM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
needs_soundfont = pytest.mark.skipif(not Path(TIM).exists(), reason="timgm6mb-soundfont")


def _two_chords() -> Score:
    """C major in first inversion (E in the bass) for two beats, then G7."""
    chords = (((76, 72, 67, 52), 0.0), ((77, 74, 71, 55), 2.0))
    parts = tuple(
        tuple(ScoreNote(onset, 2.0, pitches[voice], 80) for pitches, onset in chords)
        for voice in range(4)
    )
    return Score("two-chords", parts)


def test_chords_are_the_pitch_classes_sounding_on_each_beat_with_their_root() -> None:
    chords = harmony(_two_chords())
    assert [c.onset for c in chords] == [0.0, 1.0, 2.0, 3.0]
    assert [set(c.classes) for c in chords] == [{0, 4, 7}] * 2 + [{7, 11, 2, 5}] * 2
    assert [c.root for c in chords] == [0, 0, 7, 7]  # not E: the template beats the bass
    assert chords[2].classes[0] == 7  # listed upwards from the root


@pytest.mark.parametrize("style", list(GROOVES))
def test_each_groove_repeats_its_bar_with_fills_and_humanised_hits(style: str) -> None:
    groove = GROOVES[style]
    hits = play_groove(groove, 40.0, 4, np.random.default_rng(0))

    def bar(k: int) -> list[Hit]:
        return [h for h in hits if k * groove.beats <= h.onset < (k + 1) * groove.beats]

    def shape(k: int) -> set[tuple[float, int]]:
        return {(round(h.onset - k * groove.beats, 6), h.key) for h in bar(k)}

    assert groove.beats == (3 if style == "waltz" else 4)
    assert shape(1) == shape(2) == {(round(q, 6), key) for q, key, _ in groove.hits}
    assert {h.key for h in bar(3)} & set(accompaniment.FILL_KEYS[2:])  # toms end a phrase
    assert accompaniment.CRASH in {h.key for h in bar(4) if h.onset == 4 * groove.beats}
    pattern = {(round(q, 6), key): velocity for q, key, velocity in groove.hits}
    played = [h.velocity - pattern[round(h.onset - groove.beats, 6), h.key] for h in bar(1)]
    assert len(set(played)) > 1 and max(map(abs, played)) <= accompaniment.HIT_JITTER
    assert all(0 < h.velocity <= 127 for h in hits)


def test_swing_rides_swung_eighths_with_the_hi_hat_on_two_and_four() -> None:
    hits = play_groove(GROOVES["swing"], 8.0, 8, np.random.default_rng(0))
    ride = sorted(round(h.onset % 1, 6) for h in hits if h.key == accompaniment.RIDE)
    assert set(ride) == {0.0, round(2 / 3, 6)}
    hat = {h.onset % 4 for h in hits if h.key == accompaniment.PEDAL_HAT}
    assert hat == {1.0, 3.0}


def test_a_song_draws_its_groove_from_its_own_stream() -> None:
    drawn = {
        accompaniment.drum_part(16.0, np.random.default_rng([0, n, 23])).style for n in range(40)
    }
    assert drawn == set(GROOVES)


def test_strums_spread_10_to_40_ms_down_on_beats_up_on_offbeats() -> None:
    spq = 0.5
    notes = comp(harmony(_two_chords()), "strum", spq, np.random.default_rng(1))
    strums: dict[float, list[ScoreNote]] = {}
    for note in notes:
        strums.setdefault(round(note.onset * 2) / 2, []).append(note)  # nearest eighth
    assert sorted(strums) == [0.0, 1.0, 1.5, 2.5, 3.0, 3.5]  # D, DU, UDU
    for onset, strum in strums.items():
        strum.sort(key=lambda n: n.onset)
        spread = (strum[-1].onset - strum[0].onset) * spq  # s
        assert 0.010 - 1e-9 <= spread <= 0.040 + 1e-9
        pitches = [n.pitch for n in strum]
        down = onset % 1 == 0
        assert pitches == sorted(pitches, reverse=not down)  # low to high on the beat
        ends = {round(n.onset + n.duration, 9) for n in strum}
        assert len(ends) == 1  # the strings stop together


def _pool() -> Pool:
    return Pool((TIM,), (), 1, Catalogue((TIM,), ()), frozenset(), TRAIN)


def _chorale() -> Score:
    """Four parts over I-IV-V-I, two beats a chord, 32 beats."""
    progression = ((72, 64, 55, 48), (72, 65, 57, 53), (71, 62, 55, 43), (72, 64, 55, 48))
    parts = tuple(
        tuple(
            ScoreNote(2.0 * k + half, 1.0, progression[k % 4][voice] + 12 * (voice == 0) * half, 80)
            for k in range(16)
            for half in (0, 1)
        )
        for voice in range(4)
    )
    return Score("chorale", parts)


def _task(label: str | None, number: int, performance: tuple[str, ...] = ()) -> SongTask:
    split = "train" if label else "test"
    return SongTask(number, "chorale", split, label, False, 1, (), _pool(), (5, 5), 10.0, 3,
                    performance=performance)  # fmt: skip


@needs_soundfont
def test_test_songs_comp_with_no_unlabelled_irmas_instrument() -> None:
    for number in range(1, 7):
        task = _task(None, number, ("comping",))
        voices = arrange(_chorale(), task, np.random.default_rng(number))
        added = accompany(_chorale(), task, voices, 0.5)
        assert added and all(v.role in ("pad", "bass") and not v.lead for v, _ in added)
        assert all(v.played for v, _ in added)  # folded into range, playable keys kept
        everyone = [*voices, *(v for v, _ in added)]
        assert all(v.lead for v in everyone if v.role in IRMAS_CLASSES)


@needs_soundfont
def test_train_songs_may_comp_with_another_irmas_class_but_never_their_label() -> None:
    roles = set()
    for number in range(1, 13):
        label = IRMAS_CLASSES[number % len(IRMAS_CLASSES)]
        task = _task(label, number, ("comping",))
        voices = arrange(_chorale(), task, np.random.default_rng(number))
        added = accompany(_chorale(), task, voices, 0.5)
        comping = [v for v, how in added if "comping" in how]
        assert len(comping) == 1 and not comping[0].lead and comping[0].role != label
        roles.add(comping[0].role)
    assert roles & set(IRMAS_CLASSES)


def _old_backbeat(start: float, stop: float, spq: float) -> list[Event]:
    """drum_events as it was before grooves: the reference default renders must keep."""
    events = []
    for bar in range(int(start / (2 * spq)), int(stop / (2 * spq)) + 1):
        for quarter, key, velocity in ensembles.DRUM_PATTERN:
            onset = (2 * bar + quarter) * spq
            if start <= onset < stop:
                on = round((onset - start) * ensembles.IRMAS_RATE)
                events += [
                    Event(on, "on", GM_PERCUSSION_CHANNEL, key, velocity),
                    Event(on + ensembles.IRMAS_RATE // 10, "off", GM_PERCUSSION_CHANNEL, key),
                ]
    return events


def test_without_grooves_the_drums_play_the_old_backbeat() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        start, spq = float(rng.uniform(0, 30)), float(rng.uniform(0.3, 0.9))
        stop = start + float(rng.uniform(3, 20))
        assert ensembles.drum_events(start, stop, spq) == _old_backbeat(start, stop, spq)
    groove = accompaniment.drum_part(64.0, np.random.default_rng(1))
    assert ensembles.drum_events(4.0, 12.0, 0.5, groove.hits) != _old_backbeat(4.0, 12.0, 0.5)


def _render(folder: Path, performance: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setattr(ensembles, "read_score", lambda work: _chorale())
    path = folder / "song.wav"
    task = SongTask(2, "chorale", "train", "flu", True, 1, (path,), _pool(), (5, 5), 10.0, 3,
                    performance=performance)  # fmt: skip
    result = render_song(task)
    assert result.error is None and path.exists()
    levels = result.excerpts[0]["levels"]
    return {
        "wav": path.read_bytes(),
        "parts": json.loads(json.dumps(result.parts)),
        "levels": levels,
    }


@needs_soundfont
def test_comping_and_grooves_render_the_same_bytes_and_leave_defaults_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _render(tmp_path / "default", (), monkeypatch)
    both = ("comping", "grooves")
    first = _render(tmp_path / "one", both, monkeypatch)
    again = _render(tmp_path / "two", both, monkeypatch)
    assert first == again
    assert first["wav"] != reference["wav"]
    assert first["parts"][: len(reference["parts"])] == reference["parts"]  # same score parts
    added = first["parts"][len(reference["parts"]) :]
    assert [p["role"] for p in added if "comping" in p] != ["flu"]
    assert any("comping" in p for p in added) and added[-1]["role"] == "drums"
    assert added[-1]["groove"] in GROOVES and added[-1]["fill_bars"] in (4, 8)
    assert all("comping" not in p and "groove" not in p for p in reference["parts"])
    assert len(first["levels"]) == len(first["parts"])  # the drums' level is the last
    assert all(level is not None for level in first["levels"])  # every added part sounds
