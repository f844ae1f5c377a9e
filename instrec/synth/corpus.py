"""A pre-training corpus of rendered music: every part that sounds, labelled per 1 s clip.

`instrec synth corpus OUT` renders *renditions*: an excerpt of a music21 score whose
every part is played by an instrument drawn for it, labelled with its class in
instrec.labels.CORPUS_CLASSES (IRMAS's eleven, bass, pad, drums and eight other General
MIDI groups). Layout:

  OUT/audio/<NNNNN>.wav    16 kHz mono 16-bit, `seconds` long: one 1 s clip per second
  OUT/audio/<NNNNN>.json   the rendition: score, split, parts and, per clip, its labels,
                           how long each part sounds in it and how loud it is there
  OUT/clips.csv            one row per clip (file, clip, split, group, work, labels)
  OUT/render-corpus.json   options (with the class list) and counts

`instrec prepare corpus OUT` turns it into a multi-label clip store.

Labels follow activity, clip by clip: a part is labelled in a clip when its score has a
note sounding there for at least MIN_SOUNDING_S *and* its own rendered loudness in that
clip is at most AUDIBLE_DB below the clip's mix (a part whose notes the instrument could
not play, or that a held note left silent before the excerpt's pre-roll, is not
labelled). Every clip has at least one label. Parts are mixed at loudness drawn 0 to
`level_spread_db` below LEAD_LUFS, so no part is predominant; the mix is brought to
MIX_LUFS. Scores are split between train and valid (valid: `valid_share` of the scores);
`exclude_from` names an ensembles render whose test scores the corpus never plays.

Parts of IRMAS classes, bass and pads draw their instruments as the ensembles do
(instrec.synth.sources: soundfonts and csound model voices, per-part timbre); the other
groups play General MIDI presets of the render's soundfonts, folded into the register of
a neighbouring role (RANGE_ROLES). Renditions draw from their own seeded streams: the
same seed gives the same files, also across worker counts, and a rerun resumes.

`performance_options` and `production_options` (off by default: the corpus is then as
before) play and produce renditions as the ensembles' songs (instrec.synth.performance,
.accompaniment, .production), and labels still follow what is heard. With timing or pedal
on, a part sounds when performed: its performed onsets and durations, a note held by the
pedal until its lift. Comping adds a pad part and, where no part is bass, a bass line
(ensembles.accompany), labelled pad and bass; grooves change what the kit plays. Each
part goes through its channel strip and the shared room before it is measured, so a part
is labelled where it is heard in the room (a reverb tail alone, with no note sounding,
labels nothing); the mix bus and the MP3 round trip act on the mix after the labels are
measured, on every part at once.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instrec.atomic import write_text_atomic
from instrec.audio import SAMPLE_RATE, integrated_loudness, level_gain, resample
from instrec.data.corpus import CLIPS_TABLE, COLUMNS, MANIFEST
from instrec.errors import InstrecError
from instrec.labels import (
    CORPUS_CLASSES,
    CORPUS_DRUMS,
    CORPUS_GM_PROGRAMS,
)
from instrec.synth import performance, production, sources, timbre
from instrec.synth.accompaniment import Drums, Hit, drum_part
from instrec.synth.ensembles import (
    EXCERPT_TRIES,
    GRID,
    INSTRUMENT_RANGES,
    IRMAS_RATE,
    LEAD_LUFS,
    MAX_PEAK,
    MIX_LUFS,
    PRE_ROLL,
    VELOCITY_JITTER,
    SongTask,
    Voice,
    accompany,
    drum_events,
    drum_kits,
    folded,
    make_voice,
    octave_fit,
    part_notes,
    render_drums,
    render_part,
    seconds_per_quarter,
)
from instrec.synth.outputs import claim_folder, run_tasks, write_json, write_wav
from instrec.synth.scores import (
    DEFAULT_COMPOSERS,
    Score,
    ScoreNote,
    multipart_works,
    read_score,
)
from instrec.synth.soundfonts import Preset, read_presets
from instrec.synth.sources import TRAIN, Pool

AUDIO_FOLDER = "audio"
CLIP_SECONDS = 1  # the store's clip length
DEFAULT_SECONDS = 10  # clips per rendition: fixed costs (a csound start per part) shared
DEFAULT_RENDITIONS = 400
DEFAULT_VALID_SHARE = 0.1
MIN_SOUNDING_S = 0.05  # s a part's notes must sound in a clip for it to be labelled ...
AUDIBLE_DB = 20.0  # ... and its loudness there at most this far below the clip's mix
DEFAULT_LEVEL_SPREAD_DB = 12.0  # parts are mixed 0 to this many dB below LEAD_LUFS
PITCHED_CLASSES = tuple(c for c in CORPUS_CLASSES if c != CORPUS_DRUMS)
# the register each wider group is folded into: a neighbouring role of the ensembles
RANGE_ROLES: dict[str, str] = {
    "strings": "cel",
    "plucked": "gac",
    "brass": "cel",
    "reed": "cla",
    "pipe": "flu",
    "keyboard": "pia",
    "mallet": "flu",
    "synth_lead": "vio",
}
_STREAM = 23  # the corpus's seeds are [seed, _STREAM, ...]: apart from the ensembles'
# Streams of a rendition besides its own ([seed, _STREAM, number, k]): its drum groove and
# its production; a wider group's part draws its performance from [.., part, _PLAYING_STREAM].
_GROOVE_STREAM, _PRODUCTION_STREAM, _PLAYING_STREAM = 1, 2, 3


@dataclass(frozen=True)
class CorpusOptions:
    """What every rendition shares."""

    seconds: int
    drums: float
    level_spread_db: float
    timbre: tuple[str, ...]
    seed: int
    performance: tuple[str, ...] = ()  # instrec.synth.performance
    production: tuple[str, ...] = ()  # instrec.synth.production


@dataclass(frozen=True)
class ScoreTask:
    """One score's renditions (a worker parses the score once)."""

    work: str
    group: int  # the score's place in the seeded order
    split: str  # "train" | "valid"
    numbers: tuple[int, ...]  # rendition numbers: file names and seeds
    folder: Path  # OUT/audio
    pool: Pool
    options: CorpusOptions


@dataclass
class Rendition:
    """What a rendition's .json records."""

    number: int
    work: str
    group: int
    split: str
    start: float = 0.0  # s into the score
    seconds: int = 0
    spq: float = 0.0  # s per quarter note
    parts: list[dict[str, Any]] = field(default_factory=list)
    clips: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    production: dict[str, Any] | None = None  # recorded only when an ingredient is on

    def record(self) -> dict[str, Any]:
        """What its .json holds (no production key when production is off)."""
        return {k: v for k, v in vars(self).items() if k != "production" or v is not None}


def file_name(number: int) -> str:
    return f"{number:05d}"


# ---- parts --------------------------------------------------------------------------------


@functools.cache
def _group_presets(pool: Pool) -> dict[str, tuple[Preset, ...]]:
    """Bank-0 presets of each wider group's programs in the pool's soundfonts, less those
    that replay a held-out family's samples (a contrabass built on a held-out cello)."""
    presets = [
        p
        for font in pool.soundfonts
        for p in read_presets(font)
        if p.bank == 0 and not sources.replays_held_out(p, pool.catalogue, pool.held_out)
    ]
    return {
        group: tuple(p for p in presets if p.program in programs)
        for group, programs in CORPUS_GM_PROGRAMS.items()
    }


def _group_voice(label: str, notes: Sequence[ScoreNote], task: SongTask, part: int) -> Voice:
    """A part of a wider group: a preset of its programs, folded into RANGE_ROLES's
    register, with its own timbre and velocity jitter (one stream per part) and its
    performance (a stream of its own: the other draws stay as without it)."""
    presets = _group_presets(task.pool)[label]
    if not presets:
        fonts = ", ".join(Path(f).name for f in task.pool.soundfonts) or "none"
        raise InstrecError(f"no soundfont of this render ({fonts}) plays {label}")
    stream = np.random.default_rng([task.seed, task.number, part])
    preset = presets[int(stream.integers(len(presets)))]
    role = RANGE_ROLES[label]
    transpose = octave_fit(notes, *INSTRUMENT_RANGES[role])[1]
    jitter = stream.integers(-VELOCITY_JITTER, VELOCITY_JITTER + 1, len(notes))
    return Voice(
        label,
        True,
        preset,
        tuple(notes),
        transpose,
        family=f"gm:{label}",
        variation=timbre.draw(task.timbre, stream),
        jitter=tuple(int(v) for v in jitter),
        played=folded(role, preset, notes, transpose),
        playing=performance.draw(
            task.performance,
            np.random.default_rng([task.seed, task.number, part, _PLAYING_STREAM]),
            label,
            notes,
        ),
    )


def arrange_parts(score: Score, task: SongTask, rng: np.random.Generator) -> list[Voice]:
    """Every part of the score gets a class drawn uniformly (repeats allowed) and an
    instrument of that class; all parts are labelled where they sound."""
    voices = []
    for part, notes in enumerate(score.parts):
        label = str(rng.choice(PITCHED_CLASSES))
        if label in sources.ROLES:
            transpose = octave_fit(notes, *INSTRUMENT_RANGES[label])[1]
            voices.append(make_voice(label, True, notes, transpose, 64, task, part))
        else:
            voices.append(_group_voice(label, notes, task, part))
    return voices


# ---- labels -------------------------------------------------------------------------------


def sounding(intervals: Sequence[tuple[float, float]], clips: int) -> np.ndarray:
    """(clips,) seconds of each 1 s clip covered by at least one (start, stop) interval
    (seconds from the excerpt's start), on a 10 ms grid."""
    cells = 100 * CLIP_SECONDS
    grid = np.zeros(clips * cells, dtype=bool)
    for start, stop in intervals:
        first, last = max(round(start * 100), 0), min(round(stop * 100), grid.size)
        if last > first:
            grid[first:last] = True
    return grid.reshape(clips, cells).sum(axis=1) / 100.0


def _note_intervals(voice: Voice, start: float, spq: float) -> list[tuple[float, float]]:
    """When the voice's played notes sound, in seconds from `start` (score activity)."""
    return [
        (note.onset * spq - start, (note.onset + note.duration) * spq - start)
        for _, note in voice.played
    ]


def _played_intervals(
    voice: Voice, start: float, seconds: int, spq: float
) -> list[tuple[float, float]]:
    """When the voice's notes sound as performed, in seconds from `start`: the notes
    render_stems sends (performed onsets and durations, from the pre-roll on), each held
    by the pedal until its lift (performance.held: what CC64 does to a soundfont part)."""
    begin = max(start - PRE_ROLL, 0.0)
    notes = part_notes(voice, begin, start + seconds, spq)
    held = performance.held(voice.playing, notes)
    lead_in = start - begin
    return [(n.onset - lead_in, n.onset + h - lead_in) for n, h in zip(notes, held, strict=True)]


def _drum_intervals(
    start: float, seconds: int, spq: float, hits: Sequence[Hit] | None
) -> list[tuple[float, float]]:
    """When the drum kit's hits sound (note on to note off), in seconds from `start`
    (`hits`: a groove, None: the plain backbeat)."""
    events = drum_events(start, start + seconds, spq, hits)  # each hit: an "on", its "off"
    return [
        (on.sample / IRMAS_RATE, off.sample / IRMAS_RATE)
        for on, off in zip(events[::2], events[1::2], strict=True)
    ]


def labelled(sounds: np.ndarray, levels_db: np.ndarray, mix_db: np.ndarray) -> np.ndarray:
    """(parts, clips) bool: a part is labelled in a clip when its score sounds there for
    MIN_SOUNDING_S or more and its loudness there is at most AUDIBLE_DB under the mix's.

    sounds: (parts, clips) seconds; levels_db: (parts, clips) LUFS (-inf: silent);
    mix_db: (clips,) LUFS of the mix."""
    audible = np.isfinite(levels_db) & (levels_db >= mix_db[None, :] - AUDIBLE_DB)
    return (sounds >= MIN_SOUNDING_S) & audible


def clip_loudness(audio: np.ndarray, clips: int) -> np.ndarray:
    """(clips,) LUFS of each 1 s clip of 16 kHz mono audio (-inf where silent)."""
    step = CLIP_SECONDS * SAMPLE_RATE
    return np.array([integrated_loudness(audio[k * step : (k + 1) * step]) for k in range(clips)])


# ---- one rendition ------------------------------------------------------------------------


def _mono(stereo: np.ndarray, samples: int) -> np.ndarray:
    """(n, 2) at IRMAS_RATE -> (samples,) float64 mono at the model's rate."""
    mono = resample(stereo.mean(axis=1).astype(np.float32), IRMAS_RATE, SAMPLE_RATE)
    return np.pad(mono, (0, max(0, samples - mono.size)))[:samples].astype(np.float64)


def render_stems(
    voices: Sequence[Voice],
    drums: Drums | None,
    start: float,
    seconds: int,
    spq: float,
    studio: production.Production = production.OFF,
) -> np.ndarray:
    """(parts [+ drums], samples) each part alone, 16 kHz mono, as the synthesisers made it
    and through its channel strip and room (`studio`'s parts; drums last)."""
    begin = max(start - PRE_ROLL, 0.0)
    n_total = round((start + seconds - begin) * IRMAS_RATE)
    skip = round((start - begin) * IRMAS_RATE)
    samples = seconds * SAMPLE_RATE
    stereo = [render_part(v, part_notes(v, begin, start + seconds, spq), n_total) for v in voices]
    if drums is not None:
        hits = None if drums.part is None else drums.part.hits
        stereo.append(
            render_drums(drums.kit, drum_events(begin, start + seconds, spq, hits), n_total)
        )
    # produced with the pre-roll (a compressor's state, the room's tails), then cut
    return np.stack(
        [
            _mono(production.process_part(stem, IRMAS_RATE, studio, part)[skip:], samples)
            for part, stem in enumerate(stereo)
        ]
    )


def mix_stems(stems: np.ndarray, targets_lufs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each stem at its target loudness (silent ones left), their sum at MIX_LUFS with
    peaks under MAX_PEAK)."""
    loudness = [integrated_loudness(stem) for stem in stems]
    gains = np.array(
        [level_gain(value, t) for value, t in zip(loudness, targets_lufs, strict=True)]
    )
    levelled = stems * gains[:, None]
    mix = levelled.sum(axis=0)
    scale = _mix_gain(mix)
    return levelled * scale, mix * scale


def _mix_gain(mix: np.ndarray) -> float:
    """The gain that brings a mix to MIX_LUFS with its peaks under MAX_PEAK."""
    scale = level_gain(integrated_loudness(mix), MIX_LUFS)
    peak = float(np.abs(mix).max()) * scale
    return scale * (min(1.0, MAX_PEAK / peak) if peak > 0 else 1.0)


def finish_mix(mix: np.ndarray, studio: production.Production) -> np.ndarray:
    """(samples,) the 16 kHz mix through the bus and the codec (production 'mix', 'codec')
    at IRMAS_RATE, as the ensembles' mixes are, brought back to MIX_LUFS under MAX_PEAK;
    the mix itself when both are off. Labels are measured before: bus and codec act on the
    whole mix at once, so no part moves against the others beyond the tilt EQ (+-3 dB)."""
    if studio.mix is None and studio.codec is None:
        return mix
    wide = resample(mix.astype(np.float32), SAMPLE_RATE, IRMAS_RATE)
    heard = _mono(
        production.process_mix(np.stack([wide, wide], axis=1), IRMAS_RATE, studio, 0), mix.size
    )
    return heard * _mix_gain(heard)


@dataclass(frozen=True)
class Excerpt:
    """Where a rendition is cut from its score, and who plays."""

    voices: Sequence[Voice]
    drums: Drums | None
    start: float  # s into the score
    seconds: int
    spq: float  # s per quarter note

    def sounding(self) -> np.ndarray:
        """(parts [+ drums], clips) seconds each part sounds in each clip: as performed
        where its timing or pedal is on (the score's times would be off by up to the
        timing's shift, 75 ms, and miss what the pedal holds), else by its score."""
        parts = [self._intervals(v) for v in self.voices]
        if self.drums is not None:
            hits = None if self.drums.part is None else self.drums.part.hits
            parts.append(_drum_intervals(self.start, self.seconds, self.spq, hits))
        return np.stack([sounding(intervals, self.seconds) for intervals in parts])

    def _intervals(self, voice: Voice) -> list[tuple[float, float]]:
        if voice.playing.shifts or voice.playing.pedal is not None:
            return _played_intervals(voice, self.start, self.seconds, self.spq)
        return _note_intervals(voice, self.start, self.spq)

    def labels(
        self, levelled: np.ndarray, mix: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labelled (parts, clips) bool, seconds sounding, each part's loudness in each
        clip relative to the mix's, dB) from the parts as mixed (`levelled`, 16 kHz mono)."""
        sounds = self.sounding()
        levels = np.stack([clip_loudness(stem, self.seconds) for stem in levelled])
        mix_db = clip_loudness(mix, self.seconds)
        with np.errstate(invalid="ignore"):  # silent part in a silent clip: NaN, recorded None
            relative = levels - mix_db[None, :]
        return labelled(sounds, levels, mix_db), sounds, relative


def _starts(
    intervals: Sequence[list[tuple[float, float]]],
    length: float,
    seconds: int,
    rng: np.random.Generator,
) -> list[float]:
    """Excerpt starts (seeded order) where, by the score, every clip has a sounding part."""
    starts = rng.permutation(np.arange(0.0, length - seconds + 1e-9, GRID))
    good = []
    for start in starts:
        shifted = [[(a - start, b - start) for a, b in part] for part in intervals]
        covered = np.max([sounding(part, seconds) for part in shifted], axis=0)
        if (covered >= MIN_SOUNDING_S).all():
            good.append(float(start))
            if len(good) == EXCERPT_TRIES:
                break
    return good


def render_rendition(
    score: Score, task: SongTask, options: CorpusOptions, record: Rendition
) -> np.ndarray | None:
    """The 16 kHz mono audio of one rendition of `score` (None when no excerpt has an
    audible part in every clip), filling in its `record`."""
    rng = np.random.default_rng([options.seed, _STREAM, task.number])
    try:
        voices = arrange_parts(score, task, rng)
    except InstrecError as error:
        record.error = str(error)
        return None
    spq = seconds_per_quarter(score, rng)
    drums = _drums(score, task, options, rng)
    added = accompany(score, task, voices, spq) if "comping" in options.performance else []
    record.parts = [_part_record(v) for v in voices]
    record.parts += [{**_part_record(v), **how} for v, how in added]
    voices += [v for v, _ in added]
    names = [v.role for v in voices] + ([CORPUS_DRUMS] if drums is not None else [])
    targets = LEAD_LUFS - rng.uniform(0, options.level_spread_db, len(names))
    if drums is not None:
        groove = {} if drums.part is None else drums.part.record()
        record.parts.append({"label": CORPUS_DRUMS, "instrument": drums.kit.label, **groove})
    studio = production.draw(
        options.production,
        np.random.default_rng([options.seed, _STREAM, task.number, _PRODUCTION_STREAM]),
        parts=len(voices) + 1,  # drums last, drawn with or without a kit
        excerpts=1,
    )
    length = score.quarters * spq
    seconds = min(options.seconds, int(length))
    notes = [_note_intervals(v, 0.0, spq) for v in voices]
    for start in _starts(notes, length, seconds, rng) if seconds >= 1 else []:
        stems = render_stems(voices, drums, start, seconds, spq, studio)
        levelled, mix = mix_stems(stems, targets)
        excerpt = Excerpt(voices, drums, start, seconds, spq)
        chosen, sounds, relative_db = excerpt.labels(levelled, mix)
        if chosen.any(axis=0).all():
            record.start, record.seconds, record.spq = round(start, 3), seconds, spq
            record.clips = [
                _clip_record(names, chosen[:, k], sounds[:, k], relative_db[:, k])
                for k in range(seconds)
            ]
            record.production = studio.record(0) if options.production else None
            return finish_mix(mix, studio).astype(np.float32)
    record.error = (
        f"{task.work}: no excerpt of {options.seconds} s with an audible part in every clip"
    )
    return None


def _drums(
    score: Score, task: SongTask, options: CorpusOptions, rng: np.random.Generator
) -> Drums | None:
    """The rendition's kit (a share `options.drums` of renditions have one) and what it
    plays: with 'grooves' a groove drawn from a stream of its own, else the backbeat."""
    kits = drum_kits(task.pool.soundfonts)
    if not (kits and rng.random() < options.drums):
        return None
    kit = kits[int(rng.integers(len(kits)))]
    if "grooves" not in options.performance:
        return Drums(kit)
    grooves = np.random.default_rng([options.seed, _STREAM, task.number, _GROOVE_STREAM])
    return Drums(kit, drum_part(score.quarters, grooves))


def _part_record(voice: Voice) -> dict[str, Any]:
    instrument = voice.instrument
    playing = voice.playing.record()  # empty when no performance option is on
    return {
        "label": voice.role,
        "instrument": instrument.label,
        "family": voice.family,
        "source": "soundfont" if isinstance(instrument, Preset) else "csound",
        "transpose": voice.transpose,
        "timbre": voice.variation.record(),
        "played_share": round(len(voice.played) / max(len(voice.notes), 1), 3),
        **({"performance": playing} if playing else {}),
    }


def _clip_record(
    names: Sequence[str], chosen: np.ndarray, sounds: np.ndarray, relative_db: np.ndarray
) -> dict[str, Any]:
    """A clip's labels (CORPUS_CLASSES order) and, per part, seconds sounding and dB
    relative to the mix (None: silent)."""
    labels = {name for name, on in zip(names, chosen, strict=True) if on}
    return {
        "labels": [c for c in CORPUS_CLASSES if c in labels],
        "sounding": [round(float(s), 2) for s in sounds],
        "level_db": [round(float(v), 1) if np.isfinite(v) else None for v in relative_db],
    }


def render_score(task: ScoreTask) -> list[Rendition]:
    """Every rendition of one score; those already on disk (a complete one has its .json
    beside its .wav) are read back, not rendered again."""
    results: list[Rendition] = []
    score: Score | None = None
    for number in task.numbers:
        done = task.folder / f"{file_name(number)}.json"
        if done.is_file() and done.with_suffix(".wav").is_file():
            results.append(Rendition(**json.loads(done.read_text(encoding="utf-8"))))
            continue
        record = Rendition(number, task.work, task.group, task.split)
        results.append(record)
        try:
            score = score or read_score(task.work)
        except InstrecError as error:
            record.error = str(error)
            continue
        audio = render_rendition(score, _song_task(task, number), task.options, record)
        if audio is not None:
            write_wav(done.with_suffix(".wav"), audio, SAMPLE_RATE)
            write_json(done, record.record())
    return results


def _song_task(task: ScoreTask, number: int) -> SongTask:
    """The ensembles' song task a rendition's parts are drawn with (seeds apart from theirs)."""
    seed = int(np.random.SeedSequence([task.options.seed, _STREAM]).generate_state(1)[0])
    wav = task.folder / f"{file_name(number)}.wav"
    seconds = float(task.options.seconds)
    return SongTask(
        number,
        task.work,
        task.split,
        None,
        False,
        1,
        (wav,),
        task.pool,
        (seconds, seconds),
        0.0,
        seed,
        task.options.timbre,
        task.options.performance,
        task.options.production,
    )


# ---- the whole corpus ---------------------------------------------------------------------


def _folders(given: str | Path | Sequence[str | Path]) -> list[Path]:
    return [Path(given)] if isinstance(given, str | Path) else [Path(f) for f in given]


def _folders_record(folders: Sequence[Path]) -> str | list[str] | None:
    """How the manifest names the excluded renders (one as a path, as it always did, so an
    earlier corpus still resumes)."""
    paths = [str(f.resolve()) for f in folders]
    return None if not paths else paths[0] if len(paths) == 1 else paths


def excluded_works(ensembles_dir: Path) -> set[str]:
    """Scores an ensembles render plays in its test sets (its songs.json)."""
    path = Path(ensembles_dir) / "songs.json"
    try:
        songs = json.loads(path.read_text(encoding="utf-8"))
        return {str(s["work"]) for s in songs.values() if s["split"] != "train"}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise InstrecError(
            f"{path}: not a songs.json of instrec synth ensembles ({error})"
        ) from None


def plan_scores(
    works: Sequence[str], renditions: int, valid_share: float, seed: int
) -> list[tuple[str, int, str, tuple[int, ...]]]:
    """(work, group, split, rendition numbers) per score used: scores in a seeded order,
    renditions dealt to them in turn (numbered from 1); the first `valid_share` of the
    scores used (at least one) are validation scores, the rest training."""
    used = min(renditions, len(works))
    if used < 2:
        raise InstrecError(
            f"a corpus needs at least two scores, one for validation (got {len(works)} scores "
            f"and {renditions} renditions)"
        )
    order = np.random.default_rng([seed, _STREAM]).permutation(len(works))[:used]
    valid = min(max(1, round(valid_share * used)), used - 1)
    return [
        (
            works[int(index)],
            group,
            "valid" if group < valid else "train",
            tuple(range(group + 1, renditions + 1, used)),
        )
        for group, index in enumerate(order)
    ]


def render_corpus(
    out_dir: str | Path,
    *,
    renditions: int = DEFAULT_RENDITIONS,
    seconds: int = DEFAULT_SECONDS,
    composers: Sequence[str] = DEFAULT_COMPOSERS,
    exclude_from: str | Path | Sequence[str | Path] | None = None,
    valid_share: float = DEFAULT_VALID_SHARE,
    soundfonts: Sequence[str | Path] | None = None,
    sources_used: Sequence[str] = sources.DEFAULT_SOURCES,
    model_names: Sequence[str] | None = None,
    model_voices: int = sources.DEFAULT_MODEL_VOICES,
    timbre_options: Sequence[str] = (),
    performance_options: Sequence[str] = (),
    production_options: Sequence[str] = (),
    holdout_from: str | Path | None = None,
    drums: float = 0.3,
    level_spread_db: float = DEFAULT_LEVEL_SPREAD_DB,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Render the corpus into `out_dir` and return it (a partial run resumes).

    renditions: excerpts rendered, each `seconds` 1 s clips long, dealt over the scores of
    `composers` in a seeded order (minus the test scores of the ensembles render
    `exclude_from`); valid_share: share of those scores kept for validation; sources,
    models, model voices, timbre, performance, production, drums (share of renditions
    with a kit) as in render_ensembles; holdout_from: an ensembles render's families.json,
    whose held-out families no part plays (IRMAS classes, bass and pads as the ensembles'
    training songs; wider groups lose the presets replaying their samples);
    level_spread_db: parts are mixed 0 to this many dB below the loudest possible part.
    """
    _check(renditions, seconds, valid_share, drums, level_spread_db, workers, model_voices)
    kinds = sources.parse_sources(sources_used)
    variation = timbre.parse_options(timbre_options)
    playing = performance.parse_options(performance_options)
    studio = production.parse_options(production_options)
    fonts = sources.source_soundfonts(kinds, soundfonts)
    chosen_models = sources.source_models(kinds, model_names)
    catalogue = sources.installed_catalogue(fonts)
    held_out = sources.held_out_families(holdout_from)
    pool = Pool(tuple(fonts), tuple(chosen_models), model_voices, catalogue, held_out, TRAIN)
    folders = [] if exclude_from is None else _folders(exclude_from)
    skip = {work for folder in folders for work in excluded_works(folder)}
    works = [w for w in multipart_works(composers) if w not in skip]
    out = Path(out_dir)
    options_record = {
        "classes": list(CORPUS_CLASSES),
        "renditions": renditions,
        "seconds": seconds,
        "composers": sorted(set(composers)),
        "exclude_from": _folders_record(folders),
        "excluded_scores": len(skip),
        "valid_share": valid_share,
        "sources": list(kinds),
        "soundfonts": fonts,
        "models": chosen_models,
        "model_voices": model_voices,
        "timbre": list(variation),
        "drums": drums,
        "level_spread_db": level_spread_db,
        "seed": seed,
        # recorded when on: a corpus rendered without them keeps its manifest (and resumes)
        **({"performance": list(playing)} if playing else {}),
        **({"production": list(studio)} if studio else {}),
        **({"holdout_from": str(Path(holdout_from).resolve())} if holdout_from is not None else {}),
    }
    options = CorpusOptions(seconds, drums, level_spread_db, variation, seed, playing, studio)
    tasks = [
        ScoreTask(work, group, split, numbers, out / AUDIO_FOLDER, pool, options)
        for work, group, split, numbers in plan_scores(works, renditions, valid_share, seed)
    ]
    manifest = claim_folder(out, MANIFEST, options_record)
    (out / AUDIO_FOLDER).mkdir(exist_ok=True)
    done = run_tasks(
        render_score, tasks, workers=workers, desc="corpus", unit="score", progress=progress
    )
    records = sorted((r for results in done for r in results), key=lambda r: r.number)
    for record in records:
        if record.error:
            print(f"skipped: rendition {record.number}: {record.error}")
    kept = [r for r in records if r.error is None]
    write_text_atomic(out / CLIPS_TABLE, clips_table(kept))
    write_json(manifest, {"options": options_record, "summary": _summary(records)})
    return out


def clips_table(records: Sequence[Rendition]) -> str:
    """clips.csv: one row per clip of every complete rendition."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in records:
        for k, clip in enumerate(r.clips):
            labels = ";".join(clip["labels"])
            writer.writerow(
                [f"{AUDIO_FOLDER}/{file_name(r.number)}.wav", k, r.split, r.group, r.work, labels]
            )
    return text.getvalue()


def _summary(records: Sequence[Rendition]) -> dict[str, object]:
    kept = [r for r in records if r.error is None]
    clips = [c for r in kept for c in r.clips]
    per_class = Counter(label for c in clips for label in c["labels"])
    quiet = sum(
        s >= MIN_SOUNDING_S and (level is None or level < -AUDIBLE_DB)
        for c in clips
        for s, level in zip(c["sounding"], c["level_db"], strict=True)
    )
    return {
        "renditions": len(kept),
        "clips": {
            split: sum(len(r.clips) for r in kept if r.split == split)
            for split in ("train", "valid")
        },
        "scores": len({r.work for r in kept}),
        "clips_per_class": {c: per_class[c] for c in CORPUS_CLASSES},
        "labels_per_clip": round(sum(per_class.values()) / max(len(clips), 1), 2),
        "sounding_but_inaudible": quiet,
        "renditions_with_problems": len(records) - len(kept),
    }


def _check(
    renditions: int,
    seconds: int,
    valid_share: float,
    drums: float,
    level_spread_db: float,
    workers: int,
    model_voices: int,
) -> None:
    problems = []
    if renditions < 2:
        problems.append(f"renditions must be at least 2 (got {renditions})")
    if seconds < 1:
        problems.append(f"seconds must be at least 1 (got {seconds})")
    if not 0.0 < valid_share < 1.0:
        problems.append(f"valid_share must be in (0, 1) (got {valid_share})")
    if not 0.0 <= drums <= 1.0:
        problems.append(f"drums is a share of renditions in 0-1 (got {drums})")
    if level_spread_db < 0:
        problems.append(f"level_spread_db must be >= 0 (got {level_spread_db})")
    if workers < 1 or model_voices < 1:
        problems.append(
            f"workers and model_voices must be at least 1 (got {workers}, {model_voices})"
        )
    if problems:
        raise InstrecError("; ".join(problems))
