"""NSynth as distributed: `nsynth-<split>/examples.json` plus `audio/<note_str>.wav`.

The paper merges the official train and valid splits (whose instruments do not overlap),
holds out 4 % of every instrument's notes for validation, so each of the 1,006 instruments
is trained on, and drops near-silent notes (pitches an instrument cannot play) by an
energy threshold. The official test split is kept as "test". Notes are 4 s, 16 kHz mono,
16-bit; their level is kept as is (the paper normalises only IRMAS) and the first second
is the model input. Labels are the fine-grained `instrument_str` ids; the family is a
metadata column.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile

from instrec.audio import SAMPLE_RATE, load_audio
from instrec.data.store import Entry
from instrec.errors import AudioError, InstrecError

OFFICIAL_SPLITS = ("train", "valid", "test")
VALID_FRACTION = 0.04  # of each instrument's train+valid notes
MIN_ENERGY_DB = -60.0  # dBFS: mean power of the whole 4 s note below this is "near-silent"
Report = Callable[[Path, str], None]  # (file, reason) for a skipped file
_FIELDS = (
    "instrument_str",
    "instrument_family_str",
    "instrument_source_str",
    "pitch",
    "velocity",
    "sample_rate",
)


def find_split_folders(root: Path, report: Report) -> dict[str, Path]:
    """Official split -> its `nsynth-<split>` folder under `root` (or `root` itself when it
    is one); a folder without examples.json is reported and left out."""
    candidates = {split: root / f"nsynth-{split}" for split in OFFICIAL_SPLITS}
    if root.name.startswith("nsynth-") and root.name[7:] in OFFICIAL_SPLITS:
        candidates = {root.name[7:]: root}
    found = {}
    for split, folder in candidates.items():
        if not folder.is_dir():
            continue
        if (folder / "examples.json").is_file():
            found[split] = folder
        else:
            report(folder / "examples.json", "missing (the split's note list)")
    if not found:
        raise InstrecError(f"{root}: no nsynth-train/valid/test folder with an examples.json")
    return found


def read_examples(path: Path) -> dict[str, dict]:
    """note_str -> note record from an examples.json (InstrecError if it is not one)."""
    try:
        examples = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InstrecError(f"{path}: unreadable examples.json ({error})") from None
    if not isinstance(examples, dict):
        raise InstrecError(f"{path}: expected a JSON object of note_str -> note")
    return examples


def index_notes(root: Path, report: Report) -> tuple[list[Entry], tuple[str, ...]]:
    """Every listed note of the found splits, and the sorted instrument ids (the classes).

    Notes with missing fields, a sample rate other than 16 kHz or no wav are reported, as
    are wavs in audio/ that examples.json does not list. Each entry's group is its
    instrument's class index; official train+valid notes are "train", test notes "test".
    """
    notes: list[tuple[str, str, dict, Path]] = []  # (official split, note_str, record, folder)
    for split, folder in find_split_folders(root, report).items():
        examples_path = folder / "examples.json"
        examples = read_examples(examples_path)
        for note_str, record in sorted(examples.items()):
            wav = folder / "audio" / f"{note_str}.wav"
            problem = _record_problem(record)
            if problem:
                report(examples_path, f"unusable note record ({note_str}: {problem})")
            elif not wav.is_file():
                report(wav, "missing (listed in examples.json)")
            else:
                notes.append((split, note_str, record, folder))
        for wav in sorted((folder / "audio").glob("*.wav")):
            if wav.stem not in examples:
                report(wav, "not listed in examples.json (no labels)")
    classes = tuple(sorted({record["instrument_str"] for _, _, record, _ in notes}))
    number = {name: k for k, name in enumerate(classes)}
    entries = []
    for split, note_str, record, folder in notes:
        k = number[record["instrument_str"]]
        columns = {
            "note": note_str,
            "official_split": split,
            "family": str(record["instrument_family_str"]),
            "instrument_source": str(record["instrument_source_str"]),
            "pitch": str(record["pitch"]),
            "velocity": str(record["velocity"]),
        }
        source = (folder / "audio" / f"{note_str}.wav").relative_to(folder.parent).as_posix()
        wav = folder / "audio" / f"{note_str}.wav"
        entries.append(Entry(wav, source, (k,), "test" if split == "test" else "train", k, columns))
    return entries, classes


def _record_problem(record: object) -> str:
    """Why a note record is unusable, or "" if it is fine."""
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [name for name in _FIELDS if name not in record]
    if missing:
        return f"missing field {missing[0]!r}"
    if record["sample_rate"] != SAMPLE_RATE:
        return f"sample_rate {record['sample_rate']} Hz; NSynth notes are {SAMPLE_RATE} Hz"
    return ""


def hold_out(entries: list[Entry], valid_fraction: float, seed: int) -> list[Entry]:
    """Move a seeded `valid_fraction` of the training notes to "valid", stratified by
    instrument: round(fraction x notes) in all, shared out by largest remainder, and at
    least one note of every instrument left in training."""
    groups = np.array([e.group if e.split == "train" else -1 for e in entries])
    pools = [np.flatnonzero(groups == g) for g in np.unique(groups[groups >= 0])]
    if not pools:
        return entries
    quotas = valid_fraction * np.array([pool.size for pool in pools], dtype=float)
    counts = np.floor(quotas).astype(int)
    remaining = round(quotas.sum()) - counts.sum()
    counts[np.argsort(counts - quotas, kind="stable")[:remaining]] += 1  # largest remainders
    rng = np.random.default_rng(seed)
    valid = np.zeros(len(entries), dtype=bool)
    for pool, count in zip(pools, counts, strict=True):
        valid[rng.choice(pool, size=min(count, pool.size - 1), replace=False)] = True
    return [replace(e, split="valid") if v else e for e, v in zip(entries, valid, strict=True)]


def keep_note_fraction(entries: list[Entry], fraction: float, seed: int) -> list[Entry]:
    """Keep a seeded `fraction` of every instrument's training notes (at least one)."""
    if fraction >= 1.0:
        return entries
    rng = np.random.default_rng(seed)
    train = np.array([e.split == "train" for e in entries])
    groups = np.array([e.group for e in entries])
    keep = ~train
    for group in np.unique(groups[train]):
        members = np.flatnonzero(train & (groups == group))
        count = max(1, round(fraction * members.size))
        keep[rng.choice(members, size=count, replace=False)] = True
    return [e for e, k in zip(entries, keep, strict=True) if k]


def energy_db(x: np.ndarray) -> float:
    """Mean power of a signal in dB relative to a full-scale square wave (dBFS); -inf if 0."""
    power = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10 * np.log10(power) if power > 0 else float("-inf")


def note_clip(
    path: Path, min_energy_db: float = MIN_ENERGY_DB, clip_length: int = SAMPLE_RATE
) -> np.ndarray:
    """(1, clip_length) float32: the first second of a 16 kHz note, level unchanged.

    Raises AudioError for a file that is not 16 kHz or a near-silent note (whole-note
    energy under `min_energy_db` dBFS).
    """
    try:
        rate = soundfile.info(str(path)).samplerate
    except Exception:  # libsndfile's errors share no useful base class
        rate = None  # undecodable: load_audio below says why
    if rate is not None and rate != SAMPLE_RATE:
        raise AudioError(path, f"wrong sample rate ({rate} Hz; NSynth notes are {SAMPLE_RATE} Hz)")
    note = load_audio(path)
    level = energy_db(note)
    if level < min_energy_db:
        raise AudioError(path, f"near-silent note ({level:.1f} dBFS < {min_energy_db:g} dBFS)")
    clip = np.pad(note[:clip_length], (0, max(0, clip_length - note.size)))
    return clip[None, :]  # (1, samples)
