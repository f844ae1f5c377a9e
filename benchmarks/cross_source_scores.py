"""Models side by side on cross-source benchmarks, each judged as the shipped model is.

For every model on every store (a cross-source benchmark's prepared store, with valid and
test songs): F1-micro on the valid songs at the threshold best on them, that threshold,
F1-micro / F1-macro / LRAP on the test songs at it, and the test songs' best F1-micro
(optimistic). Only the valid songs choose; the test songs are scored once. Two benchmarks
of the same songs answer different questions: `plain` (held-out instruments, nothing else
new) and `full` (the same songs with every rendering ingredient: timbre variation,
performance, production), the nearer of the two to recorded music.

    python benchmarks/cross_source_scores.py NAME=STORE... --model NAME=MODEL.pt... --out FILE
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np

from instrec.evaluate import evaluate_model
from instrec.metrics import multilabel_metrics, threshold_sweep

HEADER = "valid F1-micro | threshold | test F1-micro there | test best | test F1-macro | test LRAP"


def probabilities(
    model: Path, store: Path, split: str, work: Path
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of `split`, as evaluation computes them (the model's own
    threshold binarises nothing used here, and choosing none spares a second pass)."""
    evaluate_model(model, store, work, "model", split, tsne_points=0, force=True)
    with open(work / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    classes = [k[2:] for k in rows[0] if k.startswith("p_")]
    probs = np.array([[float(r[f"p_{c}"]) for c in classes] for r in rows])
    labels = np.array([[c in r["labels"].split(";") for c in classes] for r in rows])
    return labels.astype(int), probs


def scores(model: Path, store: Path, work: Path) -> tuple[str, tuple[np.ndarray, np.ndarray]]:
    """One row of HEADER's columns, and the valid songs' (labels, probabilities)."""
    valid = probabilities(model, store, "valid", work / "valid")
    test = probabilities(model, store, "test", work / "test")
    chosen = threshold_sweep(*valid)
    threshold = chosen["best_threshold"]
    at = multilabel_metrics(test[0], test[1], threshold)
    best = threshold_sweep(*test)["best_f1_micro"]
    row = (
        f"{chosen['best_f1_micro']:.3f} | {threshold:.2f} | {at['f1_micro']:.3f} | "
        f"{best:.3f} | {at['f1_macro']:.3f} | {at['lrap']:.3f}"
    )
    return row, valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", help="NAME=STORE, cross-source benchmarks")
    parser.add_argument("--model", action="append", required=True, help="NAME=MODEL.pt")
    parser.add_argument("--out", type=Path, required=True, help="text file for the table")
    args = parser.parse_args()
    lines = [f"| benchmark | model | {HEADER} |", "|---|---|" + "---|" * 6]
    with tempfile.TemporaryDirectory() as tmp:
        for store_name, store in (s.split("=", 1) for s in args.stores):
            for name, model in (m.split("=", 1) for m in args.model):
                row, _ = scores(Path(model), Path(store), Path(tmp) / store_name / name)
                lines.append(f"| {store_name} | {name} | {row} |")
                print(lines[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
