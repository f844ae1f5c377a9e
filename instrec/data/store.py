"""Prepared clip store: audio decoded once into one memory-mapped array plus a metadata table.

An epoch reads clips straight from the page cache instead of decoding, resampling and
normalising wav files again. Layout of a store folder (format version 1):

    store.json     header: kind, classes, sample_rate (Hz), clip_length (samples or null),
                   dtype, count, total_samples, the preparation options, items kept and
                   skipped (reason -> count)
    audio.i16      every item's samples back to back, raw little-endian int16
    scales.npy     (count,) float32: item i's sample value = int16 x scales[i]
    offsets.npy    (count + 1,) int64: item i is audio[offsets[i]:offsets[i + 1]]
    targets.npy    (count, classes) float32 multi-hot labels
    metadata.csv   one row per item: index, source (path relative to the dataset root),
                   split (train/valid/test), group (int), labels (codes joined by ';') and
                   the loader's own columns (NSynth pitch/family, IRMAS song/genre, ...)
    content.sha256 written on first need: the content digest (content_digest), cached

Kinds: nsynth and irmas-train hold one label per item; irmas-test and corpus (rendered
music, instrec.synth.corpus: every part that sounds in a 1 s clip) any number; a folder
store whatever its CSV says.

Samples are int16 with one float32 scale per item: 2 bytes a sample, so the full NSynth
(305,979 one-second notes) takes 9.8 GB, half of float32. NSynth's 16-bit notes are stored
bit-exactly (scale 1/32768); other audio (resampled, loudness-normalised IRMAS whose peaks
may exceed 1.0) is scaled to its own peak, keeping 16 bits below it (about -96 dB).
int16 -> float32 is also ~5x faster to convert than float16 in numpy, which has no
vectorised half-precision conversion (a batch of 64 one-second clips: 0.8 ms vs 4.3 ms).
NSynth's targets.npy (305,979 x 1,006 float32) adds 1.2 GB, paged in only where read.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from instrec.atomic import (
    check_replaceable,
    remove_leftovers,
    replace_folder,
    temp_folder,
    write_text_atomic,
    writing,
)
from instrec.errors import InstrecError

FORMAT = "instrec-clip-store"
VERSION = 1
KINDS = ("nsynth", "irmas-train", "irmas-test", "folder", "corpus")
SINGLE_LABEL_KINDS = ("nsynth", "irmas-train")  # one label per item, by how they are read
MULTI_LABEL_KINDS = ("irmas-test", "corpus")  # any number (a corpus clip: every part heard)
SPLITS = ("train", "valid", "test")
AUDIO_DTYPE = np.dtype("<i2")
FULL_SCALE = 32_768  # int16 steps per unit of a 16-bit source
HEADER, AUDIO, SCALES, OFFSETS, TARGETS, METADATA = (
    "store.json",
    "audio.i16",
    "scales.npy",
    "offsets.npy",
    "targets.npy",
    "metadata.csv",
)
BASE_COLUMNS = ("index", "source", "split", "group", "labels")
CONTENT = "content.sha256"
# What training reads: the header fields that shape it (not the creation time, the dataset
# root or the tool versions) and every data file, in this order.
CONTENT_HEADER = ("format", "version", "kind", "classes", "sample_rate", "clip_length",
                  "dtype", "count", "total_samples", "splits")  # fmt: skip
CONTENT_FILES = (HEADER, AUDIO, SCALES, OFFSETS, TARGETS, METADATA)


@dataclass(frozen=True)
class Entry:
    """One source file to decode: its labels (class indices), split, group and extra columns.

    A loader lists entries; decoding turns each into one or more clips, every clip a row.
    `clip_labels`, when given, labels each clip on its own (a rendered corpus: what sounds
    in that second); `labels` is then their union.
    """

    path: Path
    source: str  # path relative to the dataset root, as written in metadata.csv
    labels: tuple[int, ...]
    split: str
    group: int
    columns: dict[str, str] = field(default_factory=dict)
    clip_labels: tuple[tuple[int, ...], ...] | None = None


class ClipStore:
    """Read-only view of a prepared store; audio is memory-mapped, never decoded.

    Pickles as its path (a DataLoader worker reopens the maps instead of copying them).
    """

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        self.kind: str = header["kind"]
        self.classes: tuple[str, ...] = tuple(header["classes"])
        self.sample_rate: int = int(header["sample_rate"])
        self.clip_length: int | None = header["clip_length"]
        self._count = int(header["count"])
        self._samples = np.memmap(
            path / AUDIO, dtype=AUDIO_DTYPE, mode="r", shape=(int(header["total_samples"]),)
        )
        self.offsets: np.ndarray = np.load(path / OFFSETS)
        self.scales: np.ndarray = np.load(path / SCALES)
        self.targets: np.ndarray = np.load(path / TARGETS, mmap_mode="r")
        self._check_consistent()

    def _check_consistent(self) -> None:
        """The files agree with the header and each other, so no item reads another's
        samples or a label of the wrong class (ValueError says which does not)."""
        count, total, offsets = self._count, self._samples.size, self.offsets
        stored = (self.path / AUDIO).stat().st_size // AUDIO_DTYPE.itemsize
        shape = (count, len(self.classes))
        problems = [
            (stored != total, f"{AUDIO} holds {stored} samples, the header {total}"),
            (offsets.shape != (count + 1,), f"{OFFSETS} lists {offsets.size - 1} items"),
            (offsets.size and (offsets[0] != 0 or offsets[-1] != total),
             f"{OFFSETS} does not span the {total} samples"),
            (bool(np.any(np.diff(offsets) <= 0)), f"{OFFSETS} is not increasing"),
            (self.scales.shape != (count,), f"{SCALES} has {self.scales.size} scales, not {count}"),
            (not np.isfinite(self.scales).all(), f"{SCALES} holds non-finite values"),
            (self.targets.shape != shape, f"{TARGETS} is {self.targets.shape}, not {shape}"),
        ]  # fmt: skip
        for bad, what in problems:
            if bad:
                raise ValueError(f"{what}; prepare it again")

    @classmethod
    def open(cls, path: str | Path) -> ClipStore:
        """Open a store written by `instrec prepare`; a missing or foreign folder raises
        InstrecError naming it."""
        path = Path(path)
        header_path = path / HEADER
        if not header_path.is_file():
            raise InstrecError(f"{path}: not a clip store (no {HEADER}; run 'instrec prepare')")
        try:
            header = json.loads(header_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise InstrecError(f"{header_path}: unreadable store header ({error})") from None
        ours = isinstance(header, dict) and is_store_header(header)
        if not ours or header.get("version") != VERSION:
            raise InstrecError(f"{header_path}: not a version-{VERSION} {FORMAT} header")
        for name in (AUDIO, SCALES, OFFSETS, TARGETS, METADATA):
            if not (path / name).is_file():
                raise InstrecError(f"{path / name}: missing from the store")
        try:
            return cls(path, header)
        except (OSError, ValueError) as error:
            raise InstrecError(f"{path}: damaged store ({error})") from None

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (ClipStore.open, (str(self.path),))

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"ClipStore({str(self.path)!r}, kind={self.kind!r}, items={len(self)})"

    @cached_property
    def _table(self) -> dict[str, np.ndarray]:
        """metadata.csv as column -> (N,) str array, read on first use."""
        with open(self.path / METADATA, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            names = next(reader)
            rows = list(reader)
        if len(rows) != len(self):
            raise InstrecError(f"{self.path / METADATA}: {len(rows)} rows for {len(self)} items")
        columns = zip(*rows, strict=True)
        return {name: np.array(v, dtype=str) for name, v in zip(names, columns, strict=True)}

    @property
    def columns(self) -> tuple[str, ...]:
        """Names of the metadata columns (the base ones first, then the loader's)."""
        return tuple(self._table)

    def column(self, name: str) -> np.ndarray:
        """(N,) str array of one metadata column, e.g. "family" (NSynth) or "song" (IRMAS)."""
        if name not in self._table:
            raise InstrecError(f"{self.path}: no metadata column {name!r} ({self.columns})")
        return self._table[name]

    @cached_property
    def splits(self) -> np.ndarray:
        """(N,) str: "train", "valid" or "test"."""
        return self._table["split"]

    @cached_property
    def groups(self) -> np.ndarray:
        """(N,) int64: NSynth instrument index, IRMAS song index, folder file index."""
        return self._table["group"].astype(np.int64)

    @cached_property
    def sources(self) -> np.ndarray:
        """(N,) str: the file each item came from, relative to the dataset root."""
        return self._table["source"]

    @cached_property
    def multi_label(self) -> bool:
        """Whether an item may hold other than exactly one label, so that training needs a
        sigmoid per class rather than a softmax (known from the kind; a folder store's
        targets are looked at)."""
        if self.kind in SINGLE_LABEL_KINDS or self.kind in MULTI_LABEL_KINDS:
            return self.kind in MULTI_LABEL_KINDS
        return bool((self.labels < 0).any())

    @cached_property
    def labels(self) -> np.ndarray:
        """(N,) int64 class index of single-label items; -1 where an item has 0 or 2+ labels.

        Cheaper than `targets` for softmax training on NSynth's 1,006 classes."""
        labels = np.full(len(self), -1, dtype=np.int64)
        chunk = 8_192  # rows of targets at a time (NSynth: 33 MB)
        for start in range(0, len(self), chunk):
            block = np.asarray(self.targets[start : start + chunk])  # (chunk, classes)
            single = block.sum(axis=1) == 1
            labels[start : start + chunk][single] = block[single].argmax(axis=1)
        return labels

    def indices(self, split: str, fraction: float = 1.0, seed: int = 0) -> np.ndarray:
        """int64 indices of the items in `split`, optionally a seeded `fraction` of them.

        The sampling unit is the song for IRMAS-train (groups) and the item otherwise;
        units are drawn per class so every class keeps at least one (the paper's Fig. 4
        trains on 10 %...100 % of the IRMAS training songs). A corpus, whose clips hold
        several classes each, gives exactly round(fraction x items) clips drawn uniformly,
        so that a pre-training can be sized to a number of optimiser steps.
        """
        if split not in SPLITS:
            raise InstrecError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
        chosen = np.flatnonzero(self.splits == split).astype(np.int64)
        if fraction >= 1.0 or chosen.size == 0:
            return chosen
        if self.kind == "corpus":
            if not 0.0 < fraction <= 1.0:
                raise InstrecError(f"fraction must be in (0, 1], got {fraction}")
            count = max(1, round(fraction * chosen.size))
            return np.sort(np.random.default_rng(seed).choice(chosen, count, replace=False))
        units = self.groups[chosen] if self.kind == "irmas-train" else chosen
        keep = sample_units(units, self.labels[chosen], fraction, seed)
        return chosen[np.isin(units, keep)]

    def audio(self, i: int) -> np.ndarray:
        """float32 (samples,) of item i, at `sample_rate` Hz."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} items")
        i %= len(self)
        samples = self._samples[self.offsets[i] : self.offsets[i + 1]]
        return np.multiply(samples, self.scales[i], dtype=np.float32)

    def batch(self, idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """float32 (len(idx), clip_length) clips of a fixed-length store."""
        if self.clip_length is None:
            raise InstrecError(f"{self.path}: items have different lengths; use audio(i)")
        idx = np.asarray(idx, dtype=np.int64)
        clips = self._samples[: len(self) * self.clip_length].reshape(len(self), -1)
        return np.multiply(clips[idx], self.scales[idx, None], dtype=np.float32)

    @property
    def skipped(self) -> dict[str, int]:
        """Reason -> number of source files left out when the store was prepared."""
        return dict(self.header.get("skipped", {}))


def sample_units(units: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded `fraction` of the distinct `units` (songs, notes) of each class, at least one.

    `labels` gives each unit's class per row (rows of one unit share it); returns unit ids.
    """
    if not 0.0 < fraction <= 1.0:
        raise InstrecError(f"fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    for label in np.unique(labels):
        pool = np.unique(units[labels == label])
        count = max(1, round(fraction * pool.size))
        kept.append(rng.choice(pool, size=count, replace=False))
    return np.concatenate(kept) if kept else np.zeros(0, dtype=units.dtype)


def split_groups(entries: list[Entry], valid_fraction: float, seed: int) -> list[Entry]:
    """Move whole groups (songs) of "train" entries to "valid" until at least
    `valid_fraction` of each class's entries are there (overshooting by under one group);
    no group ends up on both sides and each class keeps at least one group in training.
    Entries are stratified by their first label."""
    train = [e for e in entries if e.split == "train"]
    if not train or valid_fraction <= 0:
        return entries
    groups = np.array([e.group for e in train])
    labels = np.array([e.labels[0] if e.labels else -1 for e in train])
    rng = np.random.default_rng(seed)
    valid: set[int] = set()
    for label in np.unique(labels):
        pool, sizes = np.unique(groups[labels == label], return_counts=True)
        target, taken = valid_fraction * sizes.sum(), 0
        for k in rng.permutation(pool.size)[:-1]:  # the last group always stays in train
            if taken >= target:
                break
            valid.add(int(pool[k]))
            taken += sizes[k]
    return [
        replace(e, split="valid") if e.split == "train" and e.group in valid else e for e in entries
    ]


def cover_classes_in_train(entries: list[Entry]) -> list[Entry]:
    """Move to "train" the validation entries of any class that has no training entry left
    (e.g. after bad files were skipped), so every validation class was seen in training.
    A store with no training entry at all is for evaluation (its validation split picks
    thresholds) and is left as it is."""
    trained = {label for e in entries if e.split == "train" for label in e.labels}
    if not trained:
        return entries
    return [
        replace(e, split="train") if e.split == "valid" and not trained.issuperset(e.labels) else e
        for e in entries
    ]


def to_int16(x: np.ndarray) -> tuple[np.ndarray, float]:
    """(int16 samples, scale) with x ~= samples * scale: exact for 16-bit sources, else
    16 bits below the signal's own peak."""
    steps = x.astype(np.float64) * FULL_SCALE
    in_range = steps.size and steps.min() >= -FULL_SCALE and steps.max() <= FULL_SCALE - 1
    if in_range and np.array_equal(steps, np.rint(steps)):
        return steps.astype(np.int16), 1.0 / FULL_SCALE
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    scale = float(np.float32(peak / (FULL_SCALE - 1))) if peak > 0 else 1.0 / FULL_SCALE
    return np.rint(x / scale).astype(np.int16), scale


def content_digest(path: str | Path) -> str:
    """sha256 (hex) of what training reads from the store at `path` (CONTENT_HEADER's
    fields and the data files), so that the same sources prepared into two folders, on two
    machines, at two times, get the same digest; any changed sample, scale or label gives
    another. Hashed in chunks once and cached in STORE/content.sha256, reused while the
    files' sizes and modification times (ns) are those it was computed from."""
    path = Path(path)
    stamp = _content_stamp(path)
    cache = path / CONTENT
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # else: hash again
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached["files"] == stamp:
            return str(cached["sha256"])
    digest = _hash_content(path)
    with contextlib.suppress(InstrecError):  # a read-only store is simply hashed next time
        write_text_atomic(cache, json.dumps({"sha256": digest, "files": stamp}) + "\n")
    return digest


def _content_stamp(path: Path) -> dict[str, list[int]]:
    """File name -> [size (bytes), modification time (ns)] of the hashed files."""
    if not (path / HEADER).is_file():
        raise InstrecError(f"{path}: not a clip store (no {HEADER}; run 'instrec prepare')")
    stamp = {}
    for name in CONTENT_FILES:
        try:
            stat = (path / name).stat()
        except OSError:
            raise InstrecError(f"{path / name}: missing from the store") from None
        stamp[name] = [stat.st_size, stat.st_mtime_ns]
    return stamp


def _hash_content(path: Path) -> str:
    try:
        header = json.loads((path / HEADER).read_text(encoding="utf-8"))
        fields = {key: header.get(key) for key in CONTENT_HEADER}
    except (OSError, ValueError, AttributeError) as error:
        raise InstrecError(f"{path / HEADER}: unreadable store header ({error})") from None
    content = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    for name in CONTENT_FILES[1:]:
        content.update(f"{name} {file_sha256(path / name)}\n".encode())
    return content.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 (hex) of a file, read in chunks (a store's audio is gigabytes)."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise InstrecError(f"{path}: cannot read ({error.strerror or error})") from None


def is_store_header(header: dict[str, Any]) -> bool:
    """Whether a parsed store.json was written by instrec (any version)."""
    return header.get("format") == FORMAT


class StoreWriter:
    """Builds a store in a temporary sibling folder and renames it into place at the end.

    Use as a context manager: leaving the block with an exception removes the temporary
    folder, so no half-written store is ever left at `path`. With `force` an existing
    store is replaced, but never a file or folder that is not a store. Folders that killed
    writers left beside `path` are removed first. Writers that may run at the same time
    claim `path` first (instrec.atomic.claim; `instrec prepare` does).
    """

    def __init__(self, path: str | Path, kind: str, classes: Sequence[str], force: bool = False):
        self.path = Path(path)
        if kind not in KINDS:
            raise InstrecError(f"unknown store kind {kind!r} (known: {', '.join(KINDS)})")
        remove_leftovers(self.path)
        check_replaceable(self.path, HEADER, "a clip store", force, is_store_header)
        self.kind = kind
        self.classes = tuple(classes)
        self.tmp = temp_folder(self.path)
        with writing(self.path):
            try:
                self._audio = open(self.tmp / AUDIO, "wb")  # noqa: SIM115 - closed in finish/abort
            except OSError:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise
        self._offsets = [0]
        self._scales: list[float] = []
        self.entries: list[Entry] = []  # kept entries; may be re-split before finish
        # (entry number, per-clip columns, the clip's labels)
        self._rows: list[tuple[int, dict[str, str], tuple[int, ...]]] = []

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is not None:
            self.abort()

    def __len__(self) -> int:
        return len(self._rows)

    def add(
        self, entry: Entry, clips: Iterable[np.ndarray], columns: Sequence[dict[str, str]]
    ) -> None:
        """Append the clips decoded from `entry`, one metadata row each (`columns` adds the
        per-clip fields, e.g. the clip number), labelled by `entry.clip_labels` where given
        (one per clip, else InstrecError before anything is written) or `entry.labels`."""
        clips = list(clips)
        labels = entry.clip_labels or (entry.labels,) * len(clips)
        if len(labels) != len(clips):
            raise InstrecError(f"{entry.path}: {len(clips)} clips for {len(labels)} clip labels")
        self.entries.append(entry)
        for clip, extra, clip_labels in zip(clips, columns, labels, strict=True):
            samples, scale = to_int16(np.asarray(clip, dtype=np.float32))
            with writing(self.path):
                self._audio.write(samples.astype(AUDIO_DTYPE, copy=False).tobytes())
            self._scales.append(scale)
            self._offsets.append(self._offsets[-1] + samples.size)
            self._rows.append((len(self.entries) - 1, extra, clip_labels))

    def finish(self, sample_rate: int, info: dict[str, Any]) -> Path:
        """Write offsets, targets, metadata and header, then rename the folder into place."""
        if not self._rows:
            self.abort()
            raise InstrecError(f"{self.path}: no items to store (every source was skipped)")
        with writing(self.path):
            self._write_rest(sample_rate, info)
            replace_folder(self.tmp, self.path)
        return self.path

    def _write_rest(self, sample_rate: int, info: dict[str, Any]) -> None:
        """Everything but the audio, in the temporary folder; the header last."""
        self._audio.close()
        offsets = np.asarray(self._offsets, dtype=np.int64)
        np.save(self.tmp / OFFSETS, offsets)
        np.save(self.tmp / SCALES, np.asarray(self._scales, dtype=np.float32))
        self._write_targets()
        splits = self._write_metadata()
        lengths = np.unique(np.diff(offsets))
        header = {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "classes": list(self.classes),
            "sample_rate": sample_rate,
            "clip_length": int(lengths[0]) if lengths.size == 1 else None,
            "dtype": AUDIO_DTYPE.str,
            "count": len(self._rows),
            "total_samples": int(offsets[-1]),
            "splits": splits,
            **info,
        }
        (self.tmp / HEADER).write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")

    def _write_metadata(self) -> dict[str, int]:
        """metadata.csv, one row per clip; returns the number of items per split."""
        first = self._rows[0]
        extra_names = list({**self.entries[first[0]].columns, **first[1]})
        splits: Counter[str] = Counter()
        with open(self.tmp / METADATA, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([*BASE_COLUMNS, *extra_names])
            for index, (number, extra, clip_labels) in enumerate(self._rows):
                entry = self.entries[number]
                merged = {**entry.columns, **extra}
                labels = ";".join(self.classes[k] for k in clip_labels)
                base = [str(index), entry.source, entry.split, str(entry.group), labels]
                writer.writerow(base + [merged[name] for name in extra_names])
                splits[entry.split] += 1
        return {split: splits[split] for split in SPLITS if splits[split]}

    def _write_targets(self) -> None:
        """(N, C) float32 multi-hot, written through a memmap (NSynth's is 1.2 GB)."""
        shape = (len(self._rows), len(self.classes))
        targets = np.lib.format.open_memmap(self.tmp / TARGETS, "w+", np.float32, shape)
        for row, (_, _, labels) in enumerate(self._rows):
            targets[row, list(labels)] = 1.0
        targets.flush()
        del targets

    def abort(self) -> None:
        """Close and delete the temporary folder."""
        with contextlib.suppress(OSError):  # flushing may fail again (disk full)
            self._audio.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
