"""Two cheap alternatives to more training, measured across sources: weight soups and
per-class thresholds.

Weight soups average the weights of models fine-tuned from one pre-training (every
floating tensor, batch-norm statistics too); where fine-tunes stay in one basin the average
can generalise better than any of them. Per-class thresholds are another way
to make a threshold hold on unfamiliar audio. For every given model and every uniform
soup of two or more of them this prints F1-micro on the cross-source store's valid songs
at the threshold best on them, F1-micro / F1-macro / LRAP on its test songs at that
threshold, and the test songs' best F1-micro (optimistic). Then for each given model,
from its valid songs' probabilities alone, repeated 5-fold cross-validation of three
threshold rules: one global threshold, one per class, and one per class drawn halfway
(in log space) to the global one. The test songs are not used to choose anything.

    python benchmarks/ship_alternatives.py CROSS_SOURCE_STORE NAME=MODEL.pt... --out FILE
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np
import torch
from cross_source_scores import HEADER, scores

from instrec.metrics import THRESHOLD_GRID, threshold_sweep

REPEATS = 20
FOLDS = 5


def soup(models: list[Path], out: Path) -> Path:
    """The uniform average of `models` (same architecture), saved as a model file."""
    files = [torch.load(m, weights_only=True) for m in models]
    mixed = dict(files[0])
    mixed["state_dict"] = {
        k: sum(f["state_dict"][k] for f in files) / len(files) if v.is_floating_point() else v
        for k, v in files[0]["state_dict"].items()
    }
    torch.save(mixed, out)
    return out


def thresholds(labels: np.ndarray, probs: np.ndarray, rule: str) -> np.ndarray:
    """Each class's threshold under `rule`, fitted on these songs."""
    overall = threshold_sweep(labels, probs)["best_threshold"]
    found = np.full(probs.shape[1], overall)
    if rule == "global":
        return found
    for c in range(probs.shape[1]):
        if labels[:, c].any():
            own = threshold_sweep(labels[:, [c]], probs[:, [c]])["best_threshold"]
            found[c] = own if rule == "per class" else float(np.sqrt(own * overall))
    return found


def cross_validated(labels: np.ndarray, probs: np.ndarray, rule: str) -> tuple[float, float]:
    """Mean and spread of F1-micro over repeated k-fold splits of the valid songs."""
    rng = np.random.default_rng(0)
    found = []
    for _ in range(REPEATS):
        predicted = np.zeros_like(labels)
        order = rng.permutation(len(labels))
        for fold in np.array_split(order, FOLDS):
            fit = np.setdiff1d(order, fold)
            predicted[fold] = probs[fold] > thresholds(labels[fit], probs[fit], rule)
        tp = (predicted & labels).sum()
        found.append(2 * tp / (predicted.sum() + labels.sum()))
    return float(np.mean(found)), float(np.std(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="cross-source store (valid and test splits)")
    parser.add_argument("models", nargs="+", help="NAME=MODEL.pt, fine-tuned from one init")
    parser.add_argument("--out", type=Path, required=True, help="text file for the tables")
    args = parser.parse_args()
    named = dict(m.split("=", 1) for m in args.models)
    lines = [f"| model | {HEADER} |", "|---|" + "---|" * 6]
    valid_probs = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for size in range(1, len(named) + 1):
            for group in itertools.combinations(named, size):
                name = " + ".join(group)
                model = (
                    Path(named[group[0]])
                    if size == 1
                    else soup([Path(named[g]) for g in group], work / f"soup{size}.pt")
                )
                row, valid = scores(model, args.store, work / name.replace(" ", ""))
                lines.append(f"| {name if size == 1 else 'soup: ' + name} | {row} |")
                if size == 1:
                    valid_probs[name] = valid
                print(lines[-1], flush=True)
    lines += [
        "",
        f"Threshold rules, {REPEATS} x {FOLDS}-fold cross-validation on the valid songs "
        f"(F1-micro, mean ± sd; grid {THRESHOLD_GRID[0]:.2f}-{THRESHOLD_GRID[-1]:.2f}):",
        "",
        "| model | global | per class | per class, halfway to global |",
        "|---|---|---|---|",
    ]
    for name, (labels, probs) in valid_probs.items():
        cells = [cross_validated(labels, probs, r) for r in ("global", "per class", "halfway")]
        lines.append(f"| {name} | " + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-len(valid_probs) - 5 :]))


if __name__ == "__main__":
    main()
