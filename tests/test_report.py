"""Tables and figures: mean ± std over seeds, Markdown, PNGs written whole."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from instrec import report
from instrec.labels import IRMAS_CLASSES
from instrec.metrics import threshold_sweep


def test_format_mean_std_uses_the_sample_standard_deviation() -> None:
    values = [0.667, 0.674, 0.681]
    expected = f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"
    assert report.format_mean_std(values) == expected == "0.674 ± 0.007"
    assert report.format_mean_std([0.5, 0.6], digits=2) == "0.55 ± 0.07"
    assert report.format_mean_std([0.6581]) == "0.658"  # one seed: no spread to show
    assert report.format_mean_std([]) == "–"


def test_markdown_table_layout() -> None:
    table = report.markdown_table(["model", "F1", "n"], [["a", 0.12345, 3], ["b", "x", 1]])
    assert table.splitlines() == [
        "| model | F1 | n |",
        "|---|---|---|",
        "| a | 0.123 | 3 |",
        "| b | x | 1 |",
    ]


def test_mean_std_table_summarises_seeds() -> None:
    runs = {
        "random init": [{"f1_micro": 0.63, "lrap": 0.78}, {"f1_micro": 0.64, "lrap": 0.79}],
        "pre-trained": [{"f1_micro": 0.674}],
    }
    lines = report.mean_std_table(runs, metrics=("f1_micro", "lrap")).splitlines()
    assert lines[0] == "| run | f1_micro | lrap | seeds |"
    assert lines[2] == "| random init | 0.635 ± 0.007 | 0.785 ± 0.007 | 2 |"
    assert lines[3] == "| pre-trained | 0.674 | – | 1 |"


def _assert_png(path: Path, min_width: int = 400) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)  # (height, width, channels)
    assert image.shape[1] >= min_width and image.shape[0] >= 300
    assert image[..., :3].std() > 0.05  # something is drawn, not a blank canvas
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_figures_are_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    f1 = {code: float(v) for code, v in zip(IRMAS_CLASSES, rng.uniform(0.2, 0.9, 11), strict=True)}
    other = {code: v * 0.9 for code, v in f1.items()}
    _assert_png(
        report.per_class_f1_chart({"pre-trained": f1, "scratch": other}, tmp_path / "3.png")
    )
    fractions = [0.1, 0.5, 1.0]
    series = {
        "pre-trained": (fractions, [0.5, 0.6, 0.67], [0.01, 0.01, 0.005]),
        "scratch": (fractions, [0.4, 0.55, 0.63], None),
    }
    _assert_png(report.f1_vs_fraction_plot(series, tmp_path / "4.png"))
    groups = {
        "ResNet": {"ResNet34": (1.3e6, 0.674)},
        "ShaResNet": {"ShaResNet18": (519e3, 0.658), "ShaResNet34": (836e3, 0.663)},
        "previous": {"Han": (1.4e6, 0.602)},
    }
    _assert_png(report.f1_vs_params_plot(groups, tmp_path / "7.png", dots=["previous"]))
    y_true = (rng.random((50, 11)) < 0.3).astype(int)
    sweep = threshold_sweep(y_true, rng.random((50, 11)))
    _assert_png(report.threshold_sweep_plot(sweep, tmp_path / "sweep.png", chosen=0.3))
    confusion = rng.integers(0, 20, (11, 11))
    _assert_png(report.confusion_matrix_plot(confusion, IRMAS_CLASSES, tmp_path / "5.png"))
    points, labels = rng.normal(size=(100, 2)), rng.integers(0, 11, 100)
    _assert_png(report.tsne_plot(points, labels, IRMAS_CLASSES, tmp_path / "6.png"))


def test_confusion_rows_are_normalised_even_for_an_empty_class(tmp_path: Path) -> None:
    # a class with no items must not divide by zero (its row stays empty)
    confusion = np.array([[3, 1], [0, 0]])
    with np.errstate(all="raise"):
        path = report.confusion_matrix_plot(confusion, ["cel", "cla"], tmp_path / "c.png")
    assert path.stat().st_size > 0


def test_class_labels_use_instrument_names() -> None:
    assert report.class_label("gac") == "acoustic guitar"
    assert report.class_label("keyboard_acoustic_004") == "keyboard_acoustic_004"


def test_a_failed_save_leaves_neither_file_nor_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_write(self: Figure, fname: str, **kwargs: object) -> None:
        Path(fname).write_bytes(b"\x89PNG half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_write)
    with pytest.raises(RuntimeError, match="disk full"):
        report.per_class_f1_chart({"F1": {"cel": 0.5}}, tmp_path / "f1.png")
    assert list(tmp_path.iterdir()) == []
