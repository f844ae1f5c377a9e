"""What `instrec predict --fast` and int8 change against the exact (evaluation's) computation.

The exact way runs every 1 s window alone, zero-padded at its edges, as evaluation does;
`--fast` runs the network once over the file and pools each window from those frames, so
a window's edge frames see the neighbouring audio instead of padding. For every file of an
IRMAS-layout test set (real, or rendered by `instrec render-music`) this prints how far
the file probabilities move (max and mean |dp|, the share of file x class decisions that
flip at the model's threshold), F1-micro / F1-macro / LRAP each way, and the time of each.
With --int8 AUDIO...: the same for the model exported in int8 (calibrated on AUDIO, e.g.
the training clips), run exact and fast, all against the fp32 exact way (then the fp32 ways
run on the model's ONNX export, so that all four times are onnxruntime's).

    python benchmarks/fast_predict_accuracy.py MODEL IRMAS_ROOT [--int8 AUDIO...] [--limit N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from instrec.data.irmas import find_testing_files, read_test_labels
from instrec.export.int8 import export_int8
from instrec.export.onnx_graph import export_onnx
from instrec.labels import IRMAS_CLASSES
from instrec.metrics import multilabel_metrics
from instrec.tagging import Tagger, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model file (.pt) or exported .onnx")
    parser.add_argument("irmas", type=Path, help="folder with IRMAS-TestingData-Part*/ (wav+txt)")
    parser.add_argument("--limit", type=int, default=None, help="use the first N files only")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every way")
    parser.add_argument(
        "--int8",
        type=Path,
        nargs="+",
        metavar="AUDIO",
        help="also the int8 export (instrec export --int8 AUDIO...) run both ways; a .pt model",
    )
    args = parser.parse_args()

    files = find_testing_files(args.irmas)[: args.limit]
    truth = np.zeros((len(files), len(IRMAS_CLASSES)), np.float32)
    for row, path in enumerate(files):
        truth[row, list(read_test_labels(path.with_suffix(".txt")))] = 1.0
    paths = {"": args.model}
    with tempfile.TemporaryDirectory() as tmp:
        if args.int8:  # both on onnxruntime, so their times compare
            paths[""] = export_onnx(args.model, Path(tmp) / "fp32.onnx").path
            paths["int8-"] = export_int8(args.model, Path(tmp) / "int8.onnx", args.int8).path
        ways = {
            f"{prefix}{way}": load_model(path, args.threads, fast=way == "fast")
            for prefix, path in paths.items()
            for way in ("exact", "fast")
        }
        scores, seconds = {}, {}
        for name, tagger in ways.items():
            scores[name], seconds[name] = tag_all(tagger, files, name)
    audio = float(sum(soundfile.info(path).duration for path in files))  # s
    threshold = ways["exact"].threshold
    print(f"model: {args.model.name}  files: {len(files)} ({audio / 60:.1f} min of audio)")
    print(f"threshold: {threshold:.2f} (saved with the model)")
    print(
        f"  {'way':<10} {'max |dp|':>8} {'mean |dp|':>9} {'flipped':>8} "
        f"{'F1-micro':>8} {'F1-macro':>8} {'LRAP':>6} {'seconds':>8} {'x RT':>6}"
    )
    for name, way_scores in scores.items():
        moved = np.abs(way_scores - scores["exact"])  # against evaluation's numbers
        flipped = ((way_scores >= threshold) != (scores["exact"] >= threshold)).mean()
        m = multilabel_metrics(truth, way_scores, threshold, IRMAS_CLASSES)
        print(
            f"  {name:<10} {moved.max():>8.3f} {moved.mean():>9.4f} {flipped:>8.2%} "
            f"{m['f1_micro']:>8.3f} {m['f1_macro']:>8.3f} {m['lrap']:>6.3f} "
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
