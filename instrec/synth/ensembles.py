"""Render an IRMAS-format dataset of ensembles from music21 scores and rendered instruments.

Layout, as the official release (44.1 kHz stereo 16-bit wav):
  <out>/IRMAS-TrainingData/<cls>/<NNN>__[<cls>][dru|nod][<genre>]<SSSS>__<k>.wav  (3 s, one label)
  <out>/IRMAS-TestingData-Part1/<SSSS> <work>-<k>.wav + .txt  (5-20 s, one label per line)
  <out>/cross-source/IRMAS-TestingData-Part1/...  (the same, played by held-out families)
plus <out>/songs.json (score, parts, sources, timbre and the level of every part in
every excerpt), <out>/families.json (every family's split) and <out>/render-ensembles.json
(options and counts). Train, test and cross-source songs use disjoint scores.

Instruments come from sources (instrec.synth.sources: soundfont presets, csound models),
grouped into recording/synthesis families. With a holdout, training and the in-source
test play no held-out family (in any role), and cross-source test songs play held-out
families only for their labelled parts: what a model never heard in training.

Predominance rule: every labelled (leading) part is mixed at the same loudness
(LEAD_LUFS); every other part `background_db` quieter (+-2 dB), drums likewise. A class
leads the score part that fits its instrument's range best: most notes inside after an
octave transposition, then the smallest transposition, then the median pitch nearest the
range's middle, then the higher part. Every part is folded by octaves into its
instrument's range and the instrument's playable keys. An excerpt is kept only if every
leading part sounds over half of it and its measured loudness is within LEAD_MARGIN_DB
of the loudest part's.
Train songs have one label each (classes dealt in turn, so classes are balanced); their
other parts play other IRMAS instruments, bass or pads, as in real IRMAS songs whose
accompaniment is unannotated. Test songs have 1-3 labels and only unlabelled
accompaniment (bass, pads, drums) besides, so every IRMAS instrument heard is labelled.

Random draws come from separate seeded streams: the song's (score, labels, parts, tempo,
excerpts), each part's instrument and each part's timbre, so changing the sources or the
timbre options leaves the rest of a song as it was.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from instrec.atomic import write_text_atomic
from instrec.audio import integrated_loudness
from instrec.errors import InstrecError
from instrec.labels import GM_PERCUSSION_BANK, GM_PERCUSSION_CHANNEL, IRMAS_CLASSES
from instrec.synth import models, performance, production, sources, timbre
from instrec.synth.accompaniment import (
    BASS_LINES,
    Drums,
    Hit,
    bass_line,
    comp,
    comping_pattern,
    comping_role,
    drum_part,
    harmony,
)
from instrec.synth.csound import CsoundNote
from instrec.synth.fluidsynth import PAN_CC, Event, Synth
from instrec.synth.models import ModelVoice
from instrec.synth.outputs import claim_folder, run_tasks, write_json, write_wav
from instrec.synth.performance import Performance
from instrec.synth.scores import DEFAULT_COMPOSERS, Score, ScoreNote, multipart_works, read_score
from instrec.synth.soundfonts import Preset, read_presets
from instrec.synth.sources import HELD_OUT, TRAIN, Instrument, Pool
from instrec.synth.timbre import Timbre

IRMAS_RATE = 44_100  # Hz, rendered directly (no aliasing at this rate)
TRAIN_SECONDS = 3.0
DEFAULT_TEST_SECONDS = (5.0, 20.0)
PRE_ROLL = 1.0  # s rendered before an excerpt so notes already sounding are heard
GRID = 0.25  # s between candidate excerpt starts
MIN_LEAD_ACTIVITY = 0.5  # a leading part must sound over half of its excerpt
LEAD_LUFS = -23.0  # each leading part's loudness before the mix is normalised
LEAD_MARGIN_DB = 3.0  # a leading part at most this much quieter than the loudest part
EXCERPT_TRIES = 4  # candidate starts rendered before an excerpt length is given up
MIX_LUFS = -16.0  # loudness of a finished excerpt (peaks kept under MAX_PEAK)
MAX_PEAK = 0.98
PLAYABLE_PEAK = 10 ** (-50 / 20)
MIN_PLAYED_SHARE = 0.8  # an instrument must play this share of its part's notes ...
INSTRUMENT_TRIES = 5  # ... or another is drawn, up to this many times
NOTE_SECONDS_RANGE = (0.35, 0.7)  # tempo: the score's median note lasts this long (s)
TEST_LABEL_COUNTS = ((1, 0.5), (2, 0.35), (3, 0.15))  # labels per test song, probability
GENRE_WITH_DRUMS, GENRE_WITHOUT_DRUMS = "pop_roc", "cla"  # IRMAS genre tag in file names
CROSS_SOURCE_FOLDER = "cross-source"
FIRST_CROSS_SOURCE_SONG = 5001  # cross-source song numbers (and their seeds) start here
VELOCITY_JITTER = 8  # +- MIDI velocity added to every note
# MIDI range (lowest, highest key) each instrument plays in the rendered ensembles.
INSTRUMENT_RANGES: dict[str, tuple[int, int]] = {
    "cel": (36, 76),
    "cla": (50, 89),
    "flu": (60, 96),
    "gac": (40, 81),
    "gel": (40, 84),
    "org": (36, 96),
    "pia": (28, 103),
    "sax": (49, 81),
    "tru": (54, 82),
    "vio": (55, 100),
    "voi": (48, 79),
    "bass": (28, 55),
    "pad": (36, 84),
}
DRUM_PATTERN = ((0.0, 36, 100), (1.0, 38, 90), (0.0, 42, 60), (0.5, 42, 50), (1.0, 42, 60),
                (1.5, 42, 50))  # fmt: skip  # (quarter within 2 beats, GM key, velocity)
SPLIT_FOLDERS = {
    "train": "IRMAS-TrainingData",
    "test": "IRMAS-TestingData-Part1",
    "cross-source": f"{CROSS_SOURCE_FOLDER}/IRMAS-TestingData-Part1",
}
# Random streams of a song besides its own: each part's instrument, timbre, velocities.
_INSTRUMENT_STREAM, _TIMBRE_STREAM, _VELOCITY_STREAM = 11, 13, 17
_PERFORMANCE_STREAM = 19  # each part's performance (instrec.synth.performance)
_GROOVE_STREAM, _COMPING_STREAM = 23, 31  # the song's drum groove and comping parts
_PRODUCTION_STREAM = 29  # the song's production (instrec.synth.production)


@dataclass(frozen=True)
class SongTask:
    number: int  # the 4-digit song number in file names
    work: str  # music21 corpus path
    split: str  # "train" | "test" | "cross-source"
    label: str | None  # train: the song's class; test: drawn when the score is read
    drums: bool
    excerpts: int
    paths: tuple[Path, ...]  # wav files this song writes (the test .txt sit beside)
    pool: Pool  # the instruments this song may play
    test_seconds: tuple[float, float]
    background_db: float
    seed: int
    timbre: tuple[str, ...] = ()  # timbre variation options (instrec.synth.timbre)
    performance: tuple[str, ...] = ()  # how it is played (instrec.synth.performance)
    production: tuple[str, ...] = ()  # what is done to parts and mix (instrec.synth.production)
    label_classes: tuple[str, ...] = IRMAS_CLASSES  # classes test labels are drawn from
    recorded: bool = False  # songs.json of an earlier run describes this song


@dataclass
class Voice:
    """A score part as rendered: who plays it, how, how loud, where."""

    role: str  # an IRMAS class code, "bass", "pad" or "drums"
    lead: bool
    instrument: Instrument
    notes: tuple[ScoreNote, ...]
    transpose: int = 0  # semitones applied before folding into range
    pan: int = 64  # MIDI CC10
    family: str = ""
    variation: Timbre = field(default_factory=Timbre)
    jitter: tuple[int, ...] = ()  # velocity change of each note
    played: tuple[tuple[int, ScoreNote], ...] = ()  # (index, note) as played: folded, playable
    playing: Performance = field(default_factory=Performance)  # dynamics, timing, pedal


@dataclass
class SongResult:
    number: int
    work: str
    split: str
    labels: list[str] = field(default_factory=list)
    parts: list[dict[str, object]] = field(default_factory=list)
    excerpts: list[dict[str, object]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    existing: int = 0
    error: str | None = None


_SYNTH: Synth | None = None
_PLAYABLE: dict[tuple[Instrument, int], float | None] = {}  # (instrument, key) -> tuning


def new_synth() -> Synth:
    """The process's synth for probing which keys a preset sounds (a yes or no that does
    not depend on what it played before). Audio is rendered by a synth of its own per part
    (see render_part): libfluidsynth keeps traces of earlier renders that would make a song
    depend on the songs its worker process rendered before it."""
    global _SYNTH
    if _SYNTH is None:
        _SYNTH = Synth(IRMAS_RATE)
    return _SYNTH


def playable_keys(instrument: Instrument, keys: set[int]) -> set[int]:
    """The keys among `keys` that the instrument sounds (probed once per process)."""
    unknown = sorted(k for k in keys if (instrument, k) not in _PLAYABLE)
    if unknown and isinstance(instrument, Preset):
        sounding = set(new_synth().playable_keys(instrument, unknown, 0.3, PLAYABLE_PEAK))
        _PLAYABLE.update({(instrument, k): 1.0 if k in sounding else None for k in unknown})
    elif unknown and isinstance(instrument, ModelVoice):
        # every key of the voice at once, in one order: a probe note's result depends on
        # the notes rendered before it, so probing only the keys a song needs would make a
        # song depend on the songs its worker process rendered earlier
        every = range(instrument.keys[0], instrument.keys[1] + 1)
        tunings = models.probe(instrument, list(every), IRMAS_RATE)
        _PLAYABLE.update({(instrument, k): tunings.get(k) for k in {*every, *unknown}})
    return {k for k in keys if _PLAYABLE[instrument, k] is not None}


@functools.cache
def drum_kits(soundfonts: tuple[str, ...]) -> list[Preset]:
    return [
        p
        for font in soundfonts
        for p in read_presets(font)
        if (p.bank, p.program) == (GM_PERCUSSION_BANK, 0)
    ]


def octave_fit(notes: Sequence[ScoreNote], low: int, high: int) -> tuple[float, int]:
    """(share of notes inside [low, high], transposition in semitones) of the best octave
    shift; shifts equally good prefer the smaller one."""
    pitches = np.array([n.pitch for n in notes])
    best = max(
        (float(np.mean((pitches + s >= low) & (pitches + s <= high))), -abs(s), s)
        for s in range(-48, 49, 12)
    )
    return best[0], best[2]


def _range(role: str, instrument: Instrument) -> tuple[int, int]:
    """Keys a part is folded into: the role's range, narrowed to a model voice's keys
    while an octave or more remains."""
    low, high = INSTRUMENT_RANGES[role]
    if isinstance(instrument, Preset):
        return low, high
    voice_low, voice_high = instrument.keys
    narrowed = max(low, voice_low), min(high, voice_high)
    return narrowed if narrowed[1] - narrowed[0] >= 12 else (low, high)


def folded(
    role: str, instrument: Instrument, notes: Sequence[ScoreNote], transpose: int
) -> tuple[tuple[int, ScoreNote], ...]:
    """(index, note) of the notes the instrument plays: transposed, folded by octaves into
    range, unplayable keys dropped."""
    low, high = _range(role, instrument)
    folded = []
    for note in notes:
        pitch = note.pitch + transpose
        while pitch < low:
            pitch += 12
        while pitch > high:
            pitch -= 12
        folded.append(ScoreNote(note.onset, note.duration, pitch, note.velocity))
    playable = playable_keys(instrument, {n.pitch for n in folded})
    return tuple((i, n) for i, n in enumerate(folded) if n.pitch in playable)


def make_voice(
    role: str,
    lead: bool,
    notes: tuple[ScoreNote, ...],
    transpose: int,
    pan: int,
    task: SongTask,
    part: int,
) -> Voice:
    """A part's voice: an instrument that plays enough of its notes, its timbre, its
    velocity jitter, its performance, each from the part's own random stream."""
    stream = np.random.default_rng([task.seed, task.number, part, _INSTRUMENT_STREAM])
    best: Voice | None = None
    for _ in range(INSTRUMENT_TRIES):
        family, instrument = sources.pick(task.pool, role, stream)
        played = folded(role, instrument, notes, transpose)
        candidate = Voice(role, lead, instrument, notes, transpose, pan, family, played=played)
        if best is None or _played_share(candidate) > _played_share(best):
            best = candidate
        if _played_share(best) >= MIN_PLAYED_SHARE:
            break
    assert best is not None
    best.variation = timbre.draw(
        task.timbre, np.random.default_rng([task.seed, task.number, part, _TIMBRE_STREAM])
    )
    velocities = np.random.default_rng([task.seed, task.number, part, _VELOCITY_STREAM])
    best.jitter = tuple(
        int(v) for v in velocities.integers(-VELOCITY_JITTER, VELOCITY_JITTER + 1, len(notes))
    )
    playing = np.random.default_rng([task.seed, task.number, part, _PERFORMANCE_STREAM])
    best.playing = performance.draw(task.performance, playing, role, notes)
    return best


def _played_share(voice: Voice) -> float:
    return len(voice.played) / max(len(voice.notes), 1)


def arrange(score: Score, task: SongTask, rng: np.random.Generator) -> list[Voice]:
    """Give every part of the score an instrument, leading parts first (see module doc)."""
    if task.label is not None:
        labels = [task.label]
    else:
        counts, weights = zip(*TEST_LABEL_COUNTS, strict=True)
        count = min(int(rng.choice(counts, p=weights)), len(score.parts), len(task.label_classes))
        labels = [str(c) for c in rng.choice(task.label_classes, count, replace=False)]
    free = list(range(len(score.parts)))
    voices: dict[int, Voice] = {}
    for label in labels:
        low, high = INSTRUMENT_RANGES[label]
        fits = {i: octave_fit(score.parts[i], low, high) for i in free}
        centre = (low + high) / 2
        part = max(
            free,
            key=lambda i: (
                fits[i][0],
                -abs(fits[i][1]),
                -abs(np.median([n.pitch for n in score.parts[i]]) + fits[i][1] - centre),
                -i,
            ),
        )
        free.remove(part)
        pan = 64 + int(rng.integers(-16, 17))
        voices[part] = make_voice(label, True, score.parts[part], fits[part][1], pan, task, part)
    others = [c for c in IRMAS_CLASSES if c not in labels]
    for part in free:
        if part == len(score.parts) - 1 and rng.random() < 0.5:
            role = "bass"
        elif task.label is not None and rng.random() < 0.5:
            role = str(rng.choice(others))
        else:
            role = "pad"
        shift = octave_fit(score.parts[part], *INSTRUMENT_RANGES[role])[1]
        pan = 64 + int(rng.integers(-40, 41))
        voices[part] = make_voice(role, False, score.parts[part], shift, pan, task, part)
    return [voices[i] for i in sorted(voices)]


def accompany(
    score: Score, task: SongTask, voices: Sequence[Voice], spq: float
) -> list[tuple[Voice, dict[str, object]]]:
    """Comping parts from the score's harmony (performance option 'comping'): a chord part
    and, where no part plays bass, a bass line; each with what songs.json adds to its
    record. Unlabelled: test songs comp with pads only (accompaniment.comping_role). Drawn
    from a stream of their own after the tempo (strums are spread in seconds), so the
    rest of the song is drawn as without them."""
    rng = np.random.default_rng([task.seed, task.number, _COMPING_STREAM])
    chords = harmony(score)
    role = comping_role(task.label, rng)
    pattern = comping_pattern(role, rng)
    parts: list[tuple[str, tuple[ScoreNote, ...], dict[str, object]]] = [
        (role, comp(chords, pattern, spq, rng), {"comping": pattern})
    ]
    if not any(v.role == "bass" for v in voices):
        line = BASS_LINES[int(rng.integers(len(BASS_LINES)))]
        parts.append(("bass", bass_line(chords, line), {"bass_line": line}))
    added = []
    for index, (part_role, notes, how) in enumerate(parts, start=len(score.parts)):
        pan = 64 + int(rng.integers(-40, 41))
        added.append((make_voice(part_role, False, notes, 0, pan, task, index), how))
    return added


def _activity(notes: Sequence[ScoreNote], start: float, stop: float, spq: float) -> float:
    """Share of [start, stop) seconds covered by at least one note (tempo `spq` s/quarter)."""
    grid = np.zeros(max(int((stop - start) * 100), 1), dtype=bool)  # 10 ms cells
    for note in notes:
        first = int((note.onset * spq - start) * 100)
        last = int(((note.onset + note.duration) * spq - start) * 100)
        if last > 0 and first < grid.size:
            grid[max(first, 0) : last] = True
    return float(grid.mean())


def excerpt_starts(
    voices: Sequence[Voice], spq: float, length: float, seconds: float, rng: np.random.Generator
) -> Iterator[float]:
    """Start times (s) of excerpts of `seconds` in which every leading part plays at
    least half of the time, in a seeded random order (one draw, however many are used)."""
    leads = [[n for _, n in voice.played] for voice in voices if voice.lead]
    starts = rng.permutation(np.arange(0.0, length - seconds + 1e-9, GRID))
    for start in starts:
        if all(_activity(n, start, start + seconds, spq) >= MIN_LEAD_ACTIVITY for n in leads):
            yield float(start)


@dataclass(frozen=True)
class PlayedNote:
    """A note as sent to a synthesiser: seconds from the start of the render."""

    onset: float
    duration: float
    key: int
    velocity: int


def part_notes(voice: Voice, start: float, stop: float, spq: float) -> list[PlayedNote]:
    """The voice's notes whose score onset is in [start, stop) seconds, as performed,
    times relative to start (a note played early stays in, at 0 at the earliest)."""
    chosen = [(i, n) for i, n in voice.played if start <= n.onset * spq < stop]
    onsets, durations = performance.timed(
        voice.playing,
        [i for i, _ in chosen],
        [n.onset * spq - start for _, n in chosen],
        [n.duration * spq for _, n in chosen],
        [n.pitch for _, n in chosen],
    )
    notes = []
    for (index, note), onset, duration in zip(chosen, onsets, durations, strict=True):
        velocity = int(np.clip(note.velocity + voice.jitter[index], 1, 127))
        velocity = performance.velocity(voice.playing, note.onset, velocity)
        notes.append(
            PlayedNote(onset, duration, note.pitch, timbre.velocity(voice.variation, velocity))
        )
    return notes


def seconds_per_quarter(score: Score, rng: np.random.Generator) -> float:
    """A drawn tempo, in s per quarter note: the score's median note lasts NOTE_SECONDS_RANGE."""
    durations = sorted(n.duration for part in score.parts for n in part)  # quarters
    return float(rng.uniform(*NOTE_SECONDS_RANGE)) / durations[len(durations) // 2]


def render_drums(kit: Preset, events: Sequence[Event], n_samples: int) -> np.ndarray:
    """(n_samples, 2) float32: the drum events on `kit`, from a synth of its own."""
    with contextlib.closing(Synth(IRMAS_RATE)) as synth:
        return synth.render({GM_PERCUSSION_CHANNEL: kit}, events, n_samples)


def render_part(voice: Voice, notes: Sequence[PlayedNote], n_samples: int) -> np.ndarray:
    """(n_samples, 2) float32: the part played by its instrument, panned, with its timbre
    and pedal."""
    instrument, variation = voice.instrument, voice.variation
    if isinstance(instrument, Preset):
        events = [Event(0, "cc", 0, PAN_CC, voice.pan)]
        events += [
            Event(round(time * IRMAS_RATE), "cc", 0, performance.SUSTAIN_CC, value)
            for time, value in performance.pedal(voice.playing, notes)
        ]
        for note in notes:
            on = round(note.onset * IRMAS_RATE)
            off = round((note.onset + note.duration) * IRMAS_RATE)
            events += [Event(on, "on", 0, note.key, note.velocity), Event(off, "off", 0, note.key)]
        with contextlib.closing(Synth(IRMAS_RATE)) as synth:
            stem = synth.render(
                {0: instrument}, events, n_samples, {0: timbre.generators(variation)}
            )
    else:
        detune = timbre.tune_factor(variation)
        played = [
            CsoundNote(n.onset, held, n.key, n.velocity, _tuning(instrument, n.key) * detune)
            for n, held in zip(notes, performance.held(voice.playing, notes), strict=True)
        ]
        overrides = timbre.model_overrides(variation, dict(instrument.params))
        mono = models.render_notes(instrument, played, n_samples, IRMAS_RATE, overrides)
        stem = _panned(mono, voice.pan)
    return timbre.process(stem, IRMAS_RATE, variation)


def _tuning(instrument: Instrument, key: int) -> float:
    tuning = _PLAYABLE[instrument, key]
    assert tuning is not None  # only playable keys are played
    return tuning


def _panned(mono: np.ndarray, pan: int) -> np.ndarray:
    """Constant-power pan of a mono part by its MIDI CC10 value (64: centre)."""
    angle = (np.clip(pan, 0, 127) / 127) * np.pi / 2
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)], axis=1).astype(np.float32)


def drum_events(
    start: float, stop: float, spq: float, hits: Sequence[Hit] | None = None
) -> list[Event]:
    """The drum hits in [start, stop) s, times from `start`: a song's groove (`hits`,
    instrec.synth.accompaniment) or a plain backbeat (kick, snare, eighth hi-hats) from
    the score's first beat."""
    if hits is None:
        bars = range(int(start / (2 * spq)), int(stop / (2 * spq)) + 1)
        hits = [Hit(2 * bar + q, k, velocity) for bar in bars for q, k, velocity in DRUM_PATTERN]
    events = []
    for hit in hits:
        onset = hit.onset * spq
        if start <= onset < stop:
            on = round((onset - start) * IRMAS_RATE)
            events += [
                Event(on, "on", GM_PERCUSSION_CHANNEL, hit.key, hit.velocity),
                Event(on + IRMAS_RATE // 10, "off", GM_PERCUSSION_CHANNEL, hit.key),
            ]
    return events


def render_excerpt(
    voices: Sequence[Voice],
    drums: Drums | None,
    start: float,
    seconds: float,
    spq: float,
    background_db: float,
    rng: np.random.Generator,
    studio: production.Production = production.OFF,
    excerpt: int = 0,
) -> tuple[np.ndarray, list[float | None]]:
    """(samples, 2) float32 mix of one excerpt, parts rendered apart, produced (`studio`,
    the song's; `excerpt` picks its codec) and levelled, and each part's loudness in it
    (LUFS, None if silent; drums last)."""
    begin = max(start - PRE_ROLL, 0.0)
    n_total = round((start + seconds - begin) * IRMAS_RATE)
    skip = round((start - begin) * IRMAS_RATE)
    stems: list[tuple[np.ndarray, float]] = []
    for voice in voices:
        notes = part_notes(voice, begin, start + seconds, spq)
        target = LEAD_LUFS if voice.lead else LEAD_LUFS - background_db + rng.uniform(-2, 2)
        stems.append((render_part(voice, notes, n_total), target))
    if drums is not None:
        hits = None if drums.part is None else drums.part.hits
        events = drum_events(begin, start + seconds, spq, hits)
        stem = render_drums(drums.kit, events, n_total)
        stems.append((stem, LEAD_LUFS - background_db))
    mix = np.zeros((n_total - skip, 2), dtype=np.float64)  # (samples, channels)
    levels: list[float | None] = []
    for part, (stem, target) in enumerate(stems):
        # produced with the pre-roll (a compressor's state, the room's tails), then cut,
        # then levelled: the predominance rule holds on what is heard
        produced = production.process_part(stem, IRMAS_RATE, studio, part)[skip:]
        levelled, audible = _levelled(produced, target)
        mix += levelled
        # a gain moves the gated loudness by itself: blocks it lifts over or drops under
        # the absolute gate lie far below the relative gate either way
        levels.append(round(target, 2) if audible else None)
    mix = _levelled(production.process_mix(mix, IRMAS_RATE, studio, excerpt), MIX_LUFS)[0]
    peak = np.abs(mix).max()
    return (mix * min(1.0, MAX_PEAK / peak) if peak > 0 else mix).astype(np.float32), levels


def leads_audible(voices: Sequence[Voice], levels: Sequence[float | None]) -> bool:
    """Whether every leading part sounds within LEAD_MARGIN_DB of the loudest part."""
    loudest = max((level for level in levels if level is not None), default=None)
    return loudest is not None and all(
        level is not None and level >= loudest - LEAD_MARGIN_DB
        for voice, level in zip(voices, levels, strict=False)
        if voice.lead
    )


def _levelled(stereo: np.ndarray, target_lufs: float) -> tuple[np.ndarray, bool]:
    """The audio brought to `target_lufs`, and whether it sounds at all (silence, every
    block under the absolute gate, is left as it is)."""
    loudness = integrated_loudness(stereo.mean(axis=1), IRMAS_RATE)
    if not np.isfinite(loudness):
        return stereo.astype(np.float64), False
    return stereo.astype(np.float64) * 10 ** ((target_lufs - loudness) / 20), True


def _part_record(voice: Voice) -> dict[str, object]:
    instrument = voice.instrument
    return {
        "role": voice.role,
        "lead": voice.lead,
        "source": "soundfont" if isinstance(instrument, Preset) else "csound",
        "family": voice.family,
        "instrument": instrument.label,
        "program": instrument.program if isinstance(instrument, Preset) else None,
        "transpose": voice.transpose,
        "pan": voice.pan,
        "timbre": voice.variation.record(),
        "performance": voice.playing.record(),
        "played_share": round(_played_share(voice), 3),
    }


def render_song(task: SongTask) -> SongResult:
    """Render every excerpt of one song (skipping files already there). A song whose
    files all exist is not rendered again if an earlier songs.json describes it."""
    result = SongResult(task.number, task.work, task.split)
    todo = [p for p in task.paths if not _complete(p, task.split)]
    result.existing = len(task.paths) - len(todo)
    if not todo and task.recorded:
        result.written = [p.name for p in task.paths]
        return result
    rng = np.random.default_rng([task.seed, task.number])
    try:
        score = read_score(task.work)
        voices = arrange(score, task, rng)
    except InstrecError as error:
        result.error = str(error)
        return result
    spq = seconds_per_quarter(score, rng)
    added = accompany(score, task, voices, spq) if "comping" in task.performance else []
    drums = None
    if task.drums:
        kits = drum_kits(task.pool.soundfonts)
        if not kits:
            result.error = f"{task.work}: no soundfont of this render has a drum kit"
            return result
        grooves = np.random.default_rng([task.seed, task.number, _GROOVE_STREAM])
        groove = drum_part(score.quarters, grooves) if "grooves" in task.performance else None
        drums = Drums(kits[int(rng.integers(len(kits)))], groove)
    result.labels = [v.role for v in voices if v.lead]
    result.parts = [_part_record(v) for v in voices]
    result.parts += [{**_part_record(v), **how} for v, how in added]
    voices += [v for v, _ in added]
    if drums is not None and drums.part is not None:  # recorded last, as its level
        kit = drums.kit
        result.parts.append(
            {"role": "drums", "lead": False, "source": "soundfont", "family": "",
             "instrument": kit.label, "program": kit.program, **drums.part.record()}
        )  # fmt: skip
    if task.split == "train":
        lengths = [TRAIN_SECONDS] * task.excerpts
    else:
        lengths = [float(rng.uniform(*task.test_seconds)) for _ in task.paths]
    length = score.quarters * spq
    shortest = lengths[0] if task.split == "train" else task.test_seconds[0]
    studio = production.draw(  # a stream of its own: existing draws stay as they were
        task.production,
        np.random.default_rng([task.seed, task.number, _PRODUCTION_STREAM]),
        parts=len(voices) + 1,  # drums last, drawn with or without a kit
        excerpts=len(task.paths),
    )
    for excerpt, (path, seconds) in enumerate(zip(task.paths, lengths, strict=True)):
        found = _render_excerpt_somewhere(
            voices, drums, spq, length, seconds, shortest, task, rng, studio, excerpt
        )
        if found is None:
            continue
        audio, record = found
        result.excerpts.append({"file": path.name, **record})
        if path.exists():  # rendered by an earlier run: keep it, rng stays in step
            continue
        if task.split != "train":
            write_text_atomic(path.with_suffix(".txt"), "".join(f"{c}\t\n" for c in result.labels))
        write_wav(path, audio, IRMAS_RATE)
    result.written = [p.name for p in task.paths if p.exists()]
    if len(result.written) < len(task.paths):
        result.error = (
            f"{task.work}: {len(task.paths) - len(result.written)} excerpt(s) found no place"
        )
    return result


def _render_excerpt_somewhere(
    voices: Sequence[Voice],
    drums: Drums | None,
    spq: float,
    length: float,
    seconds: float,
    shortest: float,
    task: SongTask,
    rng: np.random.Generator,
    studio: production.Production,
    excerpt: int,
) -> tuple[np.ndarray, dict[str, object]] | None:
    """An excerpt whose leading parts play and are audible: up to EXCERPT_TRIES starts,
    then a shorter excerpt (down to `shortest`); None if the score has no such place.
    `studio`: the song's production; `excerpt`: the excerpt's index (its codec)."""
    produced = studio.record(excerpt)
    while True:
        starts = excerpt_starts(voices, spq, length, seconds, rng)
        for _, start in zip(range(EXCERPT_TRIES), starts, strict=False):
            audio, levels = render_excerpt(
                voices, drums, start, seconds, spq, task.background_db, rng, studio, excerpt
            )
            if leads_audible(voices, levels):
                record = {"start": round(start, 3), "seconds": seconds, "levels": levels}
                return audio, {**record, **({"production": produced} if produced else {})}
        if seconds <= shortest:
            return None
        seconds = max(shortest, seconds * 0.75)  # a short score: try a shorter excerpt


def _complete(path: Path, split: str) -> bool:
    return path.exists() and (split == "train" or path.with_suffix(".txt").exists())


def train_name(number: int, label: str, drums: bool, excerpt: int) -> str:
    """IRMAS training name, e.g. '012__[cel][nod][cla]0012__1' (NNN: song number mod 1000)."""
    genre = GENRE_WITH_DRUMS if drums else GENRE_WITHOUT_DRUMS
    tag = "dru" if drums else "nod"
    return f"{number % 1000:03d}__[{label}][{tag}][{genre}]{number:04d}__{excerpt}"


def test_name(number: int, work: str, excerpt: int) -> str:
    """IRMAS testing name, e.g. '0101 bach-bwv66.6-1': song number, score, excerpt."""
    stem = re.sub(r"[^A-Za-z0-9.]+", "-", work.rsplit(".", 1)[0]).strip("-")
    return f"{number:04d} {stem}-{excerpt}"


@dataclass(frozen=True)
class SongPlan:
    """How many songs of each split, and what every song shares."""

    train_songs: int
    test_songs: int
    cross_source_songs: int
    train_excerpts: int
    test_excerpts: int
    drums: float
    test_seconds: tuple[float, float]
    background_db: float
    seed: int
    timbre: tuple[str, ...] = ()
    performance: tuple[str, ...] = ()
    production: tuple[str, ...] = ()


def plan_songs(
    out: Path,
    works: Sequence[str],
    plan: SongPlan,
    pools: dict[str, Pool],
    label_classes: tuple[str, ...] = IRMAS_CLASSES,
) -> list[SongTask]:
    """Which score each song uses, its split, class and file names (no score is read).

    Scores are drawn without replacement in a seeded order: train and test songs from its
    front, cross-source songs from its back, so no score is in two splits, even across
    renders of the same seed. Train classes are dealt in turn over the songs. `pools`
    maps TRAIN and HELD_OUT to what each plays; `label_classes` are the classes
    cross-source songs may be labelled with (those with held-out families)."""
    front = plan.train_songs + plan.test_songs
    if front + plan.cross_source_songs > len(works):
        raise InstrecError(
            f"{front + plan.cross_source_songs} songs asked for but the chosen composers have "
            f"only {len(works)} scores"
        )
    if front >= FIRST_CROSS_SOURCE_SONG:
        raise InstrecError(
            f"at most {FIRST_CROSS_SOURCE_SONG - 1} train and test songs (cross-source songs "
            f"are numbered from {FIRST_CROSS_SOURCE_SONG})"
        )
    rng = np.random.default_rng([plan.seed, 3])
    order = rng.permutation(len(works))
    with_drums = rng.random(front) < plan.drums
    cross_drums = np.random.default_rng([plan.seed, 4]).random(plan.cross_source_songs) < plan.drums
    songs: list[tuple[int, str, str, bool]] = [
        (i + 1, works[order[i]], "train" if i < plan.train_songs else "test", bool(with_drums[i]))
        for i in range(front)
    ]
    songs += [
        (FIRST_CROSS_SOURCE_SONG + i, works[order[-1 - i]], "cross-source", bool(cross_drums[i]))
        for i in range(plan.cross_source_songs)
    ]
    tasks = []
    for index, (number, work, split, drums) in enumerate(songs):
        folder = out / SPLIT_FOLDERS[split]
        label: str | None = None
        if split == "train":
            label = IRMAS_CLASSES[index % len(IRMAS_CLASSES)]
            folder = folder / label
            names = [train_name(number, label, drums, k) for k in range(1, plan.train_excerpts + 1)]
        else:
            names = [test_name(number, work, k) for k in range(1, plan.test_excerpts + 1)]
        tasks.append(
            SongTask(
                number,
                work,
                split,
                label,
                drums,
                plan.train_excerpts if split == "train" else plan.test_excerpts,
                tuple(folder / f"{name}.wav" for name in names),
                pools[HELD_OUT if split == "cross-source" else TRAIN],
                plan.test_seconds,
                plan.background_db,
                plan.seed,
                plan.timbre,
                plan.performance,
                plan.production,
                label_classes if split == "cross-source" else IRMAS_CLASSES,
            )
        )
    return tasks


def render_ensembles(
    out_dir: str | Path,
    *,
    train_songs: int = 33,
    test_songs: int = 15,
    train_excerpts: int = 5,
    test_excerpts: int = 2,
    test_seconds: tuple[float, float] = DEFAULT_TEST_SECONDS,
    composers: Sequence[str] = DEFAULT_COMPOSERS,
    soundfonts: Sequence[str | Path] | None = None,
    sources_used: Sequence[str] = sources.DEFAULT_SOURCES,
    model_names: Sequence[str] | None = None,
    model_voices: int = sources.DEFAULT_MODEL_VOICES,
    timbre_options: Sequence[str] = (),
    performance_options: Sequence[str] = (),
    production_options: Sequence[str] = (),
    holdout_share: float = 0.0,
    family_seed: int = 0,
    holdout_from: str | Path | None = None,
    cross_source_songs: int = 0,
    background_db: float = 10.0,
    drums: float = 0.3,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Render IRMAS-format ensembles into `out_dir` and return it (resumes a partial run).

    train_songs/test_songs/cross_source_songs: scores per split (disjoint);
    train_excerpts: 3 s excerpts per train song; test_excerpts: excerpts of
    `test_seconds` (min, max) s per test and cross-source song; composers: music21 corpus
    composers to draw scores from; sources_used: source kinds (instrec.synth.sources);
    model_names: csound models (None: all that csound plays here); model_voices: voices
    per model; timbre_options: per-part variation (instrec.synth.timbre);
    performance_options: how parts are played (instrec.synth.performance);
    production_options: what is done to parts and mix (instrec.synth.production); holdout_share:
    share of each class's families held out of training (0: none), chosen with
    `family_seed`, or the split of an earlier render's families.json (`holdout_from`);
    background_db: how much quieter (dB) unlabelled parts are than leading ones; drums:
    share of songs with a drum kit (named [dru], else [nod]).
    """
    test_seconds = (float(test_seconds[0]), float(test_seconds[1]))
    kinds = sources.parse_sources(sources_used)
    variation = timbre.parse_options(timbre_options)
    playing = performance.parse_options(performance_options)
    studio = production.parse_options(production_options)
    plan = SongPlan(
        train_songs, test_songs, cross_source_songs, train_excerpts, test_excerpts, drums,
        test_seconds, background_db, seed, variation, playing, studio,
    )  # fmt: skip
    _check_options(plan, workers, model_voices, holdout_share, holdout_from)
    fonts = sources.source_soundfonts(kinds, soundfonts)
    chosen_models = sources.source_models(kinds, model_names)
    catalogue = sources.installed_catalogue(fonts)
    if holdout_from is not None:
        split = sources.read_holdout(Path(holdout_from))
    else:
        split = sources.holdout(catalogue, holdout_share, family_seed)
    held_out = frozenset(f for f, s in split.items() if s == HELD_OUT)
    pools = {
        use: Pool(tuple(fonts), tuple(chosen_models), model_voices, catalogue, held_out, use)
        for use in (TRAIN, HELD_OUT)
    }
    label_classes = _check_sources(plan, pools)
    out = Path(out_dir)
    options = {
        "train_songs": train_songs,
        "test_songs": test_songs,
        "cross_source_songs": cross_source_songs,
        "train_excerpts": train_excerpts,
        "test_excerpts": test_excerpts,
        "test_seconds": list(test_seconds),
        "composers": sorted(set(composers)),
        "sources": list(kinds),
        "soundfonts": fonts,
        "models": chosen_models,
        "model_voices": model_voices,
        "timbre": list(variation),
        "performance": list(playing),
        "production": list(studio),
        "holdout_share": holdout_share,
        "family_seed": family_seed,
        "holdout_from": None if holdout_from is None else str(Path(holdout_from).resolve()),
        "background_db": background_db,
        "drums": drums,
        "seed": seed,
    }
    works = multipart_works(composers)
    tasks = plan_songs(out, works, plan, pools, label_classes)
    manifest = claim_folder(out, "render-ensembles.json", options)
    write_json(out / "families.json", sources.families_record(catalogue, split))
    earlier = _earlier_songs(out / "songs.json")
    tasks = [replace(t, recorded=bool(earlier.get(_song_key(t.number)))) for t in tasks]
    for task in tasks:
        task.paths[0].parent.mkdir(parents=True, exist_ok=True)
    results = sorted(
        run_tasks(
            render_song, tasks, workers=workers, desc="ensembles", unit="song", progress=progress
        ),
        key=lambda r: r.number,
    )
    for result in results:
        if result.error:
            print(f"skipped: {result.error}")
    records = {_song_key(r.number): vars(r) for r in results}
    for key, record in records.items():
        if not record["parts"] and earlier.get(key):  # complete, not rendered again
            records[key] = {**earlier[key], "existing": record["existing"]}
    write_json(out / "songs.json", records)
    train = [r for r in results if r.split == "train"]
    summary = {
        "train_excerpts": {
            c: sum(len(r.written) for r in train if r.labels == [c]) for c in IRMAS_CLASSES
        },
        "test_excerpts": sum(len(r.written) for r in results if r.split == "test"),
        "cross_source_excerpts": sum(len(r.written) for r in results if r.split == "cross-source"),
        "cross_source_classes": list(label_classes) if cross_source_songs else [],
        "songs": {s: sum(r.split == s for r in results) for s in SPLIT_FOLDERS},
        "families_held_out": len(held_out),
        "existing": sum(r.existing for r in results),
        "songs_with_problems": sum(r.error is not None for r in results),
    }
    write_json(manifest, {"options": options, "summary": summary})
    return out


def _song_key(number: int) -> str:
    return f"{number:04d}"


def _earlier_songs(path: Path) -> dict[str, dict[str, object]]:
    """Songs an earlier run of this folder recorded with their parts (none if unreadable:
    those songs are then rendered again)."""
    try:
        songs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(songs, dict):
        return {}
    return {k: v for k, v in songs.items() if isinstance(v, dict) and v.get("parts")}


def _check_sources(plan: SongPlan, pools: dict[str, Pool]) -> tuple[str, ...]:
    """Every class must have a training source; returns the classes cross-source songs
    can be labelled with (those with a held-out source), refusing none when asked for."""
    if plan.train_songs + plan.test_songs:
        missing = [c for c in IRMAS_CLASSES if not sources.candidates(pools[TRAIN], c)]
        if missing:
            raise InstrecError(
                f"no training source plays {', '.join(missing)}: add sources or hold out less"
            )
    held = tuple(c for c in IRMAS_CLASSES if sources.candidates(pools[HELD_OUT], c))
    if plan.cross_source_songs and not held:
        raise InstrecError(
            "cross-source songs need held-out families among the sources used "
            "(holdout_share > 0, or more sources)"
        )
    return held


def _check_options(
    plan: SongPlan,
    workers: int,
    model_voices: int,
    holdout_share: float,
    holdout_from: str | Path | None,
) -> None:
    songs = (plan.train_songs, plan.test_songs, plan.cross_source_songs)
    if min(songs) < 0 or sum(songs) < 1:
        raise InstrecError(
            f"songs must be >= 0 and at least one in all (got train {plan.train_songs}, "
            f"test {plan.test_songs}, cross-source {plan.cross_source_songs})"
        )
    if plan.train_excerpts < 1 or plan.test_excerpts < 1:
        raise InstrecError(
            f"excerpts per song must be at least 1 "
            f"(got train {plan.train_excerpts}, test {plan.test_excerpts})"
        )
    if not 1.0 <= plan.test_seconds[0] <= plan.test_seconds[1]:
        raise InstrecError(
            f"test_seconds must be (min, max) with 1 <= min <= max (got {plan.test_seconds})"
        )
    if plan.background_db < 0:
        raise InstrecError(f"background_db must be >= 0 dB (got {plan.background_db})")
    if not 0.0 <= plan.drums <= 1.0:
        raise InstrecError(f"drums is a share of songs in 0-1 (got {plan.drums})")
    if workers < 1:
        raise InstrecError(f"workers must be at least 1 (got {workers})")
    if model_voices < 1:
        raise InstrecError(f"model_voices must be at least 1 (got {model_voices})")
    if not 0.0 <= holdout_share < 1.0:
        raise InstrecError(f"holdout_share is a share of families in 0-1 (got {holdout_share})")
    if holdout_from is not None and holdout_share:
        raise InstrecError("give holdout_share or holdout_from, not both")
