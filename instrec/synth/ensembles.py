"""Render an IRMAS-format dataset of ensembles from music21 scores and soundfont presets.

Layout, as the official release (44.1 kHz stereo 16-bit wav):
  <out>/IRMAS-TrainingData/<cls>/<NNN>__[<cls>][dru|nod][<genre>]<SSSS>__<k>.wav  (3 s, one label)
  <out>/IRMAS-TestingData-Part1/<SSSS> <work>-<k>.wav + .txt  (5-20 s, one label per line)
plus <out>/songs.json (which score, parts, programs and presets made each song) and
<out>/render-ensembles.json (options and counts). Train and test use disjoint scores.

Predominance rule: every labelled (leading) part is mixed at the same loudness
(LEAD_LUFS); every other part `background_db` quieter (+-2 dB), drums likewise. A class
leads the score part that fits its instrument's range best: most notes inside after an
octave transposition, then the smallest transposition, then the median pitch nearest the
range's middle, then the higher part. Every part is folded by octaves into its
instrument's range and the preset's playable keys.
Train songs have one label each (classes dealt in turn, so classes are balanced); their
other parts play other IRMAS instruments, bass or pads, as in real IRMAS songs whose
accompaniment is unannotated. Test songs have 1-3 labels and only unlabelled
accompaniment (bass, pads, drums) besides, so every IRMAS instrument heard is labelled.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from instrec.atomic import write_text_atomic
from instrec.audio import integrated_loudness
from instrec.errors import InstrecError
from instrec.labels import (
    ACCOMPANIMENT_GM_PROGRAMS,
    GM_PERCUSSION_BANK,
    GM_PERCUSSION_CHANNEL,
    IRMAS_CLASSES,
    IRMAS_GM_PROGRAMS,
)
from instrec.synth.fluidsynth import PAN_CC, Event, Synth
from instrec.synth.outputs import claim_folder, run_tasks, write_json, write_wav
from instrec.synth.scores import DEFAULT_COMPOSERS, Score, ScoreNote, multipart_works, read_score
from instrec.synth.soundfonts import Preset, read_presets, resolve_soundfonts

IRMAS_RATE = 44_100  # Hz, rendered directly (no aliasing at this rate)
TRAIN_SECONDS = 3.0
DEFAULT_TEST_SECONDS = (5.0, 20.0)
PRE_ROLL = 1.0  # s rendered before an excerpt so notes already sounding are heard
GRID = 0.25  # s between candidate excerpt starts
MIN_LEAD_ACTIVITY = 0.5  # a leading part must sound over half of its excerpt
LEAD_LUFS = -23.0  # each leading part's loudness before the mix is normalised
MIX_LUFS = -16.0  # loudness of a finished excerpt (peaks kept under MAX_PEAK)
MAX_PEAK = 0.98
PLAYABLE_PEAK = 10 ** (-50 / 20)
NOTE_SECONDS_RANGE = (0.35, 0.7)  # tempo: the score's median note lasts this long (s)
TEST_LABEL_COUNTS = ((1, 0.5), (2, 0.35), (3, 0.15))  # labels per test song, probability
GENRE_WITH_DRUMS, GENRE_WITHOUT_DRUMS = "pop_roc", "cla"  # IRMAS genre tag in file names
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


@dataclass(frozen=True)
class SongTask:
    number: int  # the 4-digit song number in file names
    work: str  # music21 corpus path
    split: str  # "train" | "test"
    label: str | None  # train: the song's class; test: drawn when the score is read
    drums: bool
    excerpts: int
    paths: tuple[Path, ...]  # wav files this song writes (the test .txt sit beside)
    soundfonts: tuple[str, ...]
    test_seconds: tuple[float, float]
    background_db: float
    seed: int


@dataclass
class Voice:
    """A score part as rendered: who plays it, how loud, where."""

    role: str  # an IRMAS class code, "bass", "pad" or "drums"
    lead: bool
    preset: Preset
    notes: tuple[ScoreNote, ...]
    transpose: int = 0  # semitones applied before folding into range
    pan: int = 64  # MIDI CC10


@dataclass
class SongResult:
    number: int
    work: str
    split: str
    labels: list[str] = field(default_factory=list)
    parts: list[dict[str, object]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    existing: int = 0
    error: str | None = None


_SYNTH: Synth | None = None
_PLAYABLE: dict[tuple[Preset, int], bool] = {}  # (preset, key) -> sounds


def _synth() -> Synth:
    global _SYNTH
    if _SYNTH is None:
        _SYNTH = Synth(IRMAS_RATE)
    return _SYNTH


def _playable(preset: Preset, keys: set[int]) -> set[int]:
    """The keys among `keys` that the preset sounds (probed once per process)."""
    unknown = sorted(k for k in keys if (preset, k) not in _PLAYABLE)
    sounding = set(_synth().playable_keys(preset, unknown, 0.3, PLAYABLE_PEAK))
    _PLAYABLE.update({(preset, k): k in sounding for k in unknown})
    return {k for k in keys if _PLAYABLE[preset, k]}


@functools.cache
def _presets_by_program(soundfonts: tuple[str, ...]) -> dict[tuple[int, int], list[Preset]]:
    table: dict[tuple[int, int], list[Preset]] = defaultdict(list)
    for soundfont in soundfonts:
        for preset in read_presets(soundfont):
            table[preset.bank, preset.program].append(preset)
    return table


def _pick_preset(
    soundfonts: Sequence[str], bank: int, program: int, rng: np.random.Generator
) -> Preset:
    """A random soundfont's preset for (bank, program)."""
    found = _presets_by_program(tuple(soundfonts)).get((bank, program), [])
    if not found:
        raise InstrecError(f"no soundfont has bank {bank} program {program}")
    return found[int(rng.integers(len(found)))]


def _octave_fit(notes: Sequence[ScoreNote], low: int, high: int) -> tuple[float, int]:
    """(share of notes inside [low, high], transposition in semitones) of the best octave
    shift; shifts equally good prefer the smaller one."""
    pitches = np.array([n.pitch for n in notes])
    best = max(
        (float(np.mean((pitches + s >= low) & (pitches + s <= high))), -abs(s), s)
        for s in range(-48, 49, 12)
    )
    return best[0], best[2]


def _folded(voice: Voice) -> list[ScoreNote]:
    """The voice's notes transposed, folded by octaves into its range, unplayable dropped."""
    low, high = INSTRUMENT_RANGES[voice.role]
    folded = []
    for note in voice.notes:
        pitch = note.pitch + voice.transpose
        while pitch < low:
            pitch += 12
        while pitch > high:
            pitch -= 12
        folded.append(ScoreNote(note.onset, note.duration, pitch, note.velocity))
    playable = _playable(voice.preset, {n.pitch for n in folded})
    return [n for n in folded if n.pitch in playable]


def arrange(score: Score, task: SongTask, rng: np.random.Generator) -> list[Voice]:
    """Give every part of the score an instrument, leading parts first (see module doc)."""
    if task.label is not None:
        labels = [task.label]
    else:
        counts, weights = zip(*TEST_LABEL_COUNTS, strict=True)
        count = min(int(rng.choice(counts, p=weights)), len(score.parts))
        labels = [str(c) for c in rng.choice(IRMAS_CLASSES, count, replace=False)]
    free = list(range(len(score.parts)))
    voices: dict[int, Voice] = {}
    for label in labels:
        low, high = INSTRUMENT_RANGES[label]
        fits = {i: _octave_fit(score.parts[i], low, high) for i in free}
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
        program = int(rng.choice(IRMAS_GM_PROGRAMS[label]))
        preset = _pick_preset(task.soundfonts, 0, program, rng)
        pan = 64 + int(rng.integers(-16, 17))
        voices[part] = Voice(label, True, preset, score.parts[part], fits[part][1], pan)
    others = [c for c in IRMAS_CLASSES if c not in labels]
    for part in free:
        if part == len(score.parts) - 1 and rng.random() < 0.5:
            role = "bass"
        elif task.label is not None and rng.random() < 0.5:
            role = str(rng.choice(others))
        else:
            role = "pad"
        programs = IRMAS_GM_PROGRAMS.get(role) or ACCOMPANIMENT_GM_PROGRAMS[role]
        preset = _pick_preset(task.soundfonts, 0, int(rng.choice(programs)), rng)
        shift = _octave_fit(score.parts[part], *INSTRUMENT_RANGES[role])[1]
        pan = 64 + int(rng.integers(-40, 41))
        voices[part] = Voice(role, False, preset, score.parts[part], shift, pan)
    return [voices[i] for i in sorted(voices)]


def _activity(notes: Sequence[ScoreNote], start: float, stop: float, spq: float) -> float:
    """Share of [start, stop) seconds covered by at least one note (tempo `spq` s/quarter)."""
    grid = np.zeros(max(int((stop - start) * 100), 1), dtype=bool)  # 10 ms cells
    for note in notes:
        first = int((note.onset * spq - start) * 100)
        last = int(((note.onset + note.duration) * spq - start) * 100)
        if last > 0 and first < grid.size:
            grid[max(first, 0) : last] = True
    return float(grid.mean())


def choose_excerpts(
    voices: Sequence[Voice],
    spq: float,
    length: float,
    seconds: float,
    count: int,
    rng: np.random.Generator,
) -> list[float]:
    """Start times (s) of up to `count` non-overlapping excerpts of `seconds` in which
    every leading part sounds at least half of the time, in time order."""
    leads = [voice.notes for voice in voices if voice.lead]
    starts = np.arange(0.0, length - seconds + 1e-9, GRID)
    chosen: list[float] = []
    for start in rng.permutation(starts):
        if len(chosen) == count:
            break
        if any(abs(start - c) < seconds for c in chosen):
            continue
        if all(_activity(n, start, start + seconds, spq) >= MIN_LEAD_ACTIVITY for n in leads):
            chosen.append(float(start))
    return sorted(chosen)


def _events(
    voice: Voice, start: float, stop: float, spq: float, rng: np.random.Generator, channel: int = 0
) -> list[Event]:
    """Note events of a voice in [start, stop) seconds, sample times relative to start."""
    events = [Event(0, "cc", channel, PAN_CC, voice.pan)]
    for note in _folded(voice):
        onset = note.onset * spq
        if start <= onset < stop:
            velocity = int(np.clip(note.velocity + rng.integers(-8, 9), 1, 127))
            on = round((onset - start) * IRMAS_RATE)
            off = round((onset + note.duration * spq - start) * IRMAS_RATE)
            events += [
                Event(on, "on", channel, note.pitch, velocity),
                Event(off, "off", channel, note.pitch),
            ]
    return events


def _drum_events(start: float, stop: float, spq: float) -> list[Event]:
    """A plain backbeat (kick, snare, eighth hi-hats) from the score's first beat."""
    events = []
    for bar in range(int(start / (2 * spq)), int(stop / (2 * spq)) + 1):
        for quarter, key, velocity in DRUM_PATTERN:
            onset = (2 * bar + quarter) * spq
            if start <= onset < stop:
                on = round((onset - start) * IRMAS_RATE)
                events += [
                    Event(on, "on", GM_PERCUSSION_CHANNEL, key, velocity),
                    Event(on + IRMAS_RATE // 10, "off", GM_PERCUSSION_CHANNEL, key),
                ]
    return events


def render_excerpt(
    voices: Sequence[Voice],
    drums: Preset | None,
    start: float,
    seconds: float,
    spq: float,
    background_db: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """(samples, 2) float32 mix of one excerpt, parts rendered apart and levelled."""
    begin = max(start - PRE_ROLL, 0.0)
    n_total = round((start + seconds - begin) * IRMAS_RATE)
    skip = round((start - begin) * IRMAS_RATE)
    stems: list[tuple[np.ndarray, float]] = []
    for voice in voices:
        events = _events(voice, begin, start + seconds, spq, rng)
        target = LEAD_LUFS if voice.lead else LEAD_LUFS - background_db + rng.uniform(-2, 2)
        stems.append((_synth().render({0: voice.preset}, events, n_total)[skip:], target))
    if drums is not None:
        events = _drum_events(begin, start + seconds, spq)
        stem = _synth().render({GM_PERCUSSION_CHANNEL: drums}, events, n_total)[skip:]
        stems.append((stem, LEAD_LUFS - background_db))
    mix = np.zeros((n_total - skip, 2), dtype=np.float64)  # (samples, channels)
    for stem, target in stems:
        mix += _levelled(stem, target)
    mix = _levelled(mix, MIX_LUFS)
    peak = np.abs(mix).max()
    return (mix * min(1.0, MAX_PEAK / peak) if peak > 0 else mix).astype(np.float32)


def _levelled(stereo: np.ndarray, target_lufs: float) -> np.ndarray:
    loudness = integrated_loudness(stereo.mean(axis=1), IRMAS_RATE)
    if not np.isfinite(loudness):
        return stereo.astype(np.float64)
    return stereo.astype(np.float64) * 10 ** ((target_lufs - loudness) / 20)


def render_song(task: SongTask) -> SongResult:
    """Render every excerpt of one song (skipping files already there)."""
    result = SongResult(task.number, task.work, task.split)
    todo = [p for p in task.paths if not _complete(p, task.split)]
    result.existing = len(task.paths) - len(todo)
    if not todo:
        result.written = [p.name for p in task.paths]
        return result
    rng = np.random.default_rng([task.seed, task.number])
    try:
        score = read_score(task.work)
        voices = arrange(score, task, rng)
    except InstrecError as error:
        result.error = str(error)
        return result
    durations = sorted(n.duration for part in score.parts for n in part)
    spq = rng.uniform(*NOTE_SECONDS_RANGE) / durations[len(durations) // 2]  # s per quarter
    drums = _pick_preset(task.soundfonts, GM_PERCUSSION_BANK, 0, rng) if task.drums else None
    result.labels = [v.role for v in voices if v.lead]
    result.parts = [
        {
            "role": v.role,
            "lead": v.lead,
            "program": v.preset.program,
            "preset": v.preset.label,
            "transpose": v.transpose,
        }
        for v in voices
    ]
    if task.split == "train":
        lengths = [TRAIN_SECONDS] * task.excerpts
    else:
        lengths = [float(rng.uniform(*task.test_seconds)) for _ in task.paths]
    length = score.quarters * spq
    shortest = lengths[0] if task.split == "train" else task.test_seconds[0]
    for path, seconds in zip(task.paths, lengths, strict=True):
        starts = choose_excerpts(voices, spq, length, seconds, 1, rng)
        while not starts and seconds > shortest:  # a short score: try a shorter excerpt
            seconds = max(shortest, seconds * 0.75)
            starts = choose_excerpts(voices, spq, length, seconds, 1, rng)
        if not starts:
            continue
        audio = render_excerpt(voices, drums, starts[0], seconds, spq, task.background_db, rng)
        if path.exists():  # rendered by an earlier run: keep it, rng stays in step
            continue
        if task.split == "test":
            write_text_atomic(path.with_suffix(".txt"), "".join(f"{c}\t\n" for c in result.labels))
        write_wav(path, audio, IRMAS_RATE)
    result.written = [p.name for p in task.paths if p.exists()]
    if len(result.written) < len(task.paths):
        result.error = (
            f"{task.work}: {len(task.paths) - len(result.written)} excerpt(s) found no place"
        )
    return result


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


def plan_songs(
    out: Path,
    works: Sequence[str],
    *,
    train_songs: int,
    test_songs: int,
    train_excerpts: int,
    test_excerpts: int,
    drums: float,
    soundfonts: Sequence[str],
    test_seconds: tuple[float, float],
    background_db: float,
    seed: int,
) -> list[SongTask]:
    """Which score each song uses, its split, class and file names (no score is read).

    Scores are drawn without replacement, so no score is in both splits; train classes
    are dealt in turn over the songs."""
    if train_songs + test_songs > len(works):
        raise InstrecError(
            f"{train_songs + test_songs} songs asked for but the chosen composers have only "
            f"{len(works)} scores"
        )
    rng = np.random.default_rng([seed, 3])
    picked = [works[i] for i in rng.permutation(len(works))[: train_songs + test_songs]]
    with_drums = rng.random(len(picked)) < drums
    tasks = []
    for index, work in enumerate(picked):
        number = index + 1
        if index < train_songs:
            label: str | None = IRMAS_CLASSES[index % len(IRMAS_CLASSES)]
            folder = out / "IRMAS-TrainingData" / str(label)
            names = [
                train_name(number, str(label), bool(with_drums[index]), k)
                for k in range(1, train_excerpts + 1)
            ]
            split = "train"
        else:
            label, folder, split = None, out / "IRMAS-TestingData-Part1", "test"
            names = [test_name(number, work, k) for k in range(1, test_excerpts + 1)]
        tasks.append(
            SongTask(
                number,
                work,
                split,
                label,
                bool(with_drums[index]),
                train_excerpts if split == "train" else test_excerpts,
                tuple(folder / f"{name}.wav" for name in names),
                tuple(soundfonts),
                test_seconds,
                background_db,
                seed,
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
    background_db: float = 10.0,
    drums: float = 0.3,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Render IRMAS-format ensembles into `out_dir` and return it (resumes a partial run).

    train_songs/test_songs: scores per split (disjoint); train_excerpts: 3 s excerpts per
    train song; test_excerpts: excerpts of `test_seconds` (min, max) s per test song;
    composers: music21 corpus composers to draw scores from; background_db: how much
    quieter (dB) unlabelled parts are than leading ones; drums: share of songs with a drum
    kit (named [dru], else [nod]).
    """
    test_seconds = (float(test_seconds[0]), float(test_seconds[1]))
    _check_options(
        train_songs,
        test_songs,
        train_excerpts,
        test_excerpts,
        test_seconds,
        background_db,
        drums,
        workers,
    )
    fonts = resolve_soundfonts(soundfonts)
    out = Path(out_dir)
    options = {
        "train_songs": train_songs,
        "test_songs": test_songs,
        "train_excerpts": train_excerpts,
        "test_excerpts": test_excerpts,
        "test_seconds": list(test_seconds),
        "composers": sorted(set(composers)),
        "soundfonts": fonts,
        "background_db": background_db,
        "drums": drums,
        "seed": seed,
    }
    works = multipart_works(composers)
    tasks = plan_songs(
        out,
        works,
        train_songs=train_songs,
        test_songs=test_songs,
        train_excerpts=train_excerpts,
        test_excerpts=test_excerpts,
        drums=drums,
        soundfonts=fonts,
        test_seconds=test_seconds,
        background_db=background_db,
        seed=seed,
    )
    manifest = claim_folder(out, "render-ensembles.json", options)
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
    write_json(out / "songs.json", {f"{r.number:04d}": vars(r) for r in results})
    train = [r for r in results if r.split == "train"]
    summary = {
        "train_excerpts": {
            c: sum(len(r.written) for r in train if r.labels == [c]) for c in IRMAS_CLASSES
        },
        "test_excerpts": sum(len(r.written) for r in results if r.split == "test"),
        "songs": {"train": len(train), "test": len(results) - len(train)},
        "existing": sum(r.existing for r in results),
        "songs_with_problems": sum(r.error is not None for r in results),
    }
    write_json(manifest, {"options": options, "summary": summary})
    return out


def _check_options(
    train_songs: int,
    test_songs: int,
    train_excerpts: int,
    test_excerpts: int,
    test_seconds: tuple[float, float],
    background_db: float,
    drums: float,
    workers: int,
) -> None:
    if train_songs < 0 or test_songs < 0 or train_songs + test_songs < 1:
        raise InstrecError(
            f"songs must be >= 0 and at least one in all "
            f"(got train {train_songs}, test {test_songs})"
        )
    if train_excerpts < 1 or test_excerpts < 1:
        raise InstrecError(
            f"excerpts per song must be at least 1 "
            f"(got train {train_excerpts}, test {test_excerpts})"
        )
    if not 1.0 <= test_seconds[0] <= test_seconds[1]:
        raise InstrecError(
            f"test_seconds must be (min, max) with 1 <= min <= max (got {test_seconds})"
        )
    if background_db < 0:
        raise InstrecError(f"background_db must be >= 0 dB (got {background_db})")
    if not 0.0 <= drums <= 1.0:
        raise InstrecError(f"drums is a share of songs in 0-1 (got {drums})")
    if workers < 1:
        raise InstrecError(f"workers must be at least 1 (got {workers})")
