"""The ONNX engine: an exported tagging graph on onnxruntime, with no torch imported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from instrec.errors import InstrecError
from instrec.tagging.geometry import Geometry

METADATA_PREFIX = "instrec."  # ONNX metadata_props keys written by instrec export


class OnnxEngine:
    """Runs an exported WindowTagger (instrec export) on onnxruntime; imports no torch."""

    def __init__(self, session: Any, source: str | Path) -> None:
        props = session.get_modelmeta().custom_metadata_map
        try:
            values = {
                key[len(METADATA_PREFIX) :]: json.loads(value)
                for key, value in props.items()
                if key.startswith(METADATA_PREFIX)
            }
            self.classes = tuple(str(c) for c in values["classes"])
            self.threshold = float(values["threshold"])
            self.geometry = Geometry(**values["geometry"])
            self.frame_dim = int(values["frame_dim"])
        except (KeyError, TypeError, ValueError) as error:
            raise InstrecError(
                f"{source}: not an ONNX file written by instrec export ({error})"
            ) from None
        self.session = session

    @classmethod
    def from_file(cls, path: str | Path, threads: int | None = None) -> OnnxEngine:
        import onnxruntime

        if not Path(path).is_file():
            raise InstrecError(f"{path}: no such ONNX file")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise InstrecError(f"{path}: not a readable ONNX file ({error})") from None
        return cls(session, path)

    def run(
        self, wave: np.ndarray, carry: np.ndarray, index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        feeds = {
            "wave": np.ascontiguousarray(wave, dtype=np.float32),
            "carry": np.ascontiguousarray(carry, dtype=np.float32),
            "index": np.ascontiguousarray(index, dtype=np.int64),
        }
        logits, frames = self.session.run(["logits", "frames"], feeds)
        return logits, frames
