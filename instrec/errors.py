"""The one exception type users see: a message naming the file and the reason."""

from __future__ import annotations

from pathlib import Path


class InstrecError(Exception):
    """An expected failure (bad input, bad configuration) reported as one line, no traceback."""


class AudioError(InstrecError):
    """A file that cannot be used as audio: missing, unreadable, empty, silent or non-finite."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
