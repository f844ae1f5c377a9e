"""Multi-label and single-label scores from arrays: F1 (three averages), LRAP, sweeps.

Counts are taken once per threshold for all classes, so a 99-point sweep of the whole
IRMAS test set takes milliseconds; every number is cross-checked against scikit-learn in
tests/test_metrics.py. Division by zero gives 0 everywhere, as scikit-learn's
`zero_division=0` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, label_ranking_average_precision_score

# Probabilities swept for the binarising threshold: 0.01, 0.02, ..., 0.99.
THRESHOLD_GRID: np.ndarray = np.round(np.arange(1, 100) / 100, 2)
THRESHOLD_GRID_TEXT = "0.01 to 0.99 in steps of 0.01 (99 thresholds)"
# The authors' evaluation grid (evaluator.py): 0.00, 0.02, ..., 0.78, with >=.
PAPER_GRID: np.ndarray = np.round(np.arange(40) * 0.02, 2)
PAPER_GRID_TEXT = "0.00 to 0.78 in steps of 0.02 (40 thresholds, score >= threshold)"


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _counts(
    y_true: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, inclusive: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, false positives, false negatives per threshold and class.

    A label is predicted when its score is strictly above the threshold (the paper's
    "exceed"), or at least the threshold with `inclusive` (the authors' code). Returns
    three (thresholds, classes) int arrays.
    """
    truth = y_true.astype(bool)  # (items, classes)
    tp, fp, fn = (np.zeros((thresholds.size, truth.shape[1]), dtype=np.int64) for _ in range(3))
    for t, threshold in enumerate(thresholds):  # a loop keeps memory at one (items, classes)
        predicted = scores >= threshold if inclusive else scores > threshold
        tp[t] = (predicted & truth).sum(axis=0)
        fp[t] = (predicted & ~truth).sum(axis=0)
        fn[t] = (~predicted & truth).sum(axis=0)
    return tp, fp, fn


def _scores_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """Every averaged score from (..., classes) counts; each result has shape (...)."""
    precision = _ratio(tp, tp + fp)  # (..., classes)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    tp_all, fp_all, fn_all = tp.sum(-1), fp.sum(-1), fn.sum(-1)
    precision_macro, recall_macro = precision.mean(-1), recall.mean(-1)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "f1_micro": _ratio(2 * tp_all, 2 * tp_all + fp_all + fn_all),
        "f1_macro": f1.mean(-1),
        "f1_macro_eq11": _ratio(2 * precision_macro * recall_macro, precision_macro + recall_macro),
        "precision_micro": _ratio(tp_all, tp_all + fp_all),
        "recall_micro": _ratio(tp_all, tp_all + fn_all),
        "precision_macro": precision_macro,
        "recall_macro": recall_macro,
    }


def _check(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != scores.shape:
        raise ValueError(f"y_true {y_true.shape} and scores {scores.shape} must be equal 2-D")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("y_true must be multi-hot (0 or 1)")
    return y_true.astype(bool), scores


def lrap(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Label ranking average precision (the paper's eq. 13), threshold-free.

    scikit-learn's definition: an item with no true label (or only true labels) scores 1.
    """
    y_true, scores = _check(y_true, scores)
    return float(label_ranking_average_precision_score(y_true, scores))


def multilabel_metrics(
    y_true: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    classes: Sequence[str] | None = None,
    inclusive: bool = False,
) -> dict[str, Any]:
    """Every multi-label score of (items, classes) multi-hot truth vs scores at one threshold.

    `scores` are probabilities (or any monotone score); a label is predicted when its
    score is > `threshold` (>= with `inclusive`). Keys: f1_micro, f1_macro (scikit-learn's
    mean of per-class F1, the headline), f1_macro_eq11 (the paper's eq. 11: harmonic mean of macro
    precision and macro recall), precision/recall micro/macro, lrap, threshold and
    per_class (code -> precision, recall, f1, support). Codes default to "0", "1", ...
    """
    y_true, scores = _check(y_true, scores)
    codes = list(classes) if classes is not None else [str(c) for c in range(y_true.shape[1])]
    if len(codes) != y_true.shape[1]:
        raise ValueError(f"{len(codes)} class names for {y_true.shape[1]} columns")
    tp, fp, fn = _counts(y_true, scores, np.array([threshold], dtype=np.float64), inclusive)
    at = {key: value[0] for key, value in _scores_from_counts(tp, fp, fn).items()}
    support = y_true.sum(axis=0)
    result: dict[str, Any] = {
        key: float(at[key])
        for key in (
            "f1_micro", "f1_macro", "f1_macro_eq11", "precision_micro", "recall_micro",
            "precision_macro", "recall_macro",
        )
    }  # fmt: skip
    result["lrap"] = lrap(y_true, scores)
    result["threshold"] = float(threshold)
    result["per_class"] = {
        code: {
            "precision": float(at["precision"][c]),
            "recall": float(at["recall"][c]),
            "f1": float(at["f1"][c]),
            "support": int(support[c]),
        }
        for c, code in enumerate(codes)
    }
    return result


def threshold_sweep(
    y_true: np.ndarray,
    scores: np.ndarray,
    grid: np.ndarray = THRESHOLD_GRID,
    inclusive: bool = False,
) -> dict[str, Any]:
    """F1 (micro, macro, eq. 11) at every threshold of `grid`, and the best thresholds.

    "Best" is the threshold maximising micro F1 (the paper's headline metric);
    `best_macro_threshold` maximises scikit-learn macro F1. Ties go to the lowest
    threshold. Returns plain lists so the result is JSON-ready.
    """
    y_true, scores = _check(y_true, scores)
    grid = np.asarray(grid, dtype=np.float64)
    swept = _scores_from_counts(*_counts(y_true, scores, grid, inclusive))
    micro, macro = swept["f1_micro"], swept["f1_macro"]
    return {
        "grid": grid.tolist(),
        "f1_micro": micro.tolist(),
        "f1_macro": macro.tolist(),
        "f1_macro_eq11": swept["f1_macro_eq11"].tolist(),
        "best_threshold": float(grid[np.argmax(micro)]),
        "best_f1_micro": float(micro.max()),
        "best_macro_threshold": float(grid[np.argmax(macro)]),
        "best_f1_macro": float(macro.max()),
    }


def single_label_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Accuracy and confusion matrix of the arg-max over (items, classes) scores.

    `labels` are (items,) class indices; confusion rows are the truth, columns the
    prediction (the paper's Fig. 5).
    """
    labels, scores = np.asarray(labels), np.asarray(scores)
    predicted = scores.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, labels=np.arange(scores.shape[1]))
    return {
        "accuracy": float((predicted == labels).mean()) if labels.size else 0.0,
        "confusion": matrix.tolist(),
    }
