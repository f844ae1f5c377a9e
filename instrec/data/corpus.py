"""A rendered music corpus (`instrec synth corpus`) as a multi-label clip store.

The corpus folder holds `render-corpus.json` (its options, with the class list, and a
summary once the render finished), `clips.csv` (one row per 1 s clip: file, clip, split,
group, work, labels) and the audio files it names. Each file becomes one entry whose
clips carry their own labels (what sounds in that second); splits and groups (scores)
are the render's. Every clip is brought to -12 LUFS, as IRMAS training clips are.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from instrec.audio import (
    ABSOLUTE_GATE_LUFS,
    DEFAULT_LUFS,
    SAMPLE_RATE,
    integrated_loudness,
    level_gain,
    load_audio,
)
from instrec.data.store import SPLITS, Entry
from instrec.errors import AudioError, InstrecError

MANIFEST = "render-corpus.json"
CLIPS_TABLE = "clips.csv"
COLUMNS = ("file", "clip", "split", "group", "work", "labels")
Report = Callable[[Path, str], None]  # (file, reason) for a skipped file


def read_classes(root: Path) -> tuple[str, ...]:
    """The corpus's class list, from a finished render's manifest."""
    path = root / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        classes = tuple(str(c) for c in manifest["options"]["classes"])
        finished = manifest["summary"] is not None
    except FileNotFoundError:
        raise InstrecError(
            f"{root}: no {MANIFEST} (render one with 'instrec synth corpus')"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InstrecError(f"{path}: not a corpus manifest ({error})") from None
    if not finished:
        raise InstrecError(f"{path}: the render has not finished (rerun it to complete it)")
    if not classes or len(set(classes)) != len(classes):
        raise InstrecError(f"{path}: the class list is empty or repeats a class")
    return classes


def index_corpus(root: Path, report: Report) -> tuple[list[Entry], tuple[str, ...]]:
    """One entry per audio file of clips.csv, its clips labelled row by row, and the
    class list. A file that is missing, has an unknown label, split or group, or whose
    clip numbers are not 0, 1, 2, ... is reported and left out."""
    classes = read_classes(root)
    number = {name: k for k, name in enumerate(classes)}
    rows = _read_rows(root / CLIPS_TABLE)
    entries = []
    for source, clips in rows.items():
        path = root / source
        problem = _problem(path, clips, number)
        if problem:
            report(path, problem)
            continue
        labels = tuple(tuple(sorted(number[n] for n in _names(c["labels"]))) for c in clips)
        union = tuple(sorted({k for clip in labels for k in clip}))
        first = clips[0]
        columns = {"work": first["work"]}
        entries.append(
            Entry(path, source, union, first["split"], int(first["group"]), columns, labels)
        )
    if not entries:
        raise InstrecError(f"{root / CLIPS_TABLE}: no usable clips")
    return entries, classes


def _read_rows(path: Path) -> dict[str, list[dict[str, str]]]:
    """clips.csv's rows grouped by file, in the order met."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InstrecError(f"{path}: unreadable clip table ({error})") from None
    if missing:
        raise InstrecError(f"{path}: no {missing[0]!r} column (needs {','.join(COLUMNS)})")
    files: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        files[row["file"] or ""].append(row)
    return files


def _names(text: str) -> list[str]:
    return [name for name in (text or "").split(";") if name]


def _problem(path: Path, clips: list[dict[str, str]], number: dict[str, int]) -> str | None:
    """Why a file's rows cannot be used (None: they can)."""
    if not path.is_file():
        return f"no such file (listed in {CLIPS_TABLE})"
    unknown = [n for clip in clips for n in _names(clip["labels"]) if n not in number]
    if unknown:
        return f"unknown class (label {unknown[0]!r} in {CLIPS_TABLE})"
    if [clip["clip"] for clip in clips] != [str(k) for k in range(len(clips))]:
        return f"its clips in {CLIPS_TABLE} are not numbered 0, 1, 2, ... in order"
    if len({(c["split"], c["group"], c["work"]) for c in clips}) != 1:
        return f"its clips in {CLIPS_TABLE} disagree on split, group or work"
    if clips[0]["split"] not in SPLITS or not clips[0]["group"].isdigit():
        return f"unknown split or group ({clips[0]['split']!r}, {clips[0]['group']!r})"
    return None


def corpus_clips(path: Path, lufs: float = DEFAULT_LUFS) -> np.ndarray:
    """(clips, 16,000) float32: the file at 16 kHz mono cut into its 1 s clips, each at
    `lufs`. A clip that is silent (no 400 ms block above the absolute gate) raises
    AudioError: it would be noise scaled up, under labels of instruments."""
    audio = load_audio(path)
    count = audio.size // SAMPLE_RATE
    if count == 0:
        raise AudioError(path, "is shorter than one 1 s clip")
    clips = audio[: count * SAMPLE_RATE].reshape(count, SAMPLE_RATE)
    loudness = [integrated_loudness(clip) for clip in clips]
    silent = [k for k, value in enumerate(loudness) if not np.isfinite(value)]
    if silent:
        gate = f"no 400 ms block above {ABSOLUTE_GATE_LUFS:g} LUFS"
        raise AudioError(path, f"clip {silent[0]} is silent ({gate})")
    gains = np.array([level_gain(value, lufs) for value in loudness])
    return (clips * gains[:, None]).astype(np.float32)
