"""Render an NSynth-format dataset of isolated notes from soundfont presets.

Layout, as the official release: <out>/nsynth-{train,valid,test}/examples.json and
<out>/nsynth-<split>/audio/<note_str>.wav (16 kHz mono 16-bit, 4 s: held 3 s, released).
Beside them <out>/instruments.json says which preset or csound model voice each
instrument_str is, and <out>/render-notes.json the options and counts of the run.

Instruments are soundfont presets and, with the "models" source, csound model voices
(instrec.synth.models; NSynth source "synthetic"). Notes are rendered at 48 kHz and
decimated to 16 kHz (rendering at 16 kHz aliases badly on bright presets at high
pitches). Each instrument's playable keys are probed first (a model voice's tuning too),
and notes that still come out near-silent are skipped and counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instrec.audio import resample
from instrec.errors import InstrecError
from instrec.synth import models, sources
from instrec.synth.csound import CsoundNote
from instrec.synth.fluidsynth import Event, Synth
from instrec.synth.models import ModelVoice
from instrec.synth.nsynth_format import (
    HOLD_SECONDS,
    MAX_PITCH,
    MIN_PITCH,
    NOTE_SECONDS,
    NSYNTH_SAMPLE_RATE,
    SPLITS,
    example_fields,
    instrument_strs,
    note_str,
)
from instrec.synth.outputs import claim_folder, run_tasks, write_json, write_wav
from instrec.synth.soundfonts import Preset, note_presets
from instrec.synth.sources import Instrument

RENDER_RATE = 48_000  # Hz: rendered here, then decimated to 16 kHz
PROBE_SECONDS = 0.5  # length of each probe note (held throughout)
PLAYABLE_PEAK = 10 ** (-50 / 20)  # a probe quieter than -50 dBFS peak: key not playable
SILENT_PEAK = 10 ** (-60 / 20)  # a rendered note quieter than -60 dBFS peak is skipped
NSYNTH_VELOCITIES = (25, 50, 75, 100, 127)
DEFAULT_VELOCITIES = (50, 100)
DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train, valid, test: shares of instruments
HELD_PITCH_CHECKS = (0.2, 1.4, 2.6)  # s into a held model note where its pitch is checked

PitchChoice = int | Sequence[int] | None


@dataclass(frozen=True)
class NoteTask:
    """Everything one worker needs to render one instrument's notes."""

    played_by: Instrument  # the soundfont preset or csound voice
    instrument: int
    instrument_str: str
    split: str
    pitches: PitchChoice
    velocities: tuple[int, ...]
    audio_dir: Path


@dataclass
class NoteResult:
    instrument_str: str
    playable: tuple[int, ...]  # MIDI keys where the preset sounds
    examples: dict[str, dict[str, object]]
    rendered: int = 0
    existing: int = 0
    silent: int = 0
    off_pitch: int = 0  # model notes that left their pitch while held


_SYNTH: Synth | None = None  # one long-lived synth per process
_TUNINGS: dict[tuple[ModelVoice, int], float | None] = {}  # probed model voices


def _synth() -> Synth:
    global _SYNTH
    if _SYNTH is None:
        _SYNTH = Synth(RENDER_RATE)
    return _SYNTH


def render_note(instrument: Instrument, pitch: int, velocity: int) -> np.ndarray:
    """One NSynth note: (64000,) float32 at 16 kHz, held 3 s then released."""
    n_samples = round(NOTE_SECONDS * RENDER_RATE)
    if isinstance(instrument, Preset):
        hold = round(HOLD_SECONDS * RENDER_RATE)
        events = [Event(0, "on", 0, pitch, velocity), Event(hold, "off", 0, pitch)]
        mono = _synth().render({0: instrument}, events, n_samples).mean(axis=1)
    else:
        tune = _TUNINGS.get((instrument, pitch)) or 1.0
        note = CsoundNote(0.0, HOLD_SECONDS, pitch, velocity, tune)
        mono = models.render_notes(instrument, [note], n_samples, RENDER_RATE)
    return resample(mono, RENDER_RATE, NSYNTH_SAMPLE_RATE)


def playable_pitches(instrument: Instrument) -> tuple[int, ...]:
    """Keys 21-108 where a held probe note peaks above -50 dBFS (a preset), or sounds at
    its pitch (a model voice, within the voice's range; its tuning is kept)."""
    if isinstance(instrument, Preset):
        keys = range(MIN_PITCH, MAX_PITCH + 1)
        return _synth().playable_keys(instrument, keys, PROBE_SECONDS, PLAYABLE_PEAK)
    low, high = instrument.keys
    keys = range(max(low, MIN_PITCH), min(high, MAX_PITCH) + 1)
    tunings = models.probe(instrument, list(keys), RENDER_RATE)
    _TUNINGS.update({(instrument, key): tuning for key, tuning in tunings.items()})
    return tuple(key for key in keys if tunings[key] is not None)


def _held_at_pitch(audio: np.ndarray, pitch: int) -> bool:
    """Whether a model voice's note stays at its pitch while held (a bowed string or a
    flute can flip to its octave after the probe's second)."""
    windows = [(t, t + 0.25) for t in HELD_PITCH_CHECKS]
    return models.pitch_offsets(audio, pitch, NSYNTH_SAMPLE_RATE, windows) is not None


def nsynth_family(instrument: Instrument) -> str:
    """The instrument's NSynth family."""
    if isinstance(instrument, Preset):
        return str(instrument.family)
    return models.MODELS[instrument.model].nsynth_family


def nsynth_source(instrument: Instrument) -> str:
    """NSynth's instrument_source: how the sound is made (every csound voice: synthetic)."""
    return instrument.source if isinstance(instrument, Preset) else "synthetic"


def choose_pitches(playable: Sequence[int], choice: PitchChoice) -> list[int]:
    """All playable keys (None), `choice` keys spread evenly over them (int), or the
    requested keys that are playable (a sequence)."""
    if choice is None:
        return list(playable)
    if isinstance(choice, int):
        if not playable:
            return []
        picks = np.linspace(0, len(playable) - 1, min(choice, len(playable))).round()
        return sorted({playable[int(i)] for i in picks})
    return [p for p in choice if p in playable]


def _render_instrument(task: NoteTask) -> NoteResult:
    instrument = task.played_by
    result = NoteResult(task.instrument_str, playable_pitches(instrument), {})
    for pitch in choose_pitches(result.playable, task.pitches):
        for velocity in task.velocities:
            name = note_str(task.instrument_str, pitch, velocity)
            path = task.audio_dir / f"{name}.wav"
            if path.exists():
                result.existing += 1
            else:
                audio = render_note(instrument, pitch, velocity)
                if np.abs(audio).max() < SILENT_PEAK:
                    result.silent += 1
                    continue
                if isinstance(instrument, ModelVoice) and not _held_at_pitch(audio, pitch):
                    result.off_pitch += 1
                    continue
                write_wav(path, audio, NSYNTH_SAMPLE_RATE)
                result.rendered += 1
            result.examples[name] = example_fields(
                instrument_str=task.instrument_str,
                instrument=task.instrument,
                family=nsynth_family(instrument),
                source=nsynth_source(instrument),
                pitch=pitch,
                velocity=velocity,
                note=task.instrument * 100_000 + pitch * 1000 + velocity,
            )
    return result


def select_instruments(
    instruments: Sequence[Instrument], limit: int | None, seed: int
) -> list[int]:
    """Indices of at most `limit` instruments, taken family by family in turn so that a
    small selection still covers every NSynth family; random within a family (seeded)."""
    if limit is None or limit >= len(instruments):
        return list(range(len(instruments)))
    rng = np.random.default_rng([seed, 1])
    by_family: dict[str, list[int]] = defaultdict(list)
    for index, instrument in enumerate(instruments):
        by_family[nsynth_family(instrument)].append(index)
    queues = [list(rng.permutation(by_family[f])) for f in sorted(by_family)]
    chosen: list[int] = []
    while len(chosen) < limit:
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(int(queue.pop()))
    return sorted(chosen)


def assign_splits(
    instruments: Sequence[Instrument], fractions: Sequence[float], seed: int
) -> list[str]:
    """Split of each instrument, whole recording families at a time.

    Presets sharing the recording that plays key 60 form one group, and the voices of a
    csound model family another; groups in seeded random order fill test, then valid, up
    to their share of instruments (at least one group each when the share is non-zero);
    the rest is train.
    """
    groups: dict[object, list[int]] = defaultdict(list)
    for index, instrument in enumerate(instruments):
        if isinstance(instrument, Preset):
            groups[instrument.recording or ("alone", index)].append(index)
        else:
            groups[instrument.family].append(index)
    keys = sorted(groups, key=repr)
    order = np.random.default_rng([seed, 2]).permutation(len(keys))
    n = len(instruments)
    wanted = {
        split: max(1, round(share * n)) if share > 0 else 0
        for split, share in zip(SPLITS, fractions, strict=True)
    }
    splits = ["train"] * n
    filled = dict.fromkeys(SPLITS, 0)
    for position in order:
        members = groups[keys[position]]
        split = next((s for s in ("test", "valid") if filled[s] < wanted[s]), "train")
        filled[split] += len(members)
        for index in members:
            splits[index] = split
    return splits


def _check_options(
    max_instruments: int | None,
    pitches: PitchChoice,
    velocities: Sequence[int],
    split_fractions: Sequence[float],
    workers: int,
) -> None:
    if max_instruments is not None and max_instruments < 1:
        raise InstrecError(f"max_instruments must be at least 1 (got {max_instruments})")
    if isinstance(pitches, int) and pitches < 1:
        raise InstrecError(f"pitches must be at least 1 (got {pitches})")
    if isinstance(pitches, Sequence) and (
        not pitches or any(not MIN_PITCH <= p <= MAX_PITCH for p in pitches)
    ):
        raise InstrecError(f"pitches must lie in {MIN_PITCH}-{MAX_PITCH} (got {list(pitches)})")
    if not velocities or any(not 1 <= v <= 127 for v in velocities):
        raise InstrecError(f"velocities must lie in 1-127 (got {list(velocities)})")
    if len(split_fractions) != 3 or any(f < 0 for f in split_fractions):
        raise InstrecError(f"split fractions are three shares >= 0 (got {split_fractions})")
    if abs(sum(split_fractions) - 1) > 1e-6 or split_fractions[0] <= 0:
        raise InstrecError(f"split fractions must sum to 1 with train > 0 (got {split_fractions})")
    if workers < 1:
        raise InstrecError(f"workers must be at least 1 (got {workers})")


def render_notes(
    out_dir: str | Path,
    *,
    soundfonts: Sequence[str | Path] | None = None,
    max_instruments: int | None = 40,
    pitches: PitchChoice = 12,
    velocities: Sequence[int] = DEFAULT_VELOCITIES,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    sources_used: Sequence[str] = sources.DEFAULT_SOURCES,
    model_names: Sequence[str] | None = None,
    model_voices: int = sources.DEFAULT_MODEL_VOICES,
    holdout_from: str | Path | None = None,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Render NSynth-format notes into `out_dir` and return it (resumes a partial run).

    soundfonts: .sf2/.sf3 files (None: the installed Debian GM soundfonts).
    sources_used: source kinds (instrec.synth.sources); model_names: csound models (None:
    all that csound plays here); model_voices: voices per model.
    max_instruments: instruments to use, spread over families (None: all of them).
    pitches: None = every playable key in 21-108; an int = that many keys spread over
    each preset's playable range; a sequence = those keys where playable.
    velocities: MIDI velocities per pitch (NSynth uses 25, 50, 75, 100, 127).
    split_fractions: shares of instruments for train, valid, test (recording-disjoint).
    holdout_from: an ensembles render's families.json; no instrument that plays one of its
    held-out families (sources.replays_held_out) is rendered, so pre-training on these notes
    never hears what its cross-source test set plays.
    """
    velocities = tuple(int(v) for v in velocities)
    split_fractions = tuple(float(f) for f in split_fractions)
    _check_options(max_instruments, pitches, velocities, split_fractions, workers)
    if model_voices < 1:
        raise InstrecError(f"model_voices must be at least 1 (got {model_voices})")
    kinds = sources.parse_sources(sources_used)
    fonts = sources.source_soundfonts(kinds, soundfonts)
    chosen_models = sources.source_models(kinds, model_names)
    instruments: list[Instrument] = [
        *note_presets(fonts),
        *models.voices(chosen_models, model_voices),
    ]
    available = len(instruments)
    if holdout_from is not None:
        catalogue = sources.installed_catalogue(fonts)
        held_out = sources.held_out_families(holdout_from)
        instruments = [
            i for i in instruments if not sources.replays_held_out(i, catalogue, held_out)
        ]
    if not instruments:
        held = "" if holdout_from is None else f" that plays no family {holdout_from} holds out"
        raise InstrecError(f"{', '.join(fonts)}: no pitched instrument{held} to render")
    names = instrument_strs([(nsynth_family(i), nsynth_source(i)) for i in instruments])
    chosen = select_instruments(instruments, max_instruments, seed)
    splits = assign_splits([instruments[i] for i in chosen], split_fractions, seed)
    out = Path(out_dir)
    options = {
        "sources": list(kinds),
        "models": chosen_models,
        "model_voices": model_voices,
        "soundfonts": fonts,
        "max_instruments": max_instruments,
        "pitches": pitches if isinstance(pitches, int | None) else list(pitches),
        "velocities": list(velocities),
        "split_fractions": list(split_fractions),
        "seed": seed,
        # recorded when given: renders without it keep their manifest (and resume)
        **({"holdout_from": str(Path(holdout_from).resolve())} if holdout_from is not None else {}),
    }
    manifest = claim_folder(out, "render-notes.json", options)
    for split in SPLITS:
        (out / f"nsynth-{split}" / "audio").mkdir(parents=True, exist_ok=True)
    tasks = [
        NoteTask(
            instruments[i],
            i,
            names[i],
            split,
            pitches,
            velocities,
            out / f"nsynth-{split}" / "audio",
        )
        for i, split in zip(chosen, splits, strict=True)
    ]
    results = {
        r.instrument_str: r
        for r in run_tasks(
            _render_instrument,
            tasks,
            workers=workers,
            desc="notes",
            unit="instrument",
            progress=progress,
        )
    }
    _write_indexes(out, tasks, results)
    summary = {
        "instruments": {s: sum(t.split == s for t in tasks) for s in SPLITS},
        "notes": {
            s: sum(len(results[t.instrument_str].examples) for t in tasks if t.split == s)
            for s in SPLITS
        },
        "rendered": sum(r.rendered for r in results.values()),
        "existing": sum(r.existing for r in results.values()),
        "skipped_silent": sum(r.silent for r in results.values()),
        "skipped_off_pitch": sum(r.off_pitch for r in results.values()),
        "instruments_available": len(instruments),
        **(
            {"instruments_held_out": available - len(instruments)}
            if holdout_from is not None
            else {}
        ),
    }
    write_json(manifest, {"options": options, "summary": summary})
    return out


def _write_indexes(out: Path, tasks: Sequence[NoteTask], results: dict[str, NoteResult]) -> None:
    """examples.json per split (written last, atomically) and instruments.json."""
    for split in SPLITS:
        examples: dict[str, dict[str, object]] = {}
        for task in tasks:
            if task.split == split:
                examples.update(results[task.instrument_str].examples)
        write_json(out / f"nsynth-{split}" / "examples.json", examples)
    instruments = {
        task.instrument_str: {
            **_describe(task.played_by),
            "split": task.split,
            "playable_pitches": list(results[task.instrument_str].playable),
        }
        for task in tasks
    }
    write_json(out / "instruments.json", instruments)


def _describe(instrument: Instrument) -> dict[str, object]:
    """What instruments.json says an instrument is."""
    if isinstance(instrument, Preset):
        return {
            "source": "soundfont",
            "soundfont": instrument.soundfont,
            "bank": instrument.bank,
            "program": instrument.program,
            "preset_name": instrument.name,
            "recording": list(instrument.recording or ()),
        }
    return {
        "source": "csound",
        "model": instrument.model,
        "voice": instrument.index,
        "family": instrument.family,
        "params": dict(instrument.params),
    }
