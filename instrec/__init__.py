"""instrec: predominant instrument recognition in polyphonic music."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("instrec")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
