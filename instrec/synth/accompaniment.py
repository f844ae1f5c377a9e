"""Generated accompaniment: drum grooves, and comping parts drawn from a score's harmony.

Both are performance options (instrec.synth.performance), off by default:
  grooves  one drum groove per song in a style of GROOVES (rock eighths, funk sixteenths
           with ghost notes, swing ride, bossa side-stick clave and shaker, half-time
           ballad, waltz in 3), a fill every 4 or 8 bars, every hit's velocity humanised;
           General MIDI percussion keys. Bars run from the score's first beat.
  comping  the chord sounding on every beat (the pitch classes of every part's notes
           sounding then, root by template match) played by a comping instrument in a
           drawn pattern (block chords, stabs, Alberti or broken arpeggios, guitar strums),
           and a bass line (roots and fifths, or walking) where no part plays bass.
What is heard in real songs besides their annotated instrument: IRMAS covers pop, rock,
jazz, blues, country, latin and electronic songs, not only chorales played dry.

Times are quarter notes from the score's first beat, as in scores.ScoreNote; the renderer
(instrec.synth.ensembles) plays comping notes like a score part's and drum hits on a kit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from instrec.synth.scores import Score, ScoreNote
from instrec.synth.soundfonts import Preset

# ---- drums -------------------------------------------------------------------------------

KICK, SIDE_STICK, SNARE, PEDAL_HAT, CLOSED_HAT, CRASH, RIDE, MARACAS = (
    36, 37, 38, 44, 42, 49, 51, 70,
)  # fmt: skip  # General MIDI percussion keys
FILL_KEYS = (38, 38, 50, 48, 47, 45, 43, 41)  # a fill runs from the snare down the toms
FILL_BARS = (4, 8)  # a fill ends every this many bars (drawn per song)
HIT_JITTER = 8  # +- MIDI velocity added to every hit


@dataclass(frozen=True)
class Hit:
    onset: float  # quarter notes from the score's first beat
    key: int  # General MIDI percussion key
    velocity: int


@dataclass(frozen=True)
class Groove:
    beats: int  # quarter notes per bar
    hits: tuple[tuple[float, int, int], ...]  # (quarter within the bar, key, velocity)
    fill_step: float  # quarter notes between a fill's strokes (1/3: triplets)


def _line(
    key: int, step: float, beats: int, on_beat: int, off_beat: int
) -> tuple[tuple[float, int, int], ...]:
    """A cymbal or shaker line: a hit every `step` quarters, louder on the beats."""
    times = [k * step for k in range(round(beats / step))]
    return tuple((t, key, on_beat if t % 1 == 0 else off_beat) for t in times)


SWUNG = 2 / 3  # a swung eighth falls two thirds into its beat
GROOVES: dict[str, Groove] = {
    "rock": Groove(4, (
        *_line(CLOSED_HAT, 0.5, 4, 75, 55),
        (0, KICK, 100), (2, KICK, 95), (2.5, KICK, 80), (1, SNARE, 100), (3, SNARE, 100),
    ), 0.25),
    "funk": Groove(4, (
        *_line(CLOSED_HAT, 0.25, 4, 70, 40),
        (0, KICK, 100), (0.75, KICK, 75), (2.5, KICK, 85), (1, SNARE, 105), (3, SNARE, 105),
        (1.75, SNARE, 30), (2.25, SNARE, 28), (3.25, SNARE, 32),  # ghost notes
    ), 0.25),
    "swing": Groove(4, (
        (0, RIDE, 80), (1, RIDE, 90), (1 + SWUNG, RIDE, 60),
        (2, RIDE, 80), (3, RIDE, 90), (3 + SWUNG, RIDE, 60),
        (1, PEDAL_HAT, 65), (3, PEDAL_HAT, 65), *_line(KICK, 1, 4, 35, 35),  # feathered
    ), 1 / 3),
    "bossa": Groove(4, (
        *((t, SIDE_STICK, 80) for t in (0, 0.75, 1.5, 2.5, 3.25)),  # bossa clave
        (0, KICK, 85), (1.5, KICK, 60), (2, KICK, 85), (3.5, KICK, 60),
        *_line(MARACAS, 0.25, 4, 55, 35),
    ), 0.25),
    "ballad": Groove(4, (  # half time: the backbeat on 3 only
        *_line(CLOSED_HAT, 0.5, 4, 50, 38), (0, KICK, 90), (2.5, KICK, 70), (2, SNARE, 95),
    ), 0.25),
    "waltz": Groove(3, (
        *_line(CLOSED_HAT, 0.5, 3, 60, 45),
        (0, KICK, 95), (1, SIDE_STICK, 65), (2, SIDE_STICK, 65),
    ), 0.25),
}  # fmt: skip
GROOVE_STYLES: tuple[str, ...] = tuple(GROOVES)


@dataclass(frozen=True)
class DrumPart:
    """A song's drums: its groove played over the whole score."""

    style: str
    fill_bars: int
    hits: tuple[Hit, ...]  # in time order

    def record(self) -> dict[str, object]:
        """What songs.json records of it."""
        return {"groove": self.style, "fill_bars": self.fill_bars}


@dataclass(frozen=True)
class Drums:
    """A song's drum kit and what it plays."""

    kit: Preset
    part: DrumPart | None = None  # None: the plain backbeat (ensembles.DRUM_PATTERN)


def drum_part(quarters: float, rng: np.random.Generator) -> DrumPart:
    """A drawn groove and fill length, played for `quarters` (and a bar more)."""
    style = GROOVE_STYLES[int(rng.integers(len(GROOVE_STYLES)))]
    fill_bars = int(rng.choice(FILL_BARS))
    return DrumPart(style, fill_bars, play_groove(GROOVES[style], quarters, fill_bars, rng))


def play_groove(
    groove: Groove, quarters: float, fill_bars: int, rng: np.random.Generator
) -> tuple[Hit, ...]:
    """The groove bar after bar: the last one or two beats of every `fill_bars`th bar a
    fill, a crash on the bar after it, every velocity humanised by +-HIT_JITTER."""
    hits = []
    for bar in range(math.ceil(quarters / groove.beats) + 1):
        fill_from = float(groove.beats)
        if (bar + 1) % fill_bars == 0:
            fill_from -= int(rng.integers(1, 3))
        pattern = [h for h in groove.hits if h[0] < fill_from]
        pattern += _fill(fill_from, groove.beats, groove.fill_step)
        if bar and bar % fill_bars == 0:
            pattern.append((0.0, CRASH, 100))
        for quarter, key, velocity in sorted(pattern):
            jitter = int(rng.integers(-HIT_JITTER, HIT_JITTER + 1))
            onset = float(bar * groove.beats + quarter)
            hits.append(Hit(onset, key, int(np.clip(velocity + jitter, 1, 127))))
    return tuple(hits)


def _fill(first: float, last: float, step: float) -> list[tuple[float, int, int]]:
    """Strokes every `step` quarters from `first` to `last`: snare, then the toms down,
    growing louder (none if first == last)."""
    count = round((last - first) / step)
    return [
        (first + k * step, FILL_KEYS[k * len(FILL_KEYS) // count], 70 + 40 * k // count)
        for k in range(count)
    ]


# ---- harmony -----------------------------------------------------------------------------

# Chord templates (semitones above the root): triads, then sevenths.
TEMPLATES: tuple[frozenset[int], ...] = tuple(
    frozenset(t)
    for t in ((0, 4, 7), (0, 3, 7), (0, 3, 6), (0, 4, 7, 10), (0, 3, 7, 10), (0, 4, 7, 11))
)


@dataclass(frozen=True)
class Chord:
    onset: float  # quarter notes (a beat: chords last one quarter)
    root: int  # pitch class, 0 = C
    classes: tuple[int, ...]  # the pitch classes sounding, upwards from the root


def harmony(score: Score) -> list[Chord]:
    """The chord sounding on every beat where any part sounds, from every part's notes."""
    notes = [n for part in score.parts for n in part]
    onsets = np.array([n.onset for n in notes])
    ends = onsets + np.array([n.duration for n in notes])
    pitches = np.array([n.pitch for n in notes])
    chords = []
    for beat in range(math.ceil(score.quarters)):
        sounding = pitches[(onsets <= beat + 1e-6) & (ends > beat + 1e-6)]
        if sounding.size:
            classes = {int(p) % 12 for p in sounding}
            root = chord_root(classes, int(sounding.min()) % 12)
            chords.append(
                Chord(float(beat), root, tuple(sorted(classes, key=lambda c: (c - root) % 12)))
            )
    return chords


def chord_root(classes: set[int], bass: int) -> int:
    """The root whose best template matches the pitch classes best (template tones heard
    count twice, tones missing or extra once each); ties go to the bass, then the lower."""

    def fit(root: int) -> tuple[int, bool, int]:
        above = {(c - root) % 12 for c in classes}
        best = max(2 * len(above & t) - len(t - above) - len(above - t) for t in TEMPLATES)
        return best, root == bass, -root

    return max(range(12), key=fit)


# ---- comping -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stroke:
    offset: float  # quarter notes into the pattern's cell
    duration: float  # quarter notes
    tone: int | None = None  # arpeggios: which tone (from the lowest, then its octave); None: all
    strum: int = 0  # guitars: +1 a down stroke (low to high), -1 an up stroke


# Pattern: (cell length in quarter notes, its strokes), repeated from the first beat.
PATTERNS: dict[str, tuple[int, tuple[Stroke, ...]]] = {
    "block": (1, (Stroke(0, 0.9),)),
    "stabs": (4, (Stroke(0, 0.4), Stroke(1.5, 0.4), Stroke(2.5, 0.4))),
    "alberti": (2, tuple(Stroke(k / 2, 0.5, t) for k, t in enumerate((0, 2, 1, 2)))),  # C G E G
    "broken": (2, tuple(Stroke(k / 2, 0.5, k) for k in range(4))),
    "strum": (4, (  # down on the beats, up on the offbeats: the strumming hand never stops
        Stroke(0, 1, strum=1), Stroke(1, 0.5, strum=1), Stroke(1.5, 1, strum=-1),
        Stroke(2.5, 0.5, strum=-1), Stroke(3, 0.5, strum=1), Stroke(3.5, 0.5, strum=-1),
    )),
}  # fmt: skip
# Patterns each comping role plays; test songs comp with pads only (every IRMAS
# instrument heard there is labelled), train songs also with IRMAS classes but their own.
ROLE_PATTERNS: dict[str, tuple[str, ...]] = {
    "pia": ("block", "stabs", "alberti", "broken"),
    "gac": ("strum", "broken"),
    "gel": ("strum", "stabs"),
    "org": ("block", "stabs"),
    "pad": ("block", "stabs", "broken"),
}
STRUM_SECONDS = (0.010, 0.040)  # first to last string of a strum
CHORD_LOW, GUITAR_LOW, BASS_LOW = 55, 40, 36  # MIDI key a voicing's root is placed from
GUITAR_STRINGS, UP_STRINGS = 6, 4  # strings a down stroke sounds; an up stroke the top ones
BASS_LINES = ("roots", "walking")


def comping_role(label: str | None, rng: np.random.Generator) -> str:
    """Who comps: a pad in test songs (`label` None); in a train song a comping IRMAS
    instrument other than its label, or a pad."""
    if label is None:
        return "pad"
    roles = [r for r in ROLE_PATTERNS if r != label]
    return roles[int(rng.integers(len(roles)))]


def comping_pattern(role: str, rng: np.random.Generator) -> str:
    patterns = ROLE_PATTERNS[role]
    return patterns[int(rng.integers(len(patterns)))]


def comp(
    chords: Sequence[Chord], pattern: str, spq: float, rng: np.random.Generator
) -> tuple[ScoreNote, ...]:
    """The chords played in a pattern (strums spread over STRUM_SECONDS at `spq` s per
    quarter); cells where no chord sounds are silent."""
    by_beat = {int(c.onset): c for c in chords}
    cell, strokes = PATTERNS[pattern]
    notes: list[ScoreNote] = []
    for start in range(0, max(by_beat, default=-1) + 1, cell):
        for stroke in strokes:
            chord = by_beat.get(int(start + stroke.offset))
            if chord is not None:
                notes += _stroke(chord, start + stroke.offset, stroke, spq, rng)
    return tuple(sorted(notes, key=lambda n: (n.onset, n.pitch)))


def _stroke(
    chord: Chord, onset: float, stroke: Stroke, spq: float, rng: np.random.Generator
) -> list[ScoreNote]:
    if stroke.strum:
        return _strum(chord, onset, stroke, spq, rng)
    keys = voiced(chord, CHORD_LOW)
    if stroke.tone is not None:
        keys = [[*keys, keys[0] + 12][stroke.tone % (len(keys) + 1)]]
    velocity = 70 if stroke.tone else 80  # an arpeggio's first tone and chords louder
    return [ScoreNote(onset, stroke.duration, key, velocity) for key in keys]


def _strum(
    chord: Chord, onset: float, stroke: Stroke, spq: float, rng: np.random.Generator
) -> list[ScoreNote]:
    """A strum: down strokes low to high over every string, up strokes high to low over
    the top ones; each string later by the same step, all ending together."""
    keys = guitar_voicing(chord)
    if stroke.strum < 0:
        keys = keys[::-1][:UP_STRINGS]
    step = float(rng.uniform(*STRUM_SECONDS)) / spq / max(len(keys) - 1, 1)  # quarters
    velocity = 85 if stroke.strum > 0 else 65
    return [
        ScoreNote(onset + k * step, stroke.duration - k * step, key, velocity)
        for k, key in enumerate(keys)
    ]


def voiced(chord: Chord, low: int) -> list[int]:
    """Close position: the root at or above MIDI key `low`, the other tones above it."""
    root = low + (chord.root - low) % 12
    return [root + (c - chord.root) % 12 for c in chord.classes]


def guitar_voicing(chord: Chord) -> list[int]:
    """Six strings, low to high: the chord in close position over two octaves."""
    return sorted({*voiced(chord, GUITAR_LOW), *(k + 12 for k in voiced(chord, GUITAR_LOW))})[
        :GUITAR_STRINGS
    ]


def bass_line(chords: Sequence[Chord], style: str) -> tuple[ScoreNote, ...]:
    """A bass part of quarter notes: 'roots' (the root where the chord changes, then the
    fifth and root in turn) or 'walking' (the root where the chord changes, chord tones
    upwards, a semitone leading into the next root)."""
    by_beat = {int(c.onset): c for c in chords}
    notes = []
    previous: int | None = None
    for beat, chord in sorted(by_beat.items()):
        root = BASS_LOW + (chord.root - BASS_LOW) % 12
        before = by_beat.get(beat - 1)
        after = by_beat.get(beat + 1)
        if previous is None or before is None or before.root != chord.root:
            key = root
        elif style == "roots":
            key = root + 7 if previous == root else root
        elif after is not None and after.root != chord.root:
            target = BASS_LOW + (after.root - BASS_LOW) % 12
            key = target - 1 if previous < target else target + 1
        else:
            key = _next_tone_up(chord, previous)
        notes.append(ScoreNote(float(beat), 0.95, key, 85))
        previous = key
    return tuple(notes)


def _next_tone_up(chord: Chord, previous: int) -> int:
    """The chord tone just above `previous`, an octave down once past the bass's octave
    and a fifth."""
    above = [k for k in range(previous + 1, previous + 13) if k % 12 in chord.classes]
    key = above[0] if above else previous
    return key - 12 if key > BASS_LOW + 19 else key
