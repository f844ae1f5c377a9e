"""The report of `instrec reproduce`: the paper's tables and figures from finished cells.

An experiment's rows (recipe -> the metrics of its finished seeds) become a Markdown table
of mean ± sample std over seeds beside the paper's numbers, and for Fig. 3, 4 and 7 a PNG
too; `widths` (Fig. 7's ShaResNets made wider, with their parameters and MACs), `init`
(initialisations at equal pre-training compute) and its Fig. 4-style curve for the best
two are beyond the paper. `write_report` gathers every experiment into
OUT/report.md, one OUT/<experiment>.md per experiment and OUT/results.json; it is rerun
after every grid run, a view of the cells.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from instrec import report
from instrec.atomic import write_text_atomic
from instrec.experiments.presets import INIT_CURVE, SHIP, Recipe

# Table III's row names for instrec.experiments.reproduce.ABLATIONS
ABLATION_LABELS = {
    "all": "all",
    "no-mixup": "− mixup",
    "no-effects": "− audio effects",
    "no-both": "− both (mixup and effects)",
    "no-concat": "− concatenation",
}
METRICS = ("f1_micro", "f1_macro", "lrap")  # metrics.json keys every table reports
METRIC_NAMES = ("F1-micro", "F1-macro", "LRAP")
# The score tables' columns on the cross-source store, where the grid has one: (header,
# results.json key, which evaluation (instrec.experiments.grid.evaluations), the path
# into its metrics.json)
CrossColumn = tuple[str, str, str, tuple[str, ...]]
CROSS_SOURCE_COLUMNS: tuple[CrossColumn, ...] = (
    ("cross-source F1-micro", "cross_source_f1_micro", "model", ("f1_micro",)),
    ("cross-source best F1-micro", "cross_source_best_f1_micro", "model",
     ("sweep", "best_f1_micro")),
    ("cross-source F1-macro", "cross_source_f1_macro", "model", ("f1_macro",)),
    ("cross-source LRAP", "cross_source_lrap", "model", ("lrap",)),
    ("cross-source F1-micro, its valid threshold", "cross_source_f1_micro_valid", "valid",
     ("f1_micro",)),
)  # fmt: skip
CROSS_SOURCE_ABOUT = (
    "cross-source: rendered test songs whose labelled instruments all come from "
    "instrument families that no training data (notes, music, corpus) plays, scored at "
    "the model's threshold, at the best threshold on those songs themselves (best "
    "F1-micro: optimistic) and at the threshold best on the set's own valid songs"
)
# How the F1 threshold was picked (--threshold-from's choices), as the report says it
THRESHOLD_PROTOCOLS = {
    "validation": "the threshold that maximises F1-micro on the fine-tuning store's "
    "validation split (song-disjoint from training), applied to the test files",
    "test": "the threshold that maximises F1-micro on the test files themselves (the "
    "paper's protocol: optimistic)",
}

# The paper's numbers (IRMAS test; SPEC.md, paper Tables II-IV and Fig. 7), for comparison.
PAPER_TABLE2 = {
    "random": ("0.634 ± 0.008", "0.536 ± 0.013", "0.780 ± 0.006"),
    "all": ("0.674 ± 0.007", "0.584 ± 0.007", "0.814 ± 0.002"),
}
PAPER_TABLE3 = {
    "all": ("0.674 ± 0.007", "0.584 ± 0.007", "0.814 ± 0.002"),
    "no-mixup": ("0.657 ± 0.003", "0.560 ± 0.005", "0.804 ± 0.004"),
    "no-effects": ("0.671 ± 0.003", "0.576 ± 0.006", "0.812 ± 0.003"),
    "no-both": ("0.642 ± 0.005", "0.535 ± 0.003", "0.791 ± 0.004"),
    "no-concat": ("0.670 ± 0.001", "0.576 ± 0.002", "0.813 ± 0.001"),
}
PAPER_TABLE4: tuple[tuple[str, str, str, str, str], ...] = (
    ("Zhong et al. 2023: NSynth pre-trained ResNet34", "waveform", "0.674", "0.584", "0.814"),
    ("Zhong et al. 2023: random init (Table II)", "waveform", "0.634", "0.536", "0.780"),
    ("Avramidis et al.", "waveform", "0.608", "0.543", "0.747"),
    ("Kratimenos et al.", "CQT", "0.647", "0.546", "0.805"),
    ("Zhong et al. [19]: ResNet-50, 25.5 M parameters", "mel", "0.680", "0.600", "0.818"),
    ("Zhong et al. [19]: its 3-model ensemble", "mel", "0.688", "0.606", "0.826"),
    ("Reghunath & Rajan", "mel", "0.66", "0.62", "–"),
    ("Yu et al.", "mel", "0.661", "0.569", "–"),
    ("Pons et al.", "mel", "0.589", "0.516", "–"),
    ("Han et al.", "mel", "0.619", "0.513", "–"),
)
# `init`'s rows: what the fine-tuning starts from (Recipe.init)
INIT_LABELS = {
    "random": "random init",
    "all": "pre-trained on notes",
    "music": "pre-trained on rendered music",
    "notes+music": "notes, then rendered music",
}
PAPER_FIG7 = {  # F1-micro the paper prints for a backbone (pre-trained, all augmentations)
    "resnet34": "0.674 (1.3 M)",
    "sharesnet34": "0.663 (836 K)",
    "sharesnet18": "0.658 (519 K)",
}


def _cells(runs: Sequence[Mapping[str, Any]], metric: str) -> str:
    return report.format_mean_std([float(run[metric]) for run in runs if metric in run])


def _cross_value(run: Mapping[str, Any], evaluation: str, path: tuple[str, ...]) -> float | None:
    """One cross-source number of a seed; None where it has none."""
    value: Any = run.get("cross_source", {}).get(evaluation)
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return float(value)


def _cross_values(runs: Sequence[Mapping[str, Any]], column: CrossColumn) -> list[float]:
    _, _, evaluation, path = column
    values = (_cross_value(run, evaluation, path) for run in runs)
    return [value for value in values if value is not None]


def has_cross_source(rows: Mapping[Recipe, Sequence[Mapping[str, Any]]]) -> bool:
    """Whether any seed of these rows was evaluated on a cross-source store."""
    return any("cross_source" in run for runs in rows.values() for run in runs)


def _score_names(cross: bool) -> list[str]:
    return [*METRIC_NAMES, *(column[0] for column in CROSS_SOURCE_COLUMNS if cross)]


def _scores(runs: Sequence[Mapping[str, Any]], cross: bool = False) -> list[str]:
    """The seeds' mean ± std of every metric (and the cross-source columns)."""
    scores = [_cells(runs, metric) for metric in METRICS]
    if cross:
        scores += [report.format_mean_std(_cross_values(runs, c)) for c in CROSS_SOURCE_COLUMNS]
    return scores


def _paper(values: tuple[str, ...] | None) -> str:
    return " / ".join(values) if values else "–"


def table2(rows: Mapping[Recipe, Sequence[Mapping[str, Any]]]) -> str:
    """Table II: random initialisation vs pre-trained (all augmentations)."""
    cross = has_cross_source(rows)
    body = []
    for recipe, runs in rows.items():
        name = "random init" if recipe.pretrain is None else "pre-trained on notes"
        body.append([name, *_scores(runs, cross), len(runs), _paper(PAPER_TABLE2[recipe.init])])
    header = ["initialisation", *_score_names(cross), "seeds", "paper: F1-micro / F1-macro / LRAP"]
    return report.markdown_table(header, body)


def table3(rows: Mapping[Recipe, Sequence[Mapping[str, Any]]]) -> str:
    """Table III: pre-training augmentations left out one at a time."""
    cross = has_cross_source(rows)
    body = [
        [
            ABLATION_LABELS[recipe.init],
            *_scores(runs, cross),
            len(runs),
            _paper(PAPER_TABLE3[recipe.init]),
        ]
        for recipe, runs in rows.items()
    ]
    header = ["augmentations", *_score_names(cross), "seeds", "paper: F1-micro / F1-macro / LRAP"]
    return report.markdown_table(header, body)


def _series_name(recipe: Recipe) -> str:
    return "random init" if recipe.pretrain is None else "pre-trained"


def per_class_f1(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Class code -> its F1 in each seed."""
    scores: dict[str, list[float]] = {}
    for run in runs:
        for code, values in run.get("per_class", {}).items():
            scores.setdefault(code, []).append(float(values["f1"]))
    return scores


def fig3(rows: Mapping[Recipe, Sequence[Mapping[str, Any]]], out: Path) -> str:
    """Fig. 3: per-instrument F1 of both initialisations (chart and table of mean ± std)."""
    per_class = {_series_name(r): per_class_f1(runs) for r, runs in rows.items() if runs}
    if not per_class:
        return ""
    means = {name: {c: float(np.mean(v)) for c, v in s.items()} for name, s in per_class.items()}
    report.per_class_f1_chart(
        means, out / "fig3_per_class_f1.png", title="F1 per instrument (mean over seeds)"
    )
    codes = list(next(iter(per_class.values())))
    body = [
        [code, report.class_label(code), *(report.format_mean_std(s.get(code, [])) for s in
                                             per_class.values())]
        for code in codes
    ]  # fmt: skip
    return report.markdown_table(["class", "name", *per_class], body)


def fig4(rows: Mapping[Recipe, Sequence[Mapping[str, Any]]], out: Path) -> str:
    """Fig. 4: F1-micro against the share of fine-tuning data, both initialisations."""
    return fraction_curve(rows, out / FIGURES["fig4"], _series_name)


def init_table(rows: Mapping[Recipe, Sequence[Mapping[str, Any]]]) -> str:
    """Initialisations at equal pre-training compute: each row's optimiser steps beside
    its scores (the chain's steps are its notes and music stages together)."""
    cross = has_cross_source(rows)
    body = []
    for recipe, runs in rows.items():
        steps = sorted({int(run["pretrain_steps"]) for run in runs if "pretrain_steps" in run})
        shown = ", ".join(map(str, steps)) or "–"
        body.append([INIT_LABELS[recipe.init], shown, *_scores(runs, cross), len(runs)])
    header = ["initialisation", "pre-training steps", *_score_names(cross), "seeds"]
    return report.markdown_table(header, body)


def init_curve(rows: Mapping[Recipe, Sequence[Mapping[str, Any]]], out: Path) -> str:
    """Fig. 4's curve (one seed) for the best two initialisations of `init`."""
    if not rows:
        return "No initialisation of the init experiment has finished yet."
    return fraction_curve(rows, out / FIGURES[INIT_CURVE], lambda r: INIT_LABELS[r.init])


def fraction_curve(
    rows: Mapping[Recipe, Sequence[Mapping[str, Any]]],
    path: Path,
    name_of: Callable[[Recipe], str],
) -> str:
    """F1-micro against the share of fine-tuning data, one series per `name_of`, mean ±
    std over seeds: a figure at `path` and a table (series in the order met)."""
    series: dict[str, tuple[list[float], list[float], list[float] | None]] = {}
    table: dict[float, dict[str, str]] = {}
    names: list[str] = []
    for recipe, runs in rows.items():
        name = name_of(recipe)
        names += [name] if name not in names else []
        table.setdefault(recipe.fraction, {})[name] = _cells(runs, "f1_micro")
        if not runs:
            continue
        values = [float(run["f1_micro"]) for run in runs]
        fractions, means, stds = series.setdefault(name, ([], [], []))
        fractions.append(recipe.fraction)
        means.append(float(np.mean(values)))
        assert stds is not None
        stds.append(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
    if series:
        report.f1_vs_fraction_plot(series, path)
    body = [
        [f"{100 * f:g} %", *(cells.get(n, "–") for n in names)]
        for f, cells in sorted(table.items())
    ]
    curve = report.markdown_table(["fine-tuning data", *(f"F1-micro, {n}" for n in names)], body)
    return f"{curve}\nEvery score of every point:\n\n{_points_table(rows, name_of, names)}"


def _points_table(
    rows: Mapping[Recipe, Sequence[Mapping[str, Any]]],
    name_of: Callable[[Recipe], str],
    names: Sequence[str],
) -> str:
    """A curve's points, one row each (series in `names` order, then by share), with every
    score the tables report: F1 at a threshold is noisy on small shares, LRAP is not."""
    cross = has_cross_source(rows)
    ordered = sorted(
        rows.items(), key=lambda item: (names.index(name_of(item[0])), item[0].fraction)
    )
    body = [
        [name_of(recipe), f"{100 * recipe.fraction:g} %", *_scores(runs, cross), len(runs)]
        for recipe, runs in ordered
    ]
    header = ["initialisation", "fine-tuning data", *_score_names(cross), "seeds"]
    return report.markdown_table(header, body)


# the F1-vs-parameters plots' points: line -> point label -> (parameters, mean F1-micro)
Points = dict[str, dict[str, tuple[float, float]]]


def _model_count(runs: Sequence[Mapping[str, Any]], key: str) -> int | None:
    """A count of the row's model (the same in every seed: parameters, MACs); None where
    no seed has it (metrics of an older instrec)."""
    counts = [int(run[key]) for run in runs if key in run]
    return counts[0] if counts else None


def _thousands(count: int | None) -> str:
    return "–" if count is None else f"{count:,}"


def _giga(count: int | None) -> str:
    return "–" if count is None else f"{count / 1e9:.3g}G"


def _add_point(points: Points, line: str, label: str, runs: Sequence[Mapping[str, Any]]) -> None:
    """A row's (parameters, mean F1-micro) on `line`, where its seeds counted parameters."""
    params = _model_count(runs, "parameters")
    if params is not None:
        mean = float(np.mean([float(run["f1_micro"]) for run in runs]))
        points.setdefault(line, {})[label] = (float(params), mean)


def _params_plot(points: Points, path: Path, title: str) -> None:
    if points:
        report.f1_vs_params_plot(points, path, title=title)


def fig7(rows: Mapping[Recipe, Sequence[Mapping[str, Any]]], out: Path) -> str:
    """Fig. 7: F1-micro against trainable parameters for the six backbones."""
    points: Points = {}
    body = []
    for recipe, runs in rows.items():
        params = _model_count(runs, "parameters")
        paper = PAPER_FIG7.get(recipe.model, "–")
        body.append([recipe.model, _thousands(params), _cells(runs, "f1_micro"), len(runs), paper])
        family = "ShaResNet" if recipe.model.startswith("sharesnet") else "ResNet"
        _add_point(points, family, recipe.model, runs)
    _params_plot(points, out / FIGURES["fig7"], "F1-micro vs trainable parameters")
    header = ["backbone", "parameters", "F1-micro", "seeds", "paper: F1-micro (parameters)"]
    return report.markdown_table(header, body)


def widths(rows: Mapping[Recipe, Sequence[Mapping[str, Any]]], out: Path) -> str:
    """Wider ShaResNets on the same data: what each width costs (parameters, MACs per
    second of audio) beside what it scores; the figure has one line per backbone."""
    points: Points = {}
    body = []
    for recipe, runs in rows.items():
        width = f"×{recipe.width:g}"
        params = _thousands(_model_count(runs, "parameters"))
        macs = _giga(_model_count(runs, "macs_per_second"))
        scores = [_cells(runs, "f1_micro"), _cells(runs, "lrap")]
        body.append([recipe.model, width, params, macs, *scores, len(runs)])
        _add_point(points, recipe.model, width, runs)
    _params_plot(points, out / FIGURES["widths"], "Wider ShaResNets: F1-micro vs parameters")
    header = ["backbone", "width", "parameters", "MACs per 1 s of audio", "F1-micro", "LRAP"]
    return report.markdown_table([*header, "seeds"], body)


def table4(rows: Mapping[Recipe, Sequence[Mapping[str, Any]]], setting: str) -> str:
    """Table IV: our numbers (mean ± std) beside the paper's, each row marked."""
    cross = has_cross_source(rows)
    body: list[list[object]] = []
    for recipe, runs in rows.items():
        name = "random init" if recipe.pretrain is None else "pre-trained on notes"
        features = "mel spectrogram" if recipe.model.endswith("-mel") else "waveform"
        body.append([f"**ours** ({setting}): {name}", features, *_scores(runs, cross)])
    unknown = ["–"] * len(CROSS_SOURCE_COLUMNS) if cross else []
    body += [[f"paper: {name}", *values, *unknown] for name, *values in PAPER_TABLE4]
    return report.markdown_table(["method", "features", *_score_names(cross)], body)


SECTIONS = {
    "table2": "Table II: random initialisation vs pre-training",
    "fig3": "Fig. 3: F1 per instrument",
    "table3": "Table III: pre-training augmentation ablations",
    "fig4": "Fig. 4: share of the fine-tuning data",
    "fig7": "Fig. 7: F1 vs trainable parameters",
    "widths": "Beyond the paper: wider ShaResNets (width multipliers)",
    "table4": "Table IV: our numbers beside the paper's",
    "init": "Beyond the paper: initialisations at equal pre-training compute",
    SHIP: "The shipped model's recipe: the preset's initialisation",
    INIT_CURVE: "Beyond the paper: share of the fine-tuning data for the best two "
    "initialisations (one seed)",
}
FIGURES = {
    "fig3": "fig3_per_class_f1.png",
    "fig4": "fig4_f1_vs_fraction.png",
    "fig7": "fig7_f1_vs_params.png",
    "widths": "widths_f1_vs_params.png",
    INIT_CURVE: "init_f1_vs_fraction.png",
}


def experiment_markdown(
    experiment: str, rows: Mapping[Recipe, Sequence[Mapping[str, Any]]], out: Path, setting: str
) -> str:
    """One experiment's table (and figure, written into `out`) as Markdown."""
    if experiment == "table2":
        return table2(rows)
    if experiment == "table3":
        return table3(rows)
    if experiment == "table4":
        return table4(rows, setting)
    if experiment in ("init", SHIP):
        return init_table(rows)
    figures = {"fig3": fig3, "fig4": fig4, "fig7": fig7, "widths": widths, INIT_CURVE: init_curve}
    text = figures[experiment](rows, out)
    if (out / FIGURES[experiment]).is_file():
        text += f"\n![{SECTIONS[experiment]}]({FIGURES[experiment]})\n"
    return text


def _cross_summary(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """results.json's cross-source numbers of a row, per seed (none without them)."""
    if not any("cross_source" in run for run in runs):
        return {}
    return {column[1]: _cross_values(runs, column) for column in CROSS_SOURCE_COLUMNS}


def write_report(
    out: Path,
    results: Mapping[str, Mapping[Recipe, Sequence[Mapping[str, Any]]]],
    context: Mapping[str, Any],
    preset_about: str,
) -> Path:
    """OUT/report.md (every table and figure), one .md per table, results.json.

    `context` says how the numbers were made (preset, seeds, data, threshold protocol,
    caveat, failed cells) and is saved whole in results.json; `preset_about` describes
    its preset (instrec.experiments.reproduce.Preset.about).
    """
    setting = f"{context['preset']} preset, {context['data']}"
    lines = [
        "# instrec reproduce: Zhong et al. 2023 on this machine",
        "",
        f"- preset **{context['preset']}** ({preset_about}); "
        f"seeds {', '.join(map(str, context['seeds']))}",
        f"- data: {context['data']}; stores: {'; '.join(context['stores'])}",
        f"- threshold: **{context['threshold_from']}**: "
        f"{THRESHOLD_PROTOCOLS[context['threshold_from']]}. LRAP needs no threshold.",
        "- numbers are mean ± sample standard deviation over the seeds (a single seed: "
        "the value alone); F1-macro is the mean of per-class F1 (scikit-learn)",
        f"- written {time.strftime('%Y-%m-%d %H:%M %Z')}; each cell's run and evaluation "
        "are under cells/ (this report is rebuilt from them on every run)",
    ]
    if any(has_cross_source(rows) for rows in results.values()):
        lines.append(f"- {CROSS_SOURCE_ABOUT}")
    if context.get("overrides"):
        lines.append(f"- config overrides: `{' '.join(context['overrides'])}`")
    if context.get("caveat"):
        lines += ["", f"> **Caveat.** {context['caveat']}"]
    if context.get("failed"):
        failed = len(context["failed"])
        lines += [
            "",
            f"**{failed} cell{'s' if failed > 1 else ''} failed** (their rows lack seeds):",
            "",
        ]
        lines += [f"- {line}" for line in context["failed"]]
    for experiment, rows in results.items():
        text = experiment_markdown(experiment, rows, out, setting)
        write_text_atomic(out / f"{experiment}.md", text)
        lines += ["", f"## {SECTIONS[experiment]}", "", text]
    path = write_text_atomic(out / "report.md", "\n".join(lines).rstrip() + "\n")
    summary = {
        experiment: [
            {
                "init": recipe.init,
                "model": recipe.model,
                "fraction": recipe.fraction,
                "width": recipe.width,
                "seeds": len(runs),
                **{m: [float(run[m]) for run in runs] for m in METRICS},
                **_cross_summary(runs),
            }
            for recipe, runs in rows.items()
        ]
        for experiment, rows in results.items()
    }
    data = {"context": dict(context), "results": summary}
    write_text_atomic(out / "results.json", json.dumps(data, indent=2, default=str) + "\n")
    return path
