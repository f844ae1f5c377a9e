"""IRMAS as distributed: training excerpts named by label and genre, test files with a .txt.

Training: `IRMAS-TrainingData/<cls>/<name>.wav`, 3 s excerpts whose name carries the label,
an optional drums tag, the genre and the excerpt number, e.g. `115__[cel][nod][cla]0055__1`.
The song is the name without its `__k` excerpt suffix; validation is song-disjoint.
Testing: `IRMAS-TestingData-Part1/2/3/**/<name>.wav`, each with `<name>.txt` beside it
holding one class code per line. Every file becomes 16 kHz mono at -12 LUFS.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instrec.audio import (
    ABSOLUTE_GATE_LUFS,
    DEFAULT_LUFS,
    SAMPLE_RATE,
    integrated_loudness,
    level_gain,
    load_audio,
    load_normalized,
)
from instrec.data.store import Entry, sample_units
from instrec.errors import AudioError, InstrecError
from instrec.labels import IRMAS_CLASSES

TRAIN_FOLDER = "IRMAS-TrainingData"
TEST_FOLDER_PREFIX = "IRMAS-TestingData-Part"
VALID_FRACTION = 0.15  # of each class's excerpts, whole songs at a time
LOUDNESS_UNITS = ("clip", "excerpt")  # what is brought to the target loudness
Report = Callable[[Path, str], None]  # (file, reason) for a skipped file

_TRAIN_NAME = re.compile(
    r"^(?:(?P<prefix>[^\[\]]*?)__)?"  # optional prefix, e.g. "115__"
    r"\[(?P<label>[^\]]+)\]"  # [cel]
    r"(?:\[(?P<drums>dru|nod)\])?"  # [dru] with drums, [nod] without
    r"\[(?P<genre>[^\]]+)\]"  # [cla], [pop_roc], ...
    r"(?P<number>[^\[\]]*?)"  # 0055
    r"(?:__(?P<excerpt>\d+))?$"  # __1: the excerpt of the song
)


@dataclass(frozen=True)
class TrainName:
    """The fields of an IRMAS training file name (without .wav)."""

    label: str
    drums: str  # "dru", "nod" or "" when the name has no tag
    genre: str
    song: str  # the name without its "__k" suffix
    excerpt: int  # k, 0 when absent


def parse_train_name(stem: str) -> TrainName:
    """Split an IRMAS training name like `115__[cel][nod][cla]0055__1` into its fields.

    Raises ValueError when the name has no `[label][genre]` part.
    """
    match = _TRAIN_NAME.match(stem)
    if match is None:
        raise ValueError(f"name {stem!r} does not look like [label][genre]number__k")
    excerpt = match["excerpt"]
    song = stem[: -len(excerpt) - 2] if excerpt else stem
    return TrainName(match["label"], match["drums"] or "", match["genre"], song, int(excerpt or 0))


def find_train_folder(root: Path) -> Path:
    """The IRMAS-TrainingData folder: `root` itself or its child of that name."""
    for folder in (root / TRAIN_FOLDER, root):
        if any((folder / code).is_dir() for code in IRMAS_CLASSES):
            return folder
    raise InstrecError(f"{root}: no {TRAIN_FOLDER}/<class>/ folders (e.g. {TRAIN_FOLDER}/cel)")


def index_training(root: Path, report: Report) -> list[Entry]:
    """One entry per training excerpt, label from its folder; songs numbered in name order.

    Files whose name does not parse or whose label disagrees with the folder are reported.
    Splits are left "train"; `store.split_groups` assigns validation by song.
    """
    folder = find_train_folder(root)
    parsed: list[tuple[Path, TrainName]] = []
    for code in IRMAS_CLASSES:
        for path in sorted((folder / code).glob("*.wav")):
            try:
                name = parse_train_name(path.stem)
            except ValueError as error:
                report(path, f"unparseable IRMAS training name ({error})")
                continue
            if name.label != code:
                report(path, f"label differs from its folder ([{name.label}] in {code}/)")
                continue
            parsed.append((path, name))
    for path in sorted(folder.glob("*/*.wav")):
        if path.parent.name not in IRMAS_CLASSES:
            report(path, f"not in an IRMAS class folder ({path.parent.name}/)")
    songs = {song: k for k, song in enumerate(sorted({name.song for _, name in parsed}))}
    return [
        Entry(
            path=path,
            source=path.relative_to(folder.parent).as_posix(),
            labels=(IRMAS_CLASSES.index(name.label),),
            split="train",
            group=songs[name.song],
            columns={
                "song": name.song,
                "excerpt": str(name.excerpt),
                "genre": name.genre,
                "drums": name.drums,
            },
        )
        for path, name in parsed
    ]


def keep_train_fraction(entries: list[Entry], fraction: float, seed: int) -> list[Entry]:
    """Keep a seeded `fraction` of the training songs of each class; validation untouched."""
    if fraction >= 1.0:
        return entries
    train = [e for e in entries if e.split == "train"]
    groups = np.array([e.group for e in train])
    keep = set(sample_units(groups, np.array([e.labels[0] for e in train]), fraction, seed))
    return [e for e in entries if e.split != "train" or e.group in keep]


def excerpt_clips(
    path: Path,
    clip_length: int = SAMPLE_RATE,
    lufs: float = DEFAULT_LUFS,
    normalize: str = "clip",
) -> np.ndarray:
    """(clips, clip_length) float32: the excerpt at 16 kHz mono cut into consecutive 1 s
    clips (a 3 s excerpt gives 3; a tail shorter than a clip is dropped; an excerpt shorter
    than one clip is zero-padded to one), each at `lufs`.

    `normalize`: "clip" (the authors' code: each clip to `lufs` after slicing; a clip with
    no audible 400 ms block is dropped) or "excerpt" (the excerpt to `lufs` as a whole,
    then cut). An excerpt with no audible clip raises AudioError.
    """
    if normalize not in LOUDNESS_UNITS:
        raise InstrecError(f"normalize must be one of {', '.join(LOUDNESS_UNITS)}")
    audio = load_normalized(path, lufs) if normalize == "excerpt" else load_audio(path)
    count = max(1, audio.size // clip_length)
    audio = np.pad(audio, (0, max(0, count * clip_length - audio.size)))
    clips = audio[: count * clip_length].reshape(count, clip_length)  # (clips, samples)
    if normalize == "excerpt":
        return clips
    loudness = np.array([integrated_loudness(clip) for clip in clips])  # (clips,) LUFS
    audible = np.isfinite(loudness)
    if not audible.any():
        gate = f"no clip with a 400 ms block above {ABSOLUTE_GATE_LUFS:g} LUFS"
        raise AudioError(path, f"is silent ({gate})")
    gains = np.array([level_gain(value, lufs) for value in loudness[audible]])
    return (clips[audible] * gains[:, None]).astype(np.float32)


def find_testing_files(root: Path) -> list[Path]:
    """Every wav under the IRMAS-TestingData-Part* folders (or under `root` if it is one)."""
    parts = sorted(p for p in root.glob(f"{TEST_FOLDER_PREFIX}*") if p.is_dir())
    folders = parts or [root]
    files = sorted(path for folder in folders for path in folder.rglob("*.wav"))
    if not files:
        raise InstrecError(f"{root}: no {TEST_FOLDER_PREFIX}*/ folders with wav files")
    return files


def read_test_labels(path: Path) -> tuple[int, ...]:
    """Class indices from an IRMAS test .txt: one code per line, maybe followed by tabs or
    spaces; blank lines ignored. Raises ValueError for an unknown code or no code."""
    codes = [
        line.split()[0]
        for line in path.read_text(encoding="utf-8-sig").splitlines()
        if line.strip()
    ]
    unknown = [code for code in codes if code not in IRMAS_CLASSES]
    if unknown:
        raise ValueError(f"unknown class code {unknown[0]!r} (known: {', '.join(IRMAS_CLASSES)})")
    if not codes:
        raise ValueError("no class code")
    return tuple(sorted({IRMAS_CLASSES.index(code) for code in codes}))


def index_testing(root: Path, report: Report) -> list[Entry]:
    """One entry per test file with its labels; files without a usable .txt are reported."""
    entries = []
    for number, path in enumerate(find_testing_files(root)):
        label_path = path.with_suffix(".txt")
        if not label_path.is_file():
            report(path, f"no label file beside it ({label_path.name})")
            continue
        try:
            labels = read_test_labels(label_path)
        except (ValueError, OSError) as error:
            report(label_path, f"bad label file ({error})")
            continue
        entries.append(Entry(path, path.relative_to(root).as_posix(), labels, "test", number))
    return entries


def whole_file(path: Path, lufs: float = DEFAULT_LUFS) -> np.ndarray:
    """(1, samples) float32: the whole file at 16 kHz mono, normalised to `lufs` (silent
    files raise AudioError)."""
    return load_normalized(path, lufs)[None, :]
