"""The activity plot of `instrec predict --timeline`: each instrument's probability over time.

A heat map, one row per class and one cell per 1 s window: each window's cell spans the
time nearer its centre than its neighbours' (0.5 s at 50 % overlap), so the overlapping
windows tile the time axis. Rows of the instruments the file is tagged with are marked,
and cells at or above the threshold carry a bar.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from instrec.audio import SAMPLE_RATE
from instrec.labels import IRMAS_NAMES
from instrec.tagging.geometry import WINDOW
from instrec.tagging.tagger import Prediction


def timeline_figure(prediction: Prediction, classes: Sequence[str], threshold: float) -> Figure:
    """A Figure (Agg, no pyplot state) of `prediction`'s per-window probabilities."""
    assert prediction.window_starts_s is not None and prediction.window_probabilities is not None
    probabilities = prediction.window_probabilities.T  # (classes, windows)
    centres = prediction.window_starts_s + WINDOW / SAMPLE_RATE / 2  # s
    edges = _cell_edges(centres, prediction.window_starts_s[-1] + WINDOW / SAMPLE_RATE)
    duration = prediction.duration_s or 0.0
    fig = Figure(figsize=(min(24.0, 4.0 + 0.12 * len(centres)), 0.35 * len(classes) + 1.6))
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(
        edges, np.arange(len(classes) + 1), probabilities, cmap="magma", vmin=0.0, vmax=1.0
    )
    rows, cells = np.nonzero(probabilities >= threshold)
    ax.hlines(rows + 0.5, edges[cells], edges[cells + 1], colors="#56B4E9", linewidths=3)
    labels = [
        f"{'● ' if code in prediction.instruments else ''}{IRMAS_NAMES.get(code, code)}"
        for code in classes
    ]
    ax.set_yticks(np.arange(len(classes)) + 0.5, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, max(duration, edges[-1]))
    ax.set_xlabel("time (s)")
    ax.set_title(
        f"{prediction.path}: probability per 1 s window (blue bar: >= {threshold:.2f}; ● tagged)",
        fontsize=9,
    )
    fig.colorbar(mesh, ax=ax, fraction=0.03, pad=0.01, label="probability")
    return fig


def _cell_edges(centres: np.ndarray, end: float) -> np.ndarray:
    """Cell edges (s) around window `centres`: 0, the midpoints between neighbours, `end`."""
    return np.concatenate([[0.0], (centres[1:] + centres[:-1]) / 2, [end]])
