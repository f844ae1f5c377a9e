"""The PyTorch engine: a saved model file's tagging graph, run on NumPy chunks.

torch is imported when an engine is made, not when this module is, so the ONNX-only
install (no torch) can import everything under instrec.tagging.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from instrec.audio import SAMPLE_RATE
from instrec.tagging.geometry import CHUNK_SECONDS, POOLING_MAX_RADIUS, Geometry

if TYPE_CHECKING:
    from instrec.model.zoo import Recognizer

MARGIN_SHARE = 0.05  # most the two margins of a chunk may add to the frames it computes


class TorchEngine:
    """Runs a WindowTagger in PyTorch (eval mode, no autograd) on NumPy chunks."""

    def __init__(
        self, model: Recognizer, classes: tuple[str, ...], threshold: float, geometry: Geometry
    ) -> None:
        import torch

        from instrec.model.window_graph import WindowTagger

        # channels-last convolutions run ~1.6x faster on CPU (oneDNN); results are unchanged
        self.graph = WindowTagger(model.to(memory_format=torch.channels_last)).eval()  # type: ignore[call-overload]
        self.classes = classes
        self.threshold = threshold
        self.geometry = geometry
        self.frame_dim = model.body.out_channels

    @classmethod
    def from_model(
        cls, model: Recognizer, classes: tuple[str, ...], threshold: float
    ) -> TorchEngine:
        return cls(model.eval(), classes, threshold, geometry_of(model))

    @classmethod
    def from_file(cls, path: str | Path, threads: int | None = None) -> TorchEngine:
        import torch

        from instrec.model.io import load_model_file

        if threads:
            torch.set_num_threads(threads)
        model_file = load_model_file(path)
        return cls.from_model(model_file.model, model_file.classes, model_file.threshold)

    def run(
        self, wave: np.ndarray, carry: np.ndarray, index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            logits, frames = self.graph(
                torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(carry, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(index, dtype=np.int64)),
            )
        return logits.numpy(), frames.numpy()


def geometry_of(model: Recognizer, chunk_seconds: float = CHUNK_SECONDS) -> Geometry:
    """Frame geometry of `model`: its frame size, a chunk margin wider than its receptive
    field (so chunked frames equal whole-file frames), `chunk_seconds` per pass or more
    where the margins would otherwise add over MARGIN_SHARE to the work, and whether its
    field is narrow enough to pool windows from shared frames by default."""
    from instrec.model.window_graph import receptive_radius

    spf, radius = model.samples_per_frame, receptive_radius(model)
    margin = math.ceil(radius / spf) + 2
    return Geometry(
        samples_per_frame=spf,
        margin_frames=margin,
        chunk_frames=max(
            math.ceil(chunk_seconds * SAMPLE_RATE / spf), round(2 * margin / MARGIN_SHARE)
        ),
        pooled=radius <= POOLING_MAX_RADIUS,
    )
