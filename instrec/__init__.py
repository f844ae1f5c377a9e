"""instrec: predominant instrument recognition in polyphonic music."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from instrec.tagging import Tagger

try:
    __version__ = version("instrec")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"


def load_model(model: str | Path | None = None) -> Tagger:
    """A tagger: `instrec.load_model().predict("song.mp3")` with the default shipped model;
    `load_model("NAME")` another shipped one (`instrec models`), `load_model("model.pt")`
    or `load_model("model.onnx")` a model file of yours."""
    from instrec.tagging import load_model as _load_model

    return _load_model(model)
