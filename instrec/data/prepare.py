"""`instrec prepare`: decode a dataset once into a clip store (see instrec.data.store).

Each dataset is listed (bad files reported), split, subsampled if asked, decoded in
parallel worker processes through instrec.audio, and written atomically. One summary
line says what was kept and what was skipped, by reason.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from instrec.atomic import claim
from instrec.audio import DEFAULT_LUFS, SAMPLE_RATE
from instrec.data import corpus, folder, irmas, nsynth
from instrec.data.store import (
    HEADER,
    ClipStore,
    Entry,
    StoreWriter,
    cover_classes_in_train,
    sample_units,
    split_groups,
)
from instrec.errors import AudioError, InstrecError
from instrec.labels import IRMAS_CLASSES

DATASETS = ("nsynth", "irmas-train", "irmas-test", "folder", "corpus")
SHOWN_SKIPS = 5  # skipped files named on the terminal; store.json lists every one
Decode = Callable[[Path], np.ndarray]  # file -> (clips, samples) float32


class SkipLog:
    """Collects skipped files (path, reason), counted by reason, so the progress bar stays
    readable: the summary names the first few and the store's header keeps them all.

    With `strict`, the first one raises InstrecError instead.
    """

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.counts: Counter[str] = Counter()
        self.files: list[tuple[str, str]] = []  # (path, reason) in the order met

    def __call__(self, path: Path | str, reason: str) -> None:
        if self.strict:
            raise InstrecError(f"{path}: {reason}")
        self.counts[reason.split(" (")[0]] += 1
        self.files.append((str(path), reason))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        reasons = ", ".join(f"{count} {reason}" for reason, count in self.counts.most_common())
        return f"skipped {self.total} files" + (f" ({reasons})" if reasons else "")

    def first_few(self, header: Path) -> str:
        """The first SHOWN_SKIPS skipped files with their reasons, one per line, and where
        the rest are listed ('' when none was skipped)."""
        lines = [f"skipped {path}: {reason}" for path, reason in self.files[:SHOWN_SKIPS]]
        if self.total > SHOWN_SKIPS:
            lines.append(
                f"... and {self.total - SHOWN_SKIPS} more: every skipped file is listed "
                f'under "skipped_files" in {header}'
            )
        return "\n".join(lines)


@dataclass
class Plan:
    """What to decode and how: the entries, the class list, the decoder and split rules."""

    kind: str
    classes: tuple[str, ...]
    entries: list[Entry]
    decode: Decode
    clip_column: bool  # True when one file gives several clips (numbered in "clip")
    options: dict[str, Any] = field(default_factory=dict)


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Options of `instrec prepare DATASET ROOT --out STORE`."""
    parser.add_argument(
        "dataset",
        choices=DATASETS,
        help="nsynth: ROOT holds nsynth-train/valid/test; irmas-train: ROOT holds "
        "IRMAS-TrainingData; irmas-test: ROOT holds IRMAS-TestingData-Part1/2/3; "
        "folder: ROOT holds your audio, listed by --csv; corpus: ROOT is an 'instrec synth "
        "corpus' render (multi-label clips)",
    )
    parser.add_argument("root", type=Path, help="dataset folder, laid out as distributed")
    parser.add_argument("--out", type=Path, required=True, help="store folder to create")
    parser.add_argument("--csv", type=Path, help="folder: CSV with path,labels[,split,group]")
    parser.add_argument(
        "--classes",
        help="folder: comma-separated class list; unset, every label in the CSV, sorted",
    )
    parser.add_argument(
        "--clips",
        action="store_true",
        help="folder: cut files into 1 s clips for fine-tuning instead of keeping whole files",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing store")
    parser.add_argument(
        "--strict", action="store_true", help="stop at the first bad file instead of skipping it"
    )
    parser.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1), help="decoding processes"
    )
    parser.add_argument(
        "--limit", type=int, help="keep a seeded random sample of this many source files"
    )
    parser.add_argument(
        "--fraction",
        type=float,
        default=1.0,
        help="keep this seeded fraction of the training songs (IRMAS, folder groups) or of "
        "each instrument's training notes (NSynth); validation is untouched",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the splits and samples")
    parser.add_argument(
        "--valid-fraction",
        type=float,
        help="held-out share of training items; unset, NSynth 0.04 per instrument, "
        "IRMAS-train and folder --clips 0.15 (song/group-disjoint)",
    )
    parser.add_argument(
        "--lufs", type=float, default=DEFAULT_LUFS, help="IRMAS/folder loudness target (LUFS)"
    )
    parser.add_argument(
        "--normalize",
        choices=irmas.LOUDNESS_UNITS,
        default="clip",
        help="irmas-train and folder --clips: bring each 1 s clip to --lufs after slicing (the "
        "authors' code) or the whole excerpt before slicing",
    )
    parser.add_argument(
        "--min-energy-db",
        type=float,
        default=nsynth.MIN_ENERGY_DB,
        help="NSynth: drop notes whose whole-note mean power is below this (dBFS)",
    )


def run(args: argparse.Namespace) -> int:
    """Prepare one store and print its one-line summary; --out is claimed first, so a
    second run on the same store (or an unwritable --out) fails before any work."""
    with claim(args.out):
        return _prepare(args)


def _prepare(args: argparse.Namespace) -> int:
    skips = SkipLog(strict=args.strict)
    plan = make_plan(args, skips)
    plan.entries = subsample(plan, args.limit, args.fraction, args.seed)
    with StoreWriter(args.out, plan.kind, plan.classes, force=args.force) as writer:
        files = write_clips(writer, plan, skips, args.workers)
        if plan.kind != "corpus":  # a corpus keeps its render's score-disjoint splits
            writer.entries = cover_classes_in_train(writer.entries)
        info = {
            "root": str(args.root.resolve()),
            "options": plan.options,
            "files": files,
            "skipped": dict(skips.counts),
            "skipped_files": [list(item) for item in skips.files],
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        writer.finish(SAMPLE_RATE, info)
    if skips.total:
        print(skips.first_few(Path(args.out) / HEADER), file=sys.stderr)
    print(summary_line(ClipStore.open(args.out), files, skips))
    return 0


def make_plan(args: argparse.Namespace, skips: SkipLog) -> Plan:
    """List the dataset's files, assign splits, and pick the decoder."""
    root: Path = args.root
    if not root.is_dir():
        raise InstrecError(f"{root}: no such folder")
    seed, lufs = args.seed, args.lufs
    if args.dataset == "nsynth":
        valid = nsynth.VALID_FRACTION if args.valid_fraction is None else args.valid_fraction
        entries, classes = nsynth.index_notes(root, skips)
        entries = nsynth.hold_out(entries, valid, seed)
        decode = partial(nsynth.note_clip, min_energy_db=args.min_energy_db)
        options = {"valid_fraction": valid, "min_energy_db": args.min_energy_db}
        return Plan("nsynth", classes, entries, decode, False, options)
    if args.dataset == "irmas-train":
        valid = irmas.VALID_FRACTION if args.valid_fraction is None else args.valid_fraction
        entries = split_groups(irmas.index_training(root, skips), valid, seed)
        decode = partial(irmas.excerpt_clips, lufs=lufs, normalize=args.normalize)
        options = {"valid_fraction": valid, "lufs": lufs, "normalize": args.normalize}
        return Plan("irmas-train", IRMAS_CLASSES, entries, decode, True, options)
    if args.dataset == "corpus":
        entries, classes = corpus.index_corpus(root, skips)
        decode = partial(corpus.corpus_clips, lufs=lufs)
        return Plan("corpus", classes, entries, decode, True, {"lufs": lufs})
    if args.dataset == "irmas-test":
        entries = irmas.index_testing(root, skips)
        return Plan(
            "irmas-test",
            IRMAS_CLASSES,
            entries,
            partial(irmas.whole_file, lufs=lufs),
            False,
            {"lufs": lufs},
        )
    return _folder_plan(args, skips)


def _folder_plan(args: argparse.Namespace, skips: SkipLog) -> Plan:
    if args.csv is None:
        raise InstrecError("prepare folder needs --csv FILE (columns path,labels)")
    classes = tuple(c.strip() for c in args.classes.split(",")) if args.classes else None
    entries, found = folder.index_folder(args.root, args.csv, skips, classes)
    has_split = "split" in folder.read_rows(args.csv)[0]
    valid = irmas.VALID_FRACTION if args.valid_fraction is None else args.valid_fraction
    if not has_split and args.clips:
        entries = split_groups(entries, valid, args.seed)
    elif not has_split:
        entries = [replace(e, split="test") for e in entries]
    decode = (
        partial(irmas.excerpt_clips, lufs=args.lufs, normalize=args.normalize)
        if args.clips
        else partial(irmas.whole_file, lufs=args.lufs)
    )
    options = {"csv": str(args.csv), "clips": args.clips, "lufs": args.lufs}
    if args.clips:
        options["normalize"] = args.normalize
    if args.clips and not has_split:
        options["valid_fraction"] = valid
    return Plan("folder", found, entries, decode, args.clips, options)


def subsample(plan: Plan, limit: int | None, fraction: float, seed: int) -> list[Entry]:
    """`fraction` of the training songs/notes (validation kept), then at most `limit` files."""
    entries = plan.entries
    if fraction < 1.0:
        train = [e for e in entries if e.split == "train"]
        by_note = plan.kind == "nsynth"
        units = np.arange(len(train)) if by_note else np.array([e.group for e in train])
        labels = np.array([e.labels[0] if e.labels else -1 for e in train])
        keep = set(sample_units(units, labels, fraction, seed).tolist())
        kept = {id(e) for e, u in zip(train, units, strict=True) if int(u) in keep}
        entries = [e for e in entries if e.split != "train" or id(e) in kept]
    if limit is not None and limit < len(entries):
        chosen = np.sort(np.random.default_rng(seed).choice(len(entries), limit, replace=False))
        entries = [entries[k] for k in chosen]
    return entries


def _decode_one(decode: Decode, entry: Entry) -> tuple[np.ndarray | None, str]:
    """Worker side: (clips, "") or (None, reason) for a file that cannot be used."""
    try:
        return decode(entry.path), ""
    except AudioError as error:
        return None, error.reason


def write_clips(writer: StoreWriter, plan: Plan, skips: SkipLog, workers: int) -> int:
    """Decode every entry (in `workers` processes) into the writer; returns files kept."""
    job = partial(_decode_one, plan.decode)
    kept = 0
    with tqdm(total=len(plan.entries), unit="file", desc=f"prepare {plan.kind}") as bar:
        if workers > 1 and len(plan.entries) > 1:
            with _worker_context().Pool(workers) as pool:
                results = pool.imap(job, plan.entries, chunksize=8)
                kept = _consume(writer, plan, skips, results, bar)
        else:
            kept = _consume(writer, plan, skips, map(job, plan.entries), bar)
    return kept


def _worker_context() -> multiprocessing.context.BaseContext:
    """forkserver where available: workers fork from one clean process that imported the
    audio stack once (no fork of a caller holding threads or libfluidsynth)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _consume(
    writer: StoreWriter,
    plan: Plan,
    skips: SkipLog,
    results: Iterable[tuple[np.ndarray | None, str]],
    bar: tqdm,
) -> int:
    """Write decoded clips in entry order; skipped files go to the log."""
    kept = 0
    for entry, (clips, reason) in zip(plan.entries, results, strict=True):
        bar.update()
        if clips is None:
            skips(entry.path, reason)
            continue
        if entry.clip_labels is not None and len(entry.clip_labels) != len(clips):
            skips(entry.path, f"{len(clips)} clips where its labels list {len(entry.clip_labels)}")
            continue
        columns = [{"clip": str(k)} for k in range(len(clips))] if plan.clip_column else [{}]
        writer.add(entry, clips, columns)
        kept += 1
    return kept


def summary_line(store: ClipStore, files: int, skips: SkipLog) -> str:
    """`prepared KIND: N items from F files (train a, valid b) -> STORE (size); skipped ...`."""
    splits = ", ".join(f"{split} {count}" for split, count in store.header["splits"].items())
    size = sum(p.stat().st_size for p in store.path.iterdir()) / 1e9
    return (
        f"prepared {store.kind}: {len(store)} items from {files} files ({splits}) -> "
        f"{store.path} ({size:.3g} GB); {skips.summary()}"
    )
