"""Your own data: a folder of audio files plus a CSV naming each file's instruments.

The CSV has a header with at least `path` (relative to the folder, or absolute) and
`labels` (class names separated by ';', empty for none); optional columns `split`
(train/valid/test) and `group` (files sharing a group, e.g. a song, stay on one side of the
validation split). Any class list works; audio goes through the same path as IRMAS
(16 kHz mono, normalised to -12 LUFS).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from instrec.data.store import SPLITS, Entry
from instrec.errors import InstrecError

Report = Callable[[Path, str], None]  # (file, reason) for a skipped file


def read_rows(csv_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The CSV's column names and rows; InstrecError when it is unreadable or lacks
    path/labels."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            names = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InstrecError(f"{csv_path}: unreadable CSV ({error})") from None
    missing = [name for name in ("path", "labels") if name not in names]
    if missing:
        raise InstrecError(f"{csv_path}: no {missing[0]!r} column (header: {','.join(names)})")
    return names, rows


def split_labels(text: str) -> list[str]:
    """Class names from a ';'-separated cell, blanks dropped."""
    return [name.strip() for name in (text or "").split(";") if name.strip()]


def index_folder(
    root: Path, csv_path: Path, report: Report, classes: tuple[str, ...] | None = None
) -> tuple[list[Entry], tuple[str, ...]]:
    """One entry per CSV row and the class list (`classes`, or every label seen, sorted).

    Rows with a missing file, a label outside `classes` or an unknown split are reported.
    Entries without a split column get "train" (the caller splits or relabels them).
    """
    _, rows = read_rows(csv_path)
    if classes is None:
        classes = tuple(sorted({name for row in rows for name in split_labels(row["labels"])}))
    if not classes:
        raise InstrecError(f"{csv_path}: no labels in the 'labels' column")
    number = {name: k for k, name in enumerate(classes)}
    group_names: dict[str, int] = {}
    entries = []
    for line, row in enumerate(rows, start=2):
        path = root / (row["path"] or "").strip()
        names = split_labels(row["labels"])
        unknown = [name for name in names if name not in number]
        split = (row.get("split") or "train").strip()
        if not row["path"] or not path.is_file():
            report(path, f"no such file (listed on line {line} of {csv_path.name})")
        elif unknown:
            report(
                path,
                f"unknown class (label {unknown[0]!r} on line {line}; classes: "
                f"{','.join(classes)})",
            )
        elif split not in SPLITS:
            report(path, f"unknown split ({split!r} on line {line}; use {'/'.join(SPLITS)})")
        else:
            group_key = (row.get("group") or "").strip() or f"row {line}"
            group = group_names.setdefault(group_key, len(group_names))
            labels = tuple(sorted(number[name] for name in set(names)))
            source = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
            entries.append(Entry(path, source, labels, split, group))
    return entries, classes
