"""One training epoch's audio reading: decoding wav files vs. reading a prepared clip store.

Writes synthetic trees in the official layouts (IRMAS-train: 3 s 44.1 kHz stereo excerpts;
NSynth: 4 s 16 kHz mono notes), prepares a store from each, then times, side by side:
  decode - what an epoch costs without a store: load_audio (+ -12 LUFS and the 1 s cut
           for IRMAS) for every file, in shuffled order;
  store  - the same clips from ClipStore.batch in shuffled batches of 64.
Both run after a warm-up pass, so the files and the store are in the page cache alike.

    python benchmarks/store_vs_decode.py [--files 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
import soundfile

from instrec.data import irmas, nsynth
from instrec.data.store import ClipStore

BATCH = 64


def write_irmas(root: Path, files: int, rng: np.random.Generator) -> None:
    for k in range(files):
        audio = rng.normal(0, 0.1, (3 * 44_100, 2)).astype(np.float32)
        path = root / "IRMAS-TrainingData" / "pia" / f"[pia][cla]{k // 3:04d}__{k % 3 + 1}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, audio, 44_100, subtype="PCM_16")


def write_nsynth(root: Path, files: int, rng: np.random.Generator) -> None:
    folder = root / "nsynth-train"
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    examples = {}
    for k in range(files):
        name = f"keyboard_acoustic_{k % 10:03d}-{21 + k // 10:03d}-100"
        examples[name] = {
            "instrument_str": name[:22],
            "instrument_family_str": "keyboard",
            "instrument_source_str": "acoustic",
            "pitch": 21 + k // 10,
            "velocity": 100,
            "sample_rate": 16_000,
        }
        audio = rng.normal(0, 0.1, 4 * 16_000).astype(np.float32)
        soundfile.write(folder / "audio" / f"{name}.wav", audio, 16_000, subtype="PCM_16")
    (folder / "examples.json").write_text(json.dumps(examples))


def decode_epoch(store: ClipStore, dataset: str, order: np.ndarray) -> int:
    """Decode every source file once, in `order`, as a store-less loader would; returns clips."""
    root = Path(store.header["root"])
    files = list(dict.fromkeys(store.sources))
    decode = irmas.excerpt_clips if dataset == "irmas-train" else nsynth.note_clip
    return sum(len(decode(root / files[k])) for k in order)


def store_epoch(store: ClipStore, order: np.ndarray) -> int:
    clips = 0
    for start in range(0, order.size, BATCH):
        clips += len(store.batch(order[start : start + BATCH]))
    return clips


def timed(function: Callable[..., int], *args: object) -> tuple[float, int]:
    function(*args)  # warm-up: page cache, first-call costs
    start = time.perf_counter()
    clips = function(*args)
    return time.perf_counter() - start, clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300, help="source files per dataset")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/soxr threads (cores)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from instrec.cli import main as instrec

    rng = np.random.default_rng(0)
    print(
        f"{'dataset':<12} {'files':>6} {'clips':>6} {'decode s':>9} {'store s':>8} "
        f"{'decode clips/s':>15} {'store clips/s':>14} {'ratio':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for dataset, write in (("irmas-train", write_irmas), ("nsynth", write_nsynth)):
            root = Path(tmp) / dataset
            write(root, args.files, rng)
            out = root / "store"
            flags = ["--workers", "1", "--valid-fraction", "0"]
            with redirect_stdout(StringIO()):
                assert instrec(["prepare", dataset, str(root), "--out", str(out), *flags]) == 0
            store = ClipStore.open(out)
            order = np.random.default_rng(1).permutation(len(store))
            file_order = np.random.default_rng(1).permutation(len(set(store.sources)))
            decode_s, decode_clips = timed(decode_epoch, store, dataset, file_order)
            store_s, store_clips = timed(store_epoch, store, order)
            assert decode_clips == store_clips == len(store)
            print(
                f"{dataset:<12} {args.files:>6} {len(store):>6} {decode_s:>9.3f} {store_s:>8.4f} "
                f"{len(store) / decode_s:>15.0f} {len(store) / store_s:>14.0f} "
                f"{decode_s / store_s:>7.0f}x"
            )


if __name__ == "__main__":
    main()
