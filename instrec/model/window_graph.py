"""The tagging graph: a model's body over a chunk, then LDE and the head on every window.

`WindowTagger` is what both tagging engines run (PyTorch directly, ONNX once exported):
frames are computed once over a chunk of audio and each 1 s window is pooled from the
frames it covers, some carried over from the previous chunk. `receptive_radius` measures
how far a frame sees, which decides how wide a chunk's margins must be.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from instrec.model.zoo import Recognizer


class WindowTagger(nn.Module):
    """(wave, carried frames, window index) -> (window logits, frames of the wave).

    wave (batch, samples) at 16 kHz: one chunk, or a batch of lone windows; carry
    (carried, 128) frames from earlier chunks; index (windows, window_frames) rows into
    concat(carry, frames of every wave row). Returns logits (windows, classes) and the
    frames (batch * ceil(samples / samples_per_frame), 128).
    """

    def __init__(self, model: Recognizer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, wave: torch.Tensor, carry: torch.Tensor, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self.model.frame_features(wave).flatten(0, 1)  # (batch * frames, dim)
        available = torch.cat([carry, frames])  # (carried + frames, dim)
        windows = available[index]  # (windows, window_frames, dim)
        return self.model.head(self.model.pool(windows)), frames


def receptive_radius(model: Recognizer) -> int:
    """Samples either side of a frame's centre that can change it, measured.

    The gradient of one frame's features with respect to the input is non-zero exactly on
    the samples it sees. Measured on a slim copy (quarter width, 16 sinc filters) with random
    weights: the receptive field in time depends on kernels and strides only.
    """
    slim = Recognizer(
        dataclasses.replace(
            model.config, width_multiplier=model.config.width_multiplier / 4, sinc_filters=16
        )
    ).eval()
    spf = model.samples_per_frame
    frames = 32
    generator = torch.Generator().manual_seed(0)
    while True:
        wave = torch.randn(1, frames * spf, generator=generator, requires_grad=True)
        slim.frame_features(wave)[0, frames // 2].sum().backward()
        assert wave.grad is not None
        seen = torch.nonzero(wave.grad[0]).flatten()
        centre = (frames // 2) * spf
        radius = int(max(centre - seen.min(), seen.max() - centre))
        if seen.min() > 0 and seen.max() < wave.shape[1] - 1:
            return radius
        frames *= 2  # the field reached an end of the probe: it may be wider
