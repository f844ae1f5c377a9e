"""instrec: predominant instrument recognition in polyphonic music."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from instrec.tagging import Tagger

try:
    __version__ = version("instrec")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"


def load_model(path: str) -> Tagger:
    """Load a saved model file for tagging: `instrec.load_model("model.pt").predict("song.mp3")`."""
    from instrec.tagging import load_model as _load_model

    return _load_model(path)
