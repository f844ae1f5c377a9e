"""How a song is played, beyond the notes of its score.

Ingredients, each switched on by name (all off by default: none helped in the cross-source
ablation, benchmarks/results/render_ablation):
  dynamics  a slow phrase curve over the song (two sinusoids of 8-32 quarter notes,
            together +-15-25 velocity) and notes on the beat 2-8 velocity louder
  timing    the part ahead of or behind the beat (+-15 ms), each chord's onset off by
            Gaussian jitter (sd 5-20 ms, at most 3 sd), notes held legato (0.95-1.1x)
            or staccato (0.5-0.8x), each note's length wobbling by ~10%
  pedal     piano parts sustained: the pedal changes at the first note at least 0.8-2.4 s
            after the last change (lifted there, pressed 30-60 ms later): CC64 for
            soundfonts, notes held to the next lift for csound models
  comping   (to be written)
  grooves   (to be written)
Every value is drawn whether its ingredient is on or not (the per-note ones too, one
each per score note), so turning one on never changes another's draw; a note's shifts
are the same in every excerpt that plays it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from instrec.synth.options import parse_named
from instrec.synth.scores import ScoreNote

PERFORMANCE_OPTIONS: tuple[str, ...] = ("dynamics", "timing", "pedal", "comping", "grooves")
PEDAL_ROLES = ("pia",)  # roles whose parts are pedalled
SUSTAIN_CC = 64  # MIDI sustain pedal: 0 up, 127 down
JITTER_LIMIT = 3.0  # a chord's onset jitter is cut at this many standard deviations
ARTICULATION_WOBBLE = 0.1  # sd of the log of each note's length factor


@dataclass(frozen=True)
class Performance:
    """How one part is played; None (or empty) where that ingredient is off."""

    phrase: tuple[float, float, float, float, float, float] | None = None
    # depth (velocity), weight of the first sinusoid, its period (quarter notes) and
    # phase (radians), the second's period and phase
    accent: float | None = None  # velocity added to notes on the beat
    lag: float | None = None  # s the part plays behind the beat (< 0: ahead)
    spread: float | None = None  # s, sd of each chord's onset jitter
    articulation: float | None = None  # factor on every note's duration
    pedal: tuple[float, float] | None = None  # s held at least before a change, s lifted
    shifts: tuple[float, ...] = field(default=(), repr=False)  # s, each score note's onset
    lengths: tuple[float, ...] = field(default=(), repr=False)  # each score note's factor

    def record(self) -> dict[str, object]:
        """What songs.json records: the part's values that are on, rounded (not per note)."""
        return {
            name: [round(v, 4) for v in value] if isinstance(value, tuple) else round(value, 4)
            for name, value in asdict(self).items()
            if value is not None and name not in ("shifts", "lengths")
        }


def parse_options(names: Sequence[str]) -> tuple[str, ...]:
    """The ingredients named, in canonical order; 'all' for every one, 'none' for none."""
    return parse_named(names, PERFORMANCE_OPTIONS, "performance option")


def draw(
    options: Sequence[str], rng: np.random.Generator, role: str, notes: Sequence[ScoreNote]
) -> Performance:
    """A part's performance: every value drawn in a fixed order (per-note ones last, one
    each per score note), the chosen ones kept; the pedal only for PEDAL_ROLES."""
    depth, weight = float(rng.uniform(15, 25)), float(rng.uniform(0, 1))
    phrase = (
        depth,
        weight,
        float(rng.uniform(8, 32)),
        float(rng.uniform(0, 2 * np.pi)),
        float(rng.uniform(8, 32)),
        float(rng.uniform(0, 2 * np.pi)),
    )
    accent = float(rng.uniform(2, 8))
    lag, spread = float(rng.uniform(-0.015, 0.015)), float(rng.uniform(0.005, 0.02))
    legato, staccato = float(rng.uniform(0.95, 1.1)), float(rng.uniform(0.5, 0.8))
    articulation = legato if rng.random() < 0.5 else staccato
    pedal = (float(rng.uniform(0.8, 2.4)), float(rng.uniform(0.03, 0.06)))
    jitter = np.clip(rng.standard_normal(len(notes)), -JITTER_LIMIT, JITTER_LIMIT)
    wobble = np.exp(ARTICULATION_WOBBLE * rng.standard_normal(len(notes)))
    chord: dict[
        float, int
    ] = {}  # score onset (quarters) -> its first note: a chord's notes move together
    for index, note in enumerate(notes):
        chord.setdefault(note.onset, index)
    timing = "timing" in options
    return Performance(
        phrase=phrase if "dynamics" in options else None,
        accent=accent if "dynamics" in options else None,
        lag=lag if timing else None,
        spread=spread if timing else None,
        articulation=articulation if timing else None,
        pedal=pedal if "pedal" in options and role in PEDAL_ROLES else None,
        shifts=tuple(lag + spread * float(jitter[chord[n.onset]]) for n in notes) if timing else (),
        lengths=tuple(articulation * float(w) for w in wobble) if timing else (),
    )


def phrase_curve(playing: Performance, quarters: float) -> float:
    """The phrase's velocity change at `quarters` from the start of the song (0 if off)."""
    if playing.phrase is None:
        return 0.0
    depth, weight, period1, phase1, period2, phase2 = playing.phrase
    first = math.sin(2 * math.pi * quarters / period1 + phase1)
    second = math.sin(2 * math.pi * quarters / period2 + phase2)
    return depth * (weight * first + (1 - weight) * second)


def velocity(playing: Performance, quarters: float, value: int) -> int:
    """A note's velocity (1-127) after the phrase curve and the accent on the beat, for a
    note `quarters` from the start of the song."""
    if playing.phrase is None or playing.accent is None:
        return value
    on_beat = abs(quarters - round(quarters)) < 1e-6
    change = phrase_curve(playing, quarters) + (playing.accent if on_beat else 0.0)
    return int(np.clip(round(value + change), 1, 127))


def timed(
    playing: Performance,
    indices: Sequence[int],
    onsets: Sequence[float],
    durations: Sequence[float],
    keys: Sequence[int],
) -> tuple[list[float], list[float]]:
    """Onsets and durations (s) of notes as played: score note `indices[i]` moved by its
    shift (never before 0) and scaled by its length factor, and cut where the next note
    of the same key starts (a synthesiser would end that one instead)."""
    if not playing.shifts:
        return list(onsets), list(durations)
    starts = [max(o + playing.shifts[i], 0.0) for o, i in zip(onsets, indices, strict=True)]
    lengths = [d * playing.lengths[i] for d, i in zip(durations, indices, strict=True)]
    for note, (start, key) in enumerate(zip(starts, keys, strict=True)):
        later = [s for s, k in zip(starts, keys, strict=True) if k == key and s > start]
        if later:
            lengths[note] = min(lengths[note], min(later) - start)
    return starts, lengths


class Sounding(Protocol):
    """A note as played: seconds from the start of the render."""

    @property
    def onset(self) -> float: ...

    @property
    def duration(self) -> float: ...


def pedal_changes(playing: Performance, notes: Sequence[Sounding]) -> tuple[list[float], float]:
    """Times (s) the pedal changes (lifted, pressed again after the gap): at the first
    note, then at the first note held at least `hold` s after the last change; and the
    time it is lifted for good (the end of the last note). No changes when off."""
    if playing.pedal is None or not notes:
        return [], 0.0
    hold, gap = playing.pedal
    changes: list[float] = []
    for onset in sorted(n.onset for n in notes):
        if not changes or onset >= changes[-1] + hold:
            changes.append(onset)
    return changes, max(max(n.onset + n.duration for n in notes), changes[-1] + gap)


def pedal(playing: Performance, notes: Sequence[Sounding]) -> list[tuple[float, int]]:
    """(time s, CC64 value) of the pedal under `notes` (empty when off)."""
    changes, release = pedal_changes(playing, notes)
    if playing.pedal is None or not changes:
        return []
    gap = playing.pedal[1]
    moves = [(time, value) for c in changes for time, value in ((c, 0), (c + gap, 127))]
    return [*moves[1:], (release, 0)]  # the pedal starts up


def held(playing: Performance, notes: Sequence[Sounding]) -> list[float]:
    """Each note's duration (s) with the pedal: a note still held when the pedal goes down
    sounds until it is lifted (unchanged when off), for synthesisers without CC64."""
    changes, release = pedal_changes(playing, notes)
    if playing.pedal is None or not changes:
        return [n.duration for n in notes]
    gap = playing.pedal[1]
    durations = []
    for note in notes:
        last = bisect.bisect_right(changes, note.onset) - 1  # the change before the note
        lift = changes[last + 1] if last + 1 < len(changes) else release
        caught = note.onset + note.duration > changes[last] + gap
        durations.append(max(note.duration, lift - note.onset) if caught else note.duration)
    return durations
