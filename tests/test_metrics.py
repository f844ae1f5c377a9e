"""Multi-label scores against scikit-learn, on random and edge-case arrays."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    f1_score,
    label_ranking_average_precision_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
)

from instrec.evaluate import multilabel_metrics as exported_metrics
from instrec.metrics import (
    THRESHOLD_GRID,
    lrap,
    multilabel_metrics,
    single_label_metrics,
    threshold_sweep,
)


def _random_case(seed: int, items: int = 200, classes: int = 11) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = (rng.random((items, classes)) < 0.25).astype(np.float32)
    # scores correlated with the truth, so thresholds matter
    scores = np.clip(0.35 * y_true + 0.65 * rng.random((items, classes)), 0, 1)
    return y_true, scores


def _assert_matches_sklearn(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> None:
    got = multilabel_metrics(y_true, scores, threshold)
    y_pred = (scores > threshold).astype(int)
    kw = {"zero_division": 0}
    assert got["f1_micro"] == pytest.approx(f1_score(y_true, y_pred, average="micro", **kw))
    assert got["f1_macro"] == pytest.approx(f1_score(y_true, y_pred, average="macro", **kw))
    for average in ("micro", "macro"):
        assert got[f"precision_{average}"] == pytest.approx(
            precision_score(y_true, y_pred, average=average, **kw)
        )
        assert got[f"recall_{average}"] == pytest.approx(
            recall_score(y_true, y_pred, average=average, **kw)
        )
    assert got["lrap"] == pytest.approx(label_ranking_average_precision_score(y_true, scores))
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, average=None, **kw)
    per_class = got["per_class"]
    assert [per_class[str(c)]["precision"] for c in range(y_true.shape[1])] == pytest.approx(p)
    assert [per_class[str(c)]["recall"] for c in range(y_true.shape[1])] == pytest.approx(r)
    assert [per_class[str(c)]["f1"] for c in range(y_true.shape[1])] == pytest.approx(f)
    assert [per_class[str(c)]["support"] for c in range(y_true.shape[1])] == list(support)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.77])
def test_random_arrays_match_sklearn(seed: int, threshold: float) -> None:
    _assert_matches_sklearn(*_random_case(seed), threshold)


def test_class_without_positives_matches_sklearn() -> None:
    y_true, scores = _random_case(3)
    y_true[:, 4] = 0  # no positives: recall and F1 are 0 by zero_division, precision 0
    scores[:, 4] = 0.0  # and never predicted
    _assert_matches_sklearn(y_true, scores, 0.5)
    assert multilabel_metrics(y_true, scores, 0.5)["per_class"]["4"]["f1"] == 0.0


def test_all_zero_predictions_match_sklearn() -> None:
    y_true, scores = _random_case(4)
    got = multilabel_metrics(y_true, scores, threshold=1.0)  # nothing exceeds 1
    assert got["f1_micro"] == got["f1_macro"] == got["f1_macro_eq11"] == 0.0
    assert got["precision_micro"] == 0.0
    _assert_matches_sklearn(y_true, scores, 1.0)


def test_items_without_labels_match_sklearn() -> None:
    y_true, scores = _random_case(5)
    y_true[:10] = 0  # LRAP: scikit-learn scores such rows 1
    _assert_matches_sklearn(y_true, scores, 0.5)


def test_eq11_on_a_hand_computed_example() -> None:
    # class 0: tp 1, fp 1, fn 0 -> P 1/2, R 1; class 1: tp 1, fp 0, fn 2 -> P 1, R 1/3
    y_true = np.array([[1, 1], [0, 1], [0, 1], [0, 0]])
    scores = np.array([[0.9, 0.9], [0.9, 0.1], [0.1, 0.2], [0.1, 0.1]])
    got = multilabel_metrics(y_true, scores, 0.5, classes=["a", "b"])
    p_macro, r_macro = (1 / 2 + 1) / 2, (1 + 1 / 3) / 2  # 3/4, 2/3
    assert got["precision_macro"] == pytest.approx(0.75)
    assert got["recall_macro"] == pytest.approx(2 / 3)
    assert got["f1_macro_eq11"] == pytest.approx(2 * p_macro * r_macro / (p_macro + r_macro))
    assert got["f1_macro_eq11"] == pytest.approx(12 / 17)
    # scikit-learn's macro F1 averages per-class F1 instead: (2/3 + 1/2) / 2
    assert got["f1_macro"] == pytest.approx(7 / 12)
    assert got["per_class"]["b"] == {"precision": 1.0, "recall": pytest.approx(1 / 3),
                                     "f1": 0.5, "support": 3}  # fmt: skip
    # micro: tp 2, fp 1, fn 2
    assert got["f1_micro"] == pytest.approx(4 / 7)


def test_evaluate_module_exports_the_same_function() -> None:
    assert exported_metrics is multilabel_metrics


def test_sweep_agrees_with_pointwise_metrics_and_picks_the_max() -> None:
    y_true, scores = _random_case(6, items=120)
    sweep = threshold_sweep(y_true, scores)
    assert sweep["grid"] == pytest.approx(THRESHOLD_GRID.tolist())
    assert len(sweep["grid"]) == 99 and sweep["grid"][0] == 0.01 and sweep["grid"][-1] == 0.99
    for i in (0, 30, 64, 98):
        point = multilabel_metrics(y_true, scores, sweep["grid"][i])
        for key in ("f1_micro", "f1_macro", "f1_macro_eq11"):
            assert sweep[key][i] == pytest.approx(point[key])
    best = int(np.argmax(sweep["f1_micro"]))
    assert sweep["best_threshold"] == sweep["grid"][best]
    assert sweep["best_f1_micro"] == max(sweep["f1_micro"])
    assert sweep["best_f1_macro"] == max(sweep["f1_macro"])
    assert sweep["f1_macro"][sweep["grid"].index(sweep["best_macro_threshold"])] == max(
        sweep["f1_macro"]
    )


def test_sweep_finds_a_separating_threshold() -> None:
    y_true = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    scores = np.where(y_true == 1, 0.62, 0.4)  # perfectly separable between 0.40 and 0.62
    sweep = threshold_sweep(y_true, scores)
    assert sweep["best_f1_micro"] == 1.0
    assert 0.40 <= sweep["best_threshold"] < 0.62
    assert sweep["best_threshold"] == 0.40  # ties go to the lowest threshold


def test_lrap_of_perfect_and_reversed_rankings() -> None:
    y_true = np.array([[1, 0, 0], [0, 1, 1]])
    assert lrap(y_true, np.array([[0.9, 0.1, 0.2], [0.1, 0.8, 0.7]])) == 1.0
    # row 0: true label ranked 3rd -> 1/3; row 1: true labels ranked 2, 3 -> (1/2 + 2/3) / 2
    got = lrap(y_true, np.array([[0.1, 0.9, 0.5], [0.9, 0.5, 0.4]]))
    assert got == pytest.approx((1 / 3 + (1 / 2 + 2 / 3) / 2) / 2)


def test_bad_shapes_and_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match="equal 2-D"):
        multilabel_metrics(np.zeros((3, 2)), np.zeros((3, 3)), 0.5)
    with pytest.raises(ValueError, match="multi-hot"):
        multilabel_metrics(np.full((3, 2), 0.5), np.zeros((3, 2)), 0.5)
    with pytest.raises(ValueError, match="class names"):
        multilabel_metrics(np.zeros((3, 2)), np.zeros((3, 2)), 0.5, classes=["a"])


def test_single_label_accuracy_and_confusion() -> None:
    labels = np.array([0, 1, 2, 2, 1])
    scores = np.array([[3, 1, 0], [0, 2, 1], [0, 1, 5], [4, 0, 1], [0, 0, 9]], dtype=float)
    got = single_label_metrics(labels, scores)
    assert got["accuracy"] == pytest.approx(3 / 5)
    # rows: truth, columns: prediction
    assert got["confusion"] == [[1, 0, 0], [0, 1, 1], [1, 0, 1]]
