"""What `instrec predict --fast` changes against the exact (evaluation's) computation.

The exact way runs every 1 s window alone, zero-padded at its edges, as evaluation does;
`--fast` runs the network once over the file and pools each window from those frames, so
a window's edge frames see the neighbouring audio instead of padding. For every file of an
IRMAS-layout test set (real, or rendered by `instrec render-music`) this prints how far
the file probabilities move (max and mean |dp|, how many file x class decisions flip at
the model's threshold), F1-micro / F1-macro / LRAP both ways, and the time of both.

    python benchmarks/fast_predict_accuracy.py MODEL IRMAS_ROOT [--limit 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from instrec.data.irmas import find_testing_files, read_test_labels
from instrec.labels import IRMAS_CLASSES
from instrec.metrics import multilabel_metrics
from instrec.predict import Tagger, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model file (.pt) or exported .onnx")
    parser.add_argument("irmas", type=Path, help="folder with IRMAS-TestingData-Part*/ (wav+txt)")
    parser.add_argument("--limit", type=int, default=None, help="use the first N files only")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both ways")
    args = parser.parse_args()

    files = find_testing_files(args.irmas)[: args.limit]
    truth = np.zeros((len(files), len(IRMAS_CLASSES)), np.float32)
    for row, path in enumerate(files):
        truth[row, list(read_test_labels(path.with_suffix(".txt")))] = 1.0
    exact = load_model(args.model, args.threads)
    fast = load_model(args.model, args.threads, fast=True)
    scores, seconds = {}, {}
    for name, tagger in (("exact", exact), ("fast", fast)):
        scores[name], seconds[name] = tag_all(tagger, files, name)
    audio = float(sum(soundfile.info(path).duration for path in files))  # s
    threshold = exact.threshold
    moved = np.abs(scores["fast"] - scores["exact"])
    flips = ((scores["fast"] >= threshold) != (scores["exact"] >= threshold)).sum()
    print(f"model: {args.model.name}  files: {len(files)} ({audio / 60:.1f} min of audio)")
    print(f"threshold: {threshold:.2f} (saved with the model)")
    print(f"file probabilities, fast - exact: max |dp| {moved.max():.3f}, mean {moved.mean():.4f}")
    print(f"decisions flipped: {flips} of {moved.size} file x class ({flips / moved.size:.2%})")
    print(f"  {'way':<6} {'F1-micro':>8} {'F1-macro':>8} {'LRAP':>6} {'seconds':>8} {'x RT':>6}")
    for name in ("exact", "fast"):
        m = multilabel_metrics(truth, scores[name], threshold, IRMAS_CLASSES)
        print(
            f"  {name:<6} {m['f1_micro']:>8.3f} {m['f1_macro']:>8.3f} {m['lrap']:>6.3f} "
            f"{seconds[name]:>8.1f} {audio / seconds[name]:>6.1f}"
        )


def tag_all(tagger: Tagger, files: list[Path], name: str) -> tuple[np.ndarray, float]:
    """(files, classes) probabilities in IRMAS class order, and the seconds it took."""
    start = time.perf_counter()
    rows = []
    for path in tqdm(files, desc=name, unit="file", leave=False):
        probabilities = tagger.predict(path).probabilities
        rows.append([probabilities[code] for code in IRMAS_CLASSES])
    return np.array(rows, np.float32), time.perf_counter() - start


if __name__ == "__main__":
    main()
