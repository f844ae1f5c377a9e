"""Clips per second the clip store + DataLoader deliver to a training step, against what a
GPU step consumes.

Writes a synthetic note store (NSynth-like: 1 s notes, same-instrument groups, 1,006
classes), then times the DataLoader training uses (instrec.train.data_module.clip_loader)
at the training batch size for each combination of: note concatenation on/off (the
pre-training augmentation done in the loader), num_workers, pin_memory (only where CUDA
is present) and the read path:
  batched   - what training does: the DataLoader hands a worker a whole batch's keys and
              ClipDataset reads them together (ClipDataset.__getitems__);
  per-item  - one ClipDataset[key] call per clip, collated by the DataLoader (the path
              before __getitems__ existed).
Each row: seconds to the first batch (worker start-up), clips/s over the next --batches
batches, and seconds to the first batch of the next epoch (start-up again, unless the
workers persist). The demand side is computed, not measured: forward+backward
FLOPs per clip (counted by torch, as benchmarks/model_throughput.py does) over a share of
an H200's bf16 matmul rate (790 TFLOP/s, measured on this workplace's H200s).

    python benchmarks/loader_throughput.py [--workers 0,1,2] [--batches 15] [--paths per-item]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from model_throughput import counted_flops
from torch.utils.data import Dataset

from instrec.data.store import ClipStore, Entry, StoreWriter
from instrec.model.zoo import build_model
from instrec.train.augment import AugmentConfig
from instrec.train.data_module import clip_loader
from instrec.train.dataset import ClipDataset, EpochSampler

SR = 16_000
NSYNTH_CLASSES = 1006
H200_BF16_FLOPS = 790e12  # an 8192^3 bf16 matmul on this workplace's H200s (KINDS.md)


def write_note_store(
    path: Path, notes: int, instruments: int, classes: int | None = None, valid_every: int = 0
) -> Path:
    """A store of `notes` 1 s synthetic notes, note k by instrument k % instruments (its class
    and group), each instrument a fixed mix of six partials at random pitches, so a model can
    learn them; every `valid_every`-th note (0: none) is in the valid split."""
    rng = np.random.default_rng(notes)
    harmonics = np.arange(1, 7, dtype=np.float32)[:, None]
    mixes = rng.uniform(0, 1, (instruments, 6, 1)).astype(np.float32) / harmonics  # amplitudes
    decays = rng.uniform(0.5, 12.0, (instruments, 1)).astype(np.float32)  # 1/s: some fade early
    t = np.arange(SR, dtype=np.float32) / SR
    names = [f"ins{k}" for k in range(classes or instruments)]
    with StoreWriter(path, "nsynth", names) as writer:
        for start in range(0, notes, 256):
            ids = np.arange(start, min(start + 256, notes))
            kind = ids % instruments
            f0 = (110 * 2 ** rng.uniform(0, 3, (ids.size, 1, 1))).astype(np.float32)
            phase = 2 * np.pi * f0 * harmonics * t  # (notes, partials, samples), float32
            waves = (mixes[kind] * np.sin(phase)).sum(1) * np.exp(-t * decays[kind])
            for k, wave in zip(ids, 0.2 * waves.astype(np.float32), strict=True):
                split = "valid" if valid_every and k % valid_every == 0 else "train"
                group = int(k % instruments)
                entry = Entry(Path(f"{k}.wav"), f"{k}.wav", (group,), split, group)
                writer.add(entry, [wave], [{}])
        return writer.finish(SR, {})


class PerItem(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """A ClipDataset seen through __getitem__ only: the DataLoader fetches one clip per call."""

    def __init__(self, dataset: ClipDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset[key]


def time_loader(loader: Any, batches: int) -> tuple[float, float, float]:
    """(seconds to the first batch, clips/s over the next `batches` batches, seconds to the
    first batch of the next epoch)."""
    start = time.perf_counter()
    iterator: Iterator[Any] = iter(loader)
    next(iterator)
    first = time.perf_counter()
    clips = 0
    for _ in range(batches):
        waves, _targets = next(iterator)
        clips += len(waves)
    rate = clips / (time.perf_counter() - first)
    again = time.perf_counter()
    next(iter(loader))
    return first - start, rate, time.perf_counter() - again


def gpu_demand(batch: int) -> list[tuple[str, float]]:
    """(model, forward+backward FLOPs per clip) for the pre-training models, NSynth's head."""
    rows = []
    for name in ("resnet34", "sharesnet18"):
        model = build_model(name, NSYNTH_CLASSES)
        rows.append((name, counted_flops(model, batch, SR, backward=True) / batch))
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notes", type=int, default=4096, help="notes in the synthetic store")
    parser.add_argument("--instruments", type=int, default=16, help="same-instrument groups")
    parser.add_argument("--batch", type=int, default=128, help="clips per batch (paper: 128)")
    parser.add_argument("--batches", type=int, default=15, help="timed batches per row")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated num_workers")
    parser.add_argument("--paths", default="batched,per-item", help="read paths to time")
    parser.add_argument("--store", type=Path, default=None, help="reuse (or keep) a store here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)  # the loader's work is numpy; workers are separate processes
    print(f"# loader_throughput  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"# torch {torch.__version__}, {platform.machine()}, os.cpu_count {os.cpu_count()}, "
        f"load average before {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        path = args.store or Path(scratch) / "notes"
        if not path.exists():
            write_note_store(path, args.notes, args.instruments, NSYNTH_CLASSES)
        run_rows(ClipStore.open(path), args)
    print(f"# load average after {os.getloadavg()[0]:.1f}")
    print(f"\n# what a GPU step consumes at batch {args.batch} (computed, not measured here)")
    for name, flops in gpu_demand(args.batch):
        rates = ", ".join(
            f"{share:.0%}: {share * H200_BF16_FLOPS / flops:,.0f}" for share in (0.05, 0.2)
        )
        print(
            f"# {name}: {flops / 1e9:.2f} GFLOP per clip forward+backward; clips/s at a share "
            f"of 790 TFLOP/s  {rates}"
        )


def run_rows(store: ClipStore, args: argparse.Namespace) -> None:
    """One line per (concatenation, path, workers, pin_memory) combination."""
    items = store.indices("train")
    pins = (False, True) if torch.cuda.is_available() else (False,)
    print(
        f"# store: {len(store)} notes, {len(store.classes)} classes, batch {args.batch}, "
        f"{args.batches} timed batches per row after the first; pin_memory "
        f"{'timed' if len(pins) == 2 else 'not timed (no CUDA: it pins nothing)'}"
    )
    print(
        f"{'concat':<7} {'path':<9} {'workers':>7} {'pin':>5} {'first s':>8} {'clips/s':>9} "
        f"{'next epoch s':>12}"
    )
    for concat in (True, False):
        augment = AugmentConfig(concat_p=0.5) if concat else None
        dataset = ClipDataset(store, items, augment, seed=0)
        for path in args.paths.split(","):
            source = dataset if path == "batched" else PerItem(dataset)
            for workers in (int(w) for w in args.workers.split(",")):
                for pin in pins:
                    sampler = EpochSampler(items, True, seed=0)
                    loader = clip_loader(source, sampler, args.batch, True, workers, pin)
                    first, rate, again = time_loader(loader, args.batches)
                    print(
                        f"{'on' if concat else 'off':<7} {path:<9} {workers:>7} "
                        f"{'yes' if pin else 'no':>5} {first:>8.2f} {rate:>9,.0f} {again:>12.2f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
