"""What `instrec predict` prints or writes: a table, JSON, CSV, and per-window timeline CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from instrec.audio import SAMPLE_RATE
from instrec.labels import IRMAS_NAMES
from instrec.tagging.geometry import WINDOW
from instrec.tagging.tagger import Prediction

MAX_PATH_COLUMN = 60  # characters: a longer path overflows its line, not every line


def format_table(predictions: Sequence[Prediction], threshold: float) -> str:
    """One readable line per file: its length and its instruments with probabilities."""
    width = min(max([len(_shown(p.path)) for p in predictions] + [4]), MAX_PATH_COLUMN)
    lines = [f"{'file':<{width}}  {'length':>8}  instruments (probability >= {threshold:.2f})"]
    for p in predictions:
        path = _shown(p.path)
        if p.error is not None:
            lines.append(f"{path:<{width}}  {'-':>8}  skipped: {_shown(p.error)}")
            continue
        length = f"{p.duration_s:.1f} s" + ("*" if p.padded else "")
        if p.instruments:
            found = ", ".join(f"{_name(c)} {p.probabilities[c]:.2f}" for c in p.instruments)
        else:
            best = max(p.probabilities, key=p.probabilities.__getitem__)
            found = f"none (most probable: {_name(best)} {p.probabilities[best]:.2f})"
        lines.append(f"{path:<{width}}  {length:>8}  {found}")
    if any(p.padded for p in predictions):
        lines.append("* shorter than 1 s: zero-padded to one window")
    return "\n".join(lines) + "\n"


def format_json(predictions: Sequence[Prediction], timeline: bool = False) -> str:
    """A JSON list, one object per file (see Prediction.as_dict); strict JSON (a NaN would
    raise rather than be written as the invalid bare `NaN`)."""
    return json.dumps([p.as_dict(timeline) for p in predictions], indent=2, allow_nan=False) + "\n"


def format_csv(predictions: Sequence[Prediction], classes: Sequence[str]) -> str:
    """One row per file: path, error, duration_s, padded, instruments (space-separated),
    then one probability column per class."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "error", "duration_s", "padded", "instruments", *classes])
    for p in predictions:
        probabilities = [p.probabilities.get(c, "") for c in classes]
        duration = "" if p.duration_s is None else p.duration_s
        writer.writerow(
            [
                _shown(p.path),
                _shown(p.error or ""),
                duration,
                int(p.padded),
                " ".join(p.instruments),
                *probabilities,
            ]
        )
    return out.getvalue()


def timeline_csv(prediction: Prediction, classes: Sequence[str]) -> str:
    """Per-window probabilities of one file: start_s, end_s, then one column per class."""
    assert prediction.window_starts_s is not None and prediction.window_probabilities is not None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["start_s", "end_s", *classes])
    for start, row in zip(prediction.window_starts_s, prediction.window_probabilities, strict=True):
        end = start + WINDOW / SAMPLE_RATE
        writer.writerow([f"{start:.3f}", f"{end:.3f}", *(f"{v:.4f}" for v in row)])
    return out.getvalue()


def _shown(text: str) -> str:
    """A path (or a reason naming one) as text any terminal or UTF-8 file takes: bytes of
    a file name that are not UTF-8, and control characters such as a newline, as escapes."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _name(code: str) -> str:
    return IRMAS_NAMES.get(code, code)
