"""The reproduction's report: Tables II-IV and Fig. 3/4/7 from per-seed metrics.

Rows are written by hand (scores chosen so mean and sample std are known), so each table
cell, figure file and the report's header can be checked against the expected text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from instrec import report
from instrec.experiments import report as rr
from instrec.experiments.presets import Recipe
from instrec.model.zoo import MODEL_NAMES


def runs(*f1: float) -> list[dict[str, Any]]:
    return [
        {"f1_micro": v, "f1_macro": v - 0.1, "lrap": v + 0.2, "parameters": 5000,
         "per_class": {"cel": {"f1": v}, "vio": {"f1": 1 - v}}}
        for v in f1
    ]  # fmt: skip


def test_table2_shows_mean_and_sample_std_over_seeds_beside_the_paper() -> None:
    text = rr.table2({Recipe(None, "m"): runs(0.6, 0.7), Recipe("all", "m"): runs(0.8)})
    random_row, pretrained_row = text.splitlines()[2:4]
    # 0.6, 0.7: mean 0.65, sample std 0.0707
    assert "| random init | 0.650 ± 0.071 | 0.550 ± 0.071 | 0.850 ± 0.071 | 2 |" in random_row
    assert "0.634 ± 0.008 / 0.536 ± 0.013 / 0.780 ± 0.006" in random_row  # the paper's
    assert "| pre-trained on notes | 0.800 | 0.700 | 1.000 | 1 |" in pretrained_row


def test_figures_and_their_tables_are_written(tmp_path: Path) -> None:
    rows = {Recipe(None, "m"): runs(0.4, 0.6), Recipe("all", "m"): runs(0.7, 0.9)}
    text = rr.fig3(rows, tmp_path)
    assert (tmp_path / "fig3_per_class_f1.png").stat().st_size > 1000
    assert "| cel | cello | 0.500 ± 0.141 | 0.800 ± 0.141 |" in text

    fractions = {Recipe(init, "m", f): runs(0.3 + f / 2, 0.4 + f / 2)
                 for init in (None, "all") for f in (0.1, 1.0)}  # fmt: skip
    text = rr.fig4(fractions, tmp_path)
    assert (tmp_path / "fig4_f1_vs_fraction.png").is_file()
    assert "| 10 % | 0.400 ± 0.071 | 0.400 ± 0.071 |" in text
    # every score of every point, series by series (LRAP is steadier than F1 on small shares)
    points = text.split("Every score of every point:")[1].splitlines()
    assert "| random init | 10 % | 0.400 ± 0.071 | 0.300 ± 0.071 | 0.600 ± 0.071 | 2 |" in points
    assert (
        points.index("| pre-trained | 100 % | 0.850 ± 0.071 | 0.750 ± 0.071 | 1.050 ± 0.071 | 2 |")
        == len(points) - 1
    )

    backbones = {Recipe("all", name): runs(0.5) for name in MODEL_NAMES}
    backbones[Recipe("all", "resnet18")] = []  # not finished: a row without numbers
    text = rr.fig7(backbones, tmp_path)
    assert (tmp_path / "fig7_f1_vs_params.png").is_file()
    assert "| resnet34 | 5,000 | 0.500 | 1 | 0.674 (1.3 M) |" in text
    assert "| resnet18 | – | – | 0 | – |" in text


def test_widths_shows_what_each_width_costs_and_plots_a_line_per_backbone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def costed(params: int, macs: int, *f1: float) -> list[dict[str, Any]]:
        return [{**run, "parameters": params, "macs_per_second": macs} for run in runs(*f1)]

    rows = {
        Recipe("all", "sharesnet18", width=1.0): costed(519_301, 384_601_600, 0.5, 0.6),
        Recipe("all", "sharesnet18", width=2.0): costed(2_041_333, 1_495_642_624, 0.7),
        Recipe("all", "sharesnet34", width=1.0): [{"f1_micro": 0.6, "lrap": 0.8}],  # older
        Recipe("all", "sharesnet34", width=4.0): [],  # not finished
    }
    plotted: list[Any] = []
    plot = report.f1_vs_params_plot

    def recording(groups: Any, *args: Any, **kwargs: Any) -> Path:
        plotted.append(groups)
        return plot(groups, *args, **kwargs)

    monkeypatch.setattr(report, "f1_vs_params_plot", recording)
    text = rr.experiment_markdown("widths", rows, tmp_path, "tiny preset")
    assert "| backbone | width | parameters | MACs per 1 s of audio | F1-micro | LRAP |" in text
    assert "| sharesnet18 | ×1 | 519,301 | 0.385G | 0.550 ± 0.071 | 0.750 ± 0.071 | 2 |" in text
    assert "| sharesnet18 | ×2 | 2,041,333 | 1.5G | 0.700 | 0.900 | 1 |" in text
    assert "| sharesnet34 | ×1 | – | – | 0.600 | 0.800 | 1 |" in text
    assert "| sharesnet34 | ×4 | – | – | – | – | 0 |" in text
    assert (tmp_path / "widths_f1_vs_params.png").stat().st_size > 1000
    assert "](widths_f1_vs_params.png)" in text
    assert plotted == [{"sharesnet18": {"×1": (519_301.0, 0.55), "×2": (2_041_333.0, 0.7)}}]


def test_report_marks_the_papers_numbers_and_says_how_it_was_made(tmp_path: Path) -> None:
    rows = {Recipe(None, "m"): runs(0.6, 0.7), Recipe("all", "m"): runs(0.8, 0.9)}
    context = {
        "preset": "tiny", "seeds": [0, 1], "data": "rendered notes and ensembles",
        "stores": ["a", "b", "c"], "threshold_from": "test", "overrides": ["trainer.epochs=1"],
        "caveat": "Rendered, not real.", "failed": ["x-s0: the loss is not finite"],
    }  # fmt: skip
    path = rr.write_report(tmp_path, {"table2": rows, "table4": rows}, context, "CPU, minutes")
    text = path.read_text()
    assert "paper's protocol: optimistic" in text and "trainer.epochs=1" in text
    assert "- preset **tiny** (CPU, minutes); seeds 0, 1" in text
    assert "> **Caveat.** Rendered, not real." in text
    assert "**1 cell failed** (their rows lack seeds):\n\n- x-s0: the loss is not finite" in text
    ours = "| **ours** (tiny preset, rendered notes and ensembles): pre-trained on notes | "
    assert ours + "waveform | 0.850 ± 0.071 |" in text
    assert (
        "| paper: Zhong et al. [19]: its 3-model ensemble | mel | 0.688 | 0.606 | 0.826 |" in text
    )
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"]["table2"][1]["f1_micro"] == [0.8, 0.9]
    assert (tmp_path / "table2.md").read_text() in text
