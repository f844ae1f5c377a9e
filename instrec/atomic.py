"""Writes that never leave a half-written output: build beside it, then rename into place.

Imports nothing heavy, so the user-facing commands can use it as freely as training does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from instrec.errors import InstrecError


def refuse_to_overwrite(path: str | Path, overwrite: bool) -> None:
    """An existing output is replaced only when the user said --overwrite."""
    if Path(path).exists() and not overwrite:
        raise InstrecError(f"{path}: already exists (use --overwrite to replace it)")


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file beside `path`, renamed onto it only if the block succeeds.

    The name is hidden and ends in `suffix`, so a leftover from a killed process matches
    no data glob such as `*.wav`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    temp = Path(name)
    os.chmod(temp, 0o644)  # readable like any other output (mkstemp gives 0600)
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary file and a rename."""
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")
    return Path(path)


def replace_folder(finished: Path, destination: Path) -> None:
    """Swap a finished folder in for `destination`; an older one is removed only after."""
    old = None
    if destination.exists():
        old = Path(tempfile.mkdtemp(prefix=f"{destination.name}.old-", dir=destination.parent))
        os.replace(destination, old / destination.name)
    os.replace(finished, destination)
    if old is not None:
        shutil.rmtree(old)
