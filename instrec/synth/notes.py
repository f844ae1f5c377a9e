"""Render an NSynth-format dataset of isolated notes from soundfont presets.

Layout, as the official release: <out>/nsynth-{train,valid,test}/examples.json and
<out>/nsynth-<split>/audio/<note_str>.wav (16 kHz mono 16-bit, 4 s: held 3 s, released).
Beside them <out>/instruments.json says which preset each instrument_str is, and
<out>/render-notes.json the options and counts of the run.

Notes are rendered at 48 kHz and decimated to 16 kHz (rendering at 16 kHz aliases badly
on bright presets at high pitches). Each preset's playable keys are probed first, and
notes that still come out near-silent are skipped and counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instrec.audio import resample
from instrec.errors import InstrecError
from instrec.synth.fluidsynth import Event, Synth
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
from instrec.synth.soundfonts import Preset, note_presets, resolve_soundfonts

RENDER_RATE = 48_000  # Hz: rendered here, then decimated to 16 kHz
PROBE_SECONDS = 0.5  # length of each probe note (held throughout)
PLAYABLE_PEAK = 10 ** (-50 / 20)  # a probe quieter than -50 dBFS peak: key not playable
SILENT_PEAK = 10 ** (-60 / 20)  # a rendered note quieter than -60 dBFS peak is skipped
NSYNTH_VELOCITIES = (25, 50, 75, 100, 127)
DEFAULT_VELOCITIES = (50, 100)
DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train, valid, test: shares of instruments

PitchChoice = int | Sequence[int] | None


@dataclass(frozen=True)
class NoteTask:
    """Everything one worker needs to render one instrument's notes."""

    preset: Preset
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


_SYNTH: Synth | None = None  # one long-lived synth per process


def _synth() -> Synth:
    global _SYNTH
    if _SYNTH is None:
        _SYNTH = Synth(RENDER_RATE)
    return _SYNTH


def render_note(preset: Preset, pitch: int, velocity: int) -> np.ndarray:
    """One NSynth note: (64000,) float32 at 16 kHz, held 3 s then released."""
    hold = round(HOLD_SECONDS * RENDER_RATE)
    events = [Event(0, "on", 0, pitch, velocity), Event(hold, "off", 0, pitch)]
    stereo = _synth().render({0: preset}, events, round(NOTE_SECONDS * RENDER_RATE))
    return resample(stereo.mean(axis=1), RENDER_RATE, NSYNTH_SAMPLE_RATE)


def playable_pitches(preset: Preset) -> tuple[int, ...]:
    """Keys 21-108 where a held probe note peaks above -50 dBFS."""
    keys = range(MIN_PITCH, MAX_PITCH + 1)
    return _synth().playable_keys(preset, keys, PROBE_SECONDS, PLAYABLE_PEAK)


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
    preset = task.preset
    result = NoteResult(task.instrument_str, playable_pitches(preset), {})
    for pitch in choose_pitches(result.playable, task.pitches):
        for velocity in task.velocities:
            name = note_str(task.instrument_str, pitch, velocity)
            path = task.audio_dir / f"{name}.wav"
            if path.exists():
                result.existing += 1
            else:
                audio = render_note(preset, pitch, velocity)
                if np.abs(audio).max() < SILENT_PEAK:
                    result.silent += 1
                    continue
                write_wav(path, audio, NSYNTH_SAMPLE_RATE)
                result.rendered += 1
            result.examples[name] = example_fields(
                instrument_str=task.instrument_str,
                instrument=task.instrument,
                family=str(preset.family),
                source=preset.source,
                pitch=pitch,
                velocity=velocity,
                note=task.instrument * 100_000 + pitch * 1000 + velocity,
            )
    return result


def select_instruments(presets: Sequence[Preset], limit: int | None, seed: int) -> list[int]:
    """Indices of at most `limit` presets, taken family by family in turn so that a small
    selection still covers every NSynth family; random within a family (seeded)."""
    if limit is None or limit >= len(presets):
        return list(range(len(presets)))
    rng = np.random.default_rng([seed, 1])
    by_family: dict[str, list[int]] = defaultdict(list)
    for index, preset in enumerate(presets):
        by_family[str(preset.family)].append(index)
    queues = [list(rng.permutation(by_family[f])) for f in sorted(by_family)]
    chosen: list[int] = []
    while len(chosen) < limit:
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(int(queue.pop()))
    return sorted(chosen)


def assign_splits(presets: Sequence[Preset], fractions: Sequence[float], seed: int) -> list[str]:
    """Split of each preset, whole recording families at a time.

    Presets sharing the recording that plays key 60 form one group; groups in seeded
    random order fill test, then valid, up to their share of instruments (at least one
    group each when the share is non-zero); the rest is train.
    """
    groups: dict[object, list[int]] = defaultdict(list)
    for index, preset in enumerate(presets):
        groups[preset.recording or ("alone", index)].append(index)
    keys = sorted(groups, key=repr)
    order = np.random.default_rng([seed, 2]).permutation(len(keys))
    n = len(presets)
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
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Render NSynth-format notes into `out_dir` and return it (resumes a partial run).

    soundfonts: .sf2/.sf3 files (None: the installed Debian GM soundfonts).
    max_instruments: presets to use, spread over families (None: all of them).
    pitches: None = every playable key in 21-108; an int = that many keys spread over
    each preset's playable range; a sequence = those keys where playable.
    velocities: MIDI velocities per pitch (NSynth uses 25, 50, 75, 100, 127).
    split_fractions: shares of instruments for train, valid, test (recording-disjoint).
    """
    velocities = tuple(int(v) for v in velocities)
    split_fractions = tuple(float(f) for f in split_fractions)
    _check_options(max_instruments, pitches, velocities, split_fractions, workers)
    fonts = resolve_soundfonts(soundfonts)
    presets = note_presets(fonts)
    if not presets:
        raise InstrecError(f"{', '.join(fonts)}: no pitched presets to render")
    names = instrument_strs([(str(p.family), p.source) for p in presets])
    chosen = select_instruments(presets, max_instruments, seed)
    splits = assign_splits([presets[i] for i in chosen], split_fractions, seed)
    out = Path(out_dir)
    options = {
        "soundfonts": fonts,
        "max_instruments": max_instruments,
        "pitches": pitches if isinstance(pitches, int | None) else list(pitches),
        "velocities": list(velocities),
        "split_fractions": list(split_fractions),
        "seed": seed,
    }
    manifest = claim_folder(out, "render-notes.json", options)
    for split in SPLITS:
        (out / f"nsynth-{split}" / "audio").mkdir(parents=True, exist_ok=True)
    tasks = [
        NoteTask(
            presets[i], i, names[i], split, pitches, velocities, out / f"nsynth-{split}" / "audio"
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
        "instruments_available": len(presets),
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
            "soundfont": task.preset.soundfont,
            "bank": task.preset.bank,
            "program": task.preset.program,
            "preset_name": task.preset.name,
            "recording": list(task.preset.recording or ()),
            "split": task.split,
            "playable_pitches": list(results[task.instrument_str].playable),
        }
        for task in tasks
    }
    write_json(out / "instruments.json", instruments)
