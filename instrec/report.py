"""Tables (Markdown) and figures (PNG) from plain dicts and arrays.

Small writers shared by `instrec evaluate` and `instrec reproduce`. Figures are drawn on
matplotlib `Figure` objects (the Agg canvas, no pyplot state), and every file is written
to a temporary name and renamed, so a crash never leaves half a table or image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from instrec.atomic import atomic_path
from instrec.labels import IRMAS_NAMES

# One colour per compared run / series, readable in print and for colour-blind readers.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save a figure as PNG (150 dpi) through a temporary file and a rename."""
    with atomic_path(path) as temp:
        fig.savefig(temp, format="png", dpi=150, bbox_inches="tight")
    return Path(path)


def class_label(code: str) -> str:
    """A readable axis label: the IRMAS instrument name for a code, else the code itself."""
    return IRMAS_NAMES.get(code, code)


# ---------------------------------------------------------------- tables


def format_mean_std(values: Sequence[float], digits: int = 3) -> str:
    """Format as "0.674 ± 0.007": mean and sample standard deviation (ddof=1) over seeds.

    One value is printed alone (no spread is known); no value gives "–".
    """
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return "–"
    if data.size == 1:
        return f"{data[0]:.{digits}f}"
    return f"{data.mean():.{digits}f} ± {data.std(ddof=1):.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table; floats are printed with 3 decimals, the rest with str()."""

    def cell(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def mean_std_table(
    runs: Mapping[str, Sequence[Mapping[str, float]]],
    metrics: Sequence[str] = ("f1_micro", "f1_macro", "lrap"),
    first_column: str = "run",
    digits: int = 3,
) -> str:
    """Markdown table: one row per experiment, "mean ± std" over its seeds per metric.

    `runs` maps an experiment name to one metrics dict per seed (as metrics.json holds);
    a metric missing from some seeds is averaged over the seeds that have it.
    """
    rows = []
    for name, seeds in runs.items():
        cells = [format_mean_std([s[m] for s in seeds if m in s], digits) for m in metrics]
        rows.append([name, *cells, len(seeds)])
    return markdown_table([first_column, *metrics, "seeds"], rows)


# ---------------------------------------------------------------- figures


def per_class_f1_chart(
    runs: Mapping[str, Mapping[str, float]],
    path: str | Path,
    title: str = "F1 per instrument",
    ylabel: str = "F1",
) -> Path:
    """Grouped bars of per-class F1, one colour per run (the paper's Fig. 3 compares two).

    `runs` maps a run name to class code -> F1; classes follow the first run's order.
    """
    codes = list(next(iter(runs.values())))
    fig = Figure(figsize=(max(6.0, 2.0 + 0.45 * len(codes) * len(runs)), 4.0))
    ax = fig.add_subplot()
    width = 0.8 / len(runs)
    x = np.arange(len(codes))
    for i, (name, scores) in enumerate(runs.items()):
        heights = [scores.get(code, np.nan) for code in codes]
        offset = (i - (len(runs) - 1) / 2) * width
        ax.bar(x + offset, heights, width, label=name, color=COLOURS[i % len(COLOURS)])
    ax.set_xticks(x, [class_label(c) for c in codes], rotation=35, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if len(runs) > 1:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, path)


def f1_vs_fraction_plot(
    series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float] | None]],
    path: str | Path,
    title: str = "F1-micro vs amount of training data",
    ylabel: str = "F1-micro",
) -> Path:
    """Lines of F1 against the fraction of training data used (the paper's Fig. 4).

    `series` maps a name to (fractions in 0-1, mean F1, std F1 or None); the std is drawn
    as a shaded band.
    """
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    for i, (name, (fractions, means, stds)) in enumerate(series.items()):
        order = np.argsort(fractions)
        x, y = np.asarray(fractions)[order] * 100, np.asarray(means)[order]
        colour = COLOURS[i % len(COLOURS)]
        ax.plot(x, y, marker="o", label=name, color=colour)
        if stds is not None:
            spread = np.asarray(stds)[order]
            ax.fill_between(x, y - spread, y + spread, color=colour, alpha=0.2)
    ax.set_xlabel("training data used (%)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def f1_vs_params_plot(
    groups: Mapping[str, Mapping[str, tuple[float, float]]],
    path: str | Path,
    dots: Sequence[str] = (),
    title: str = "F1-micro vs trainable parameters",
    ylabel: str = "F1-micro",
) -> Path:
    """Scatter of F1 against parameter count, each point labelled (the paper's Fig. 7).

    `groups` maps a family ("ResNet", "ShaResNet", "previous work") to
    model name -> (parameters, F1); families are joined by a line in parameter order
    unless named in `dots`.
    """
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot()
    for i, (family, points) in enumerate(groups.items()):
        ordered = sorted(points.items(), key=lambda item: item[1][0])
        params = np.array([p for _, (p, _) in ordered]) / 1e6
        scores = np.array([f for _, (_, f) in ordered])
        style = "o" if family in dots else "o-"
        ax.plot(params, scores, style, label=family, color=COLOURS[i % len(COLOURS)])
        for name, (p, f) in ordered:
            ax.annotate(name, (p / 1e6, f), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.margins(x=0.15, y=0.1)  # room for the point labels
    ax.set_xlabel("trainable parameters (millions)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, path)


def threshold_sweep_plot(
    sweep: Mapping[str, Sequence[float]],
    path: str | Path,
    chosen: float | None = None,
    title: str = "F1 vs decision threshold",
) -> Path:
    """F1 (micro, macro, eq. 11) against the threshold, from `threshold_sweep`'s result;
    a dashed line marks the threshold the report uses."""
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    names = {
        "f1_micro": "F1-micro",
        "f1_macro": "F1-macro (mean of per-class F1)",
        "f1_macro_eq11": "F1-macro, paper eq. 11",
    }
    for i, (key, label) in enumerate(names.items()):
        ax.plot(sweep["grid"], sweep[key], label=label, color=COLOURS[i])
    if chosen is not None:
        ax.axvline(chosen, color="grey", linestyle="--", label=f"used: {chosen:.2f}")
    ax.set_xlabel("threshold on sigmoid probability")
    ax.set_ylabel("F1")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def confusion_matrix_plot(
    matrix: Sequence[Sequence[int]] | np.ndarray,
    classes: Sequence[str],
    path: str | Path,
    title: str = "Single predominant instrument",
) -> Path:
    """Row-normalised confusion matrix (rows truth, columns prediction: the paper's Fig. 5),
    each cell printed as a percentage of its row."""
    counts = np.asarray(matrix, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = max(5.0, 0.55 * len(classes) + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    labels = [class_label(c) for c in classes]
    ax.set_xticks(range(len(classes)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), labels)
    if len(classes) <= 20:
        for (r, c), value in np.ndenumerate(share):
            colour = "white" if value > 0.6 else "black"
            ax.text(c, r, f"{100 * value:.0f}", ha="center", va="center", fontsize=7, color=colour)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return save_figure(fig, path)


def tsne_plot(
    points: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    path: str | Path,
    title: str = "t-SNE of the penultimate embeddings",
) -> Path:
    """Scatter of 2-D points (items, 2) coloured by class index (the paper's Fig. 6)."""
    fig = Figure(figsize=(7.0, 6.0))
    ax = fig.add_subplot()
    palette = colormaps["tab20" if len(classes) > 10 else "tab10"]
    size = float(np.clip(6000 / max(1, len(points)), 6, 30))  # bigger dots when few
    for index, code in enumerate(classes):
        mask = labels == index
        if mask.any():
            # tab20: the ten strong colours first, then their light partners
            slot = (2 * index) % 20 + (2 * index // 20) % 2 if palette.N == 20 else index % 10
            colour = palette(slot)
            x, y = points[mask].T
            ax.scatter(x, y, s=size, color=colour, label=class_label(code), alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), markerscale=2.5, fontsize=8)
    return save_figure(fig, path)
