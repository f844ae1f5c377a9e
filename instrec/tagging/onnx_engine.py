"""The ONNX engine: an exported tagging graph on onnxruntime, with no torch imported.

The metadata `instrec export` stores beside the graph (classes, threshold, frame geometry)
is checked as strictly as a model file's contents, and the graph is run once on a short
probe to confirm it computes what that geometry says, so a damaged or edited file is
refused when it is loaded rather than tagging with nonsense.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from instrec.audio import input_problem
from instrec.errors import InstrecError
from instrec.model.io import (
    ContentError,
    check_classes,
    check_count,
    check_threshold,
    first_line,
)
from instrec.tagging.geometry import WINDOW, Geometry

METADATA_PREFIX = "instrec."  # ONNX metadata_props keys written by instrec export
REQUIRED = ("classes", "threshold", "geometry", "frame_dim")  # metadata the engine uses
PROBE_FRAMES = 4  # whole frames of probe samples (one more sample makes a fifth frame)


class OnnxEngine:
    """Runs an exported WindowTagger (instrec export) on onnxruntime; imports no torch."""

    def __init__(self, session: Any, source: str | Path) -> None:
        self.session, self.source = session, source
        try:
            values = _metadata(session, source)
            self.classes = check_classes(values["classes"])
            self.threshold = check_threshold(values["threshold"])
            self.geometry = _geometry(values["geometry"])
            self.frame_dim = check_count("frame_dim", values["frame_dim"])
            self._probe()
        except ContentError as error:
            raise InstrecError(f"{source}: not a usable instrec model: {error}") from None

    @classmethod
    def from_file(cls, path: str | Path, threads: int | None = None) -> OnnxEngine:
        import onnxruntime

        problem = input_problem(Path(path), missing="no such ONNX file")
        if problem is not None:
            raise InstrecError(f"{path}: {problem}")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise InstrecError(f"{path}: not a readable ONNX file ({first_line(error)})") from None
        return cls(session, path)

    def run(
        self, wave: np.ndarray, carry: np.ndarray, index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        try:
            return self._run(wave, carry, index)
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise InstrecError(
                f"{self.source}: the ONNX graph failed ({first_line(error)})"
            ) from None

    def _run(
        self, wave: np.ndarray, carry: np.ndarray, index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        feeds = {
            "wave": np.ascontiguousarray(wave, dtype=np.float32),
            "carry": np.ascontiguousarray(carry, dtype=np.float32),
            "index": np.ascontiguousarray(index, dtype=np.int64),
        }
        logits, frames = self.session.run(["logits", "frames"], feeds)
        return logits, frames

    def _probe(self) -> None:
        """Run the graph on a little noise: it must make the frames the geometry says, of
        frame_dim features, and one finite logit per class."""
        g = self.geometry
        samples = PROBE_FRAMES * g.samples_per_frame + 1
        wave = np.random.default_rng(0).standard_normal((1, samples)).astype(np.float32) * 0.1
        no_carry = np.zeros((0, self.frame_dim), np.float32)
        try:
            logits, frames = self._run(wave, no_carry, np.zeros((1, g.window_frames), np.int64))
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise ContentError(f"the graph fails on a probe ({first_line(error)})") from None
        expected = (g.frames_for(samples), self.frame_dim)
        if frames.shape != expected:
            raise ContentError(
                f"the graph makes frames of shape {frames.shape} from {samples} samples, but "
                f"its geometry and frame_dim say {expected}"
            )
        if logits.shape != (1, len(self.classes)):
            raise ContentError(
                f"the graph gives {logits.shape[-1]} outputs for {len(self.classes)} classes"
            )
        if not np.isfinite(logits).all():
            raise ContentError("the graph gives non-finite (NaN or infinite) outputs")


def _metadata(session: Any, source: str | Path) -> dict[str, Any]:
    """instrec's metadata_props as JSON values; NaN and infinity are not JSON, so refused."""
    props = session.get_modelmeta().custom_metadata_map
    values = {
        k[len(METADATA_PREFIX) :]: v for k, v in props.items() if k.startswith(METADATA_PREFIX)
    }
    if not values:
        raise InstrecError(
            f"{source}: not an ONNX file written by instrec export (no instrec metadata)"
        )
    parsed = {}
    for key in REQUIRED:
        if key not in values:
            raise ContentError(f"metadata lacks {METADATA_PREFIX}{key}")
        try:
            parsed[key] = json.loads(values[key], parse_constant=_refuse_constant)
        except ValueError as error:
            raise ContentError(f"metadata {METADATA_PREFIX}{key} is not JSON ({error})") from None
    return parsed


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _geometry(values: Any) -> Geometry:
    """A Geometry from metadata: whole-number counts >= 1 and a bool, nothing else."""
    counts = ("samples_per_frame", "margin_frames", "chunk_frames")
    if not isinstance(values, dict) or set(values) - {*counts, "pooled"}:
        raise ContentError(f"geometry must be a mapping of {', '.join(counts)} and pooled")
    pooled = values.get("pooled", True)
    if not isinstance(pooled, bool):
        raise ContentError(f"geometry pooled must be true or false, not {pooled!r}")
    sizes = {name: check_count(f"geometry {name}", values.get(name)) for name in counts}
    if sizes["samples_per_frame"] > WINDOW:
        raise ContentError(
            f"geometry samples_per_frame {sizes['samples_per_frame']} is over {WINDOW}"
        )
    return Geometry(**sizes, pooled=pooled)
