"""Does pre-training learn? A longer tiny run on rendered notes, with its curve as a PNG.

Renders a small NSynth-format note set from the installed GM soundfonts, prepares it into a
clip store (`instrec prepare nsynth`), pre-trains the `tiny_pretrain` model on it for
`--epochs` epochs and draws training loss, validation loss and validation accuracy per
epoch against chance (1 / number of instruments: the pre-training softmax is over
instrument ids). Rendering and the store are reused from `--work` when already there; each
run trains into a fresh RUN folder under it. Prints a per-epoch table, the data size, the
wall times and the command.

    python benchmarks/training_curve.py [--epochs 12] [--instruments 24] [--pitches 24]
        [--work /tmp/instrec-training-curve] [--png FILE] [--threads 2] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from instrec.data.store import ClipStore
from instrec.errors import InstrecError
from instrec.report import save_figure
from instrec.synth.notes import render_notes
from instrec.train.config import load_config
from instrec.train.fit import pretrain

NOTES_MANIFEST = "render-notes.json"  # written by render_notes once a render is complete


@dataclass(frozen=True)
class Epoch:
    """One row of the curve: the epoch's mean training loss and its validation figures."""

    epoch: int
    train_loss: float
    valid_loss: float
    valid_acc: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="pre-training epochs")
    parser.add_argument("--instruments", type=int, default=24, help="presets to render")
    parser.add_argument("--pitches", type=int, default=24, help="pitches per preset")
    parser.add_argument(
        "--velocities", default="70,110", help="MIDI velocities per pitch, comma-separated"
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "instrec-training-curve",
        help="folder for the rendered notes, the store and the runs (reused when present)",
    )
    parser.add_argument(
        "--png", type=Path, default=None, help="where to write the curve (default WORK/RUN.png)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra tiny_pretrain config override, e.g. trainer.accelerator=cpu (repeatable)",
    )
    return parser.parse_args()


def rendered_notes(root: Path, instruments: int, pitches: int, velocities: list[int]) -> Path:
    """Render the note set once; a finished render (its manifest has a summary) is reused."""
    try:
        done = json.loads((root / NOTES_MANIFEST).read_text())["summary"] is not None
    except (OSError, ValueError, KeyError, TypeError):
        done = False
    if done:
        print(f"rendered notes {root}: cached", file=sys.stderr)
        return root
    return render_notes(
        root,
        max_instruments=instruments,
        pitches=pitches,
        velocities=velocities,
        seed=0,
        workers=2,
    )


def prepared_store(root: Path, store: Path) -> ClipStore:
    """`instrec prepare nsynth ROOT --out STORE`, skipped when STORE already opens."""
    try:
        return ClipStore.open(store)
    except InstrecError:
        pass
    command = [sys.executable, "-m", "instrec.cli", "prepare", "nsynth", str(root)]
    subprocess.run([*command, "--out", str(store), "--force"], check=True)
    return ClipStore.open(store)


def read_epochs(run: Path) -> list[Epoch]:
    """Per-epoch figures from the run's CSV log, whose rows each hold only some columns
    (step losses, learning rate, epoch means, validation) keyed by epoch."""
    logs = sorted((run / "logs" / "csv").glob("version_*/metrics.csv"))
    if not logs:
        raise InstrecError(f"{run}: no logs/csv/version_*/metrics.csv")
    merged: dict[int, dict[str, float]] = {}
    with logs[-1].open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("epoch"):
                values = {k: float(v) for k, v in row.items() if v and k != "epoch"}
                merged.setdefault(int(float(row["epoch"])), {}).update(values)
    keys = ("train_loss_epoch", "valid_loss", "valid_acc")
    return [
        Epoch(epoch + 1, *(m[k] for k in keys))
        for epoch, m in sorted(merged.items())
        if all(k in m for k in keys)
    ]


def draw(epochs: list[Epoch], chance: float, title: str, path: Path) -> Path:
    """Losses on the left axis, accuracy (with chance dashed) on the right one."""
    x = [e.epoch for e in epochs]
    fig, (losses, accuracy) = plt.subplots(1, 2, figsize=(10, 4))
    losses.plot(x, [e.train_loss for e in epochs], "o-", label="training loss")
    losses.plot(x, [e.valid_loss for e in epochs], "s-", label="validation loss")
    losses.set(xlabel="epoch", ylabel="cross-entropy (nats)", title="loss")
    losses.legend()
    accuracy.plot(x, [e.valid_acc for e in epochs], "o-", color="C2", label="validation")
    accuracy.axhline(chance, color="grey", linestyle="--", label=f"chance (1/{round(1 / chance)})")
    accuracy.set(xlabel="epoch", ylabel="top-1 accuracy", ylim=(0, 1), title="accuracy")
    accuracy.legend()
    for axis in (losses, accuracy):
        axis.grid(alpha=0.3)
        axis.set_xticks(x)
    fig.suptitle(title)
    saved = save_figure(fig, path)
    plt.close(fig)
    return saved


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    velocities = [int(v) for v in args.velocities.split(",")]
    command = "python " + shlex.join(["benchmarks/training_curve.py", *sys.argv[1:]])
    args.work.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    root = rendered_notes(args.work / "notes", args.instruments, args.pitches, velocities)
    store = prepared_store(root, args.work / "store")
    data_s = time.perf_counter() - start

    run = args.work / f"run-{time.strftime('%Y%m%d-%H%M%S')}-e{args.epochs}"
    config = load_config("tiny_pretrain", [f"trainer.epochs={args.epochs}", *args.set])
    start = time.perf_counter()
    pretrain(config, store.path, run)
    train_s = time.perf_counter() - start

    epochs = read_epochs(run)
    classes = len(store.classes)
    chance = 1 / classes
    splits = store.header["splits"]
    png = draw(
        epochs,
        chance,
        f"tiny_pretrain on {len(store)} rendered notes of {classes} instruments",
        args.png or run.with_suffix(".png"),
    )

    print(f"# {command}")
    print(
        f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}, torch threads {args.threads}"
    )
    counts = ", ".join(f"{split} {count}" for split, count in splits.items())
    print(f"data   {classes} instruments, {len(store)} notes ({counts})")
    print(
        f"config tiny_pretrain, {args.epochs} epochs, batch {config.trainer.batch_size}, "
        f"peak lr {config.optim.peak_lr}"
    )
    print(
        f"time   render+prepare {data_s:.0f} s (0 when cached), training {train_s:.0f} s "
        f"({train_s / max(len(epochs), 1):.0f} s per epoch with validation)"
    )
    print(f"chance 1/{classes} = {chance:.3f}")
    print()
    print("epoch  train_loss  valid_loss  valid_acc  x chance")
    for e in epochs:
        print(
            f"{e.epoch:5d}  {e.train_loss:10.3f}  {e.valid_loss:10.3f}  {e.valid_acc:9.3f}  "
            f"{e.valid_acc / chance:8.1f}"
        )
    print()
    print(f"run {run}")
    print(f"png {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
