"""How a network's frames relate to 1 s windows of samples, and what an engine must run.

Everything the tagger computes is in 16 kHz samples: 1 s windows with 50 % overlap, as in
training and evaluation. A `Geometry` says how many samples make one frame of a network's
convolutional body, so windows can be pooled from frames computed once over long chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from instrec.audio import SAMPLE_RATE

WINDOW = SAMPLE_RATE  # samples: 1 s windows, as in training and evaluation
HOP = WINDOW // 2  # samples: 50 % overlap
CHUNK_SECONDS = 10.0  # s of audio per body pass at least: bounds memory (~0.5 GB, resnet34)
POOLING_MAX_RADIUS = WINDOW // 10  # samples: widest receptive field for pooled frames
WINDOW_BATCH = 16  # windows per network call when windows run alone


@dataclass(frozen=True)
class Geometry:
    """How frames relate to samples for one network (all counts in samples or frames).

    `pooled`: the body runs once over long chunks and each window is pooled from its frames.
    That changes a window's result only where its edge frames now see the neighbouring audio
    instead of zero padding, which is small while the receptive field is narrow next to the
    window (radius <= POOLING_MAX_RADIUS, 0.1 s; a 0.04 s field moved file probabilities of a
    trained model by 0.03). A wider field (e.g. a 1536-sample sinc stride: 0.7-1.4 s) makes
    every frame of a lone window see padding, so such models run each window alone, exactly
    as evaluation does, in batches of WINDOW_BATCH, unless the user asks for `fast`.
    """

    samples_per_frame: int  # input samples per body output frame
    margin_frames: int  # context each side of a chunk that hides its edges (> receptive field)
    chunk_frames: int  # frames produced per body pass, margins excluded
    pooled: bool = True

    def frames_for(self, samples: int) -> int:
        """Frames the body makes of `samples` ('same' padding: ceil)."""
        return -(-samples // self.samples_per_frame)

    @property
    def window_frames(self) -> int:
        """Frames of one 1 s window, as the network sees a lone window."""
        return self.frames_for(WINDOW)


class Engine(Protocol):
    """Runs the tagging graph on one chunk (see instrec.model.window_graph.WindowTagger)."""

    classes: tuple[str, ...]
    threshold: float  # on sigmoid probability
    geometry: Geometry
    frame_dim: int  # features per frame (128)

    def run(
        self, wave: np.ndarray, carry: np.ndarray, index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """wave (batch, samples), carried frames (carried, dim), index (windows,
        window_frames) into concat(carry, frames of every wave row) -> logits
        (windows, classes), frames (batch * frames, dim)."""
        ...
