"""Batched ITU-R BS.1770-4 loudness in torch, for matching mixup partners on the training device.

Same K-weighting biquads (`instrec.audio.k_weighting_coefficients`) and the same block grid
and gates as `instrec.audio.integrated_loudness`, which stays the reference (tested against
pyloudnorm). The biquad cascade is applied as its impulse response, truncated where it has
decayed below 1e-8, by FFT convolution: a per-sample IIR loop would be far too slow.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.signal
import torch

from instrec.audio import (
    ABSOLUTE_GATE_LUFS,
    BLOCK_OVERLAP,
    BLOCK_SECONDS,
    k_weighting_coefficients,
)
from instrec.train.effects import fft_convolve

RELATIVE_GATE_LU = -10.0  # BS.1770-4 relative gate below the absolute-gated loudness
RESPONSE_FLOOR = 1e-8  # |h[n]| below which the K-weighting impulse response is cut


@functools.lru_cache(maxsize=8)
def k_weighting_response(sr: int) -> np.ndarray:
    """The K-weighting cascade's impulse response at `sr` Hz, up to its last tap above
    RESPONSE_FLOOR (1,134 taps at 16 kHz)."""
    impulse = np.zeros(sr)  # one second: far longer than the response lasts
    impulse[0] = 1.0
    for b, a in k_weighting_coefficients(sr):
        impulse = scipy.signal.lfilter(b, a, impulse)
    last = int(np.nonzero(np.abs(impulse) > RESPONSE_FLOOR)[0][-1])
    return impulse[: last + 1]


def integrated_loudness_torch(x: torch.Tensor, sr: int) -> torch.Tensor:
    """Gated loudness of each row of x (batch, samples) in LUFS, shape (batch,).

    Rows shorter than one 400 ms block are measured as one block of their own length;
    a silent row (every block under the -70 LUFS gate) gives -inf, never NaN.
    """
    response = torch.from_numpy(k_weighting_response(sr)).to(x.device, x.dtype)
    weighted = fft_convolve(x, response[None, :])  # (batch, samples)
    energies = _block_energies(weighted, sr)  # (batch, blocks)
    block_lufs = -0.691 + 10 * torch.log10(energies)
    absolute = block_lufs >= ABSOLUTE_GATE_LUFS
    relative_gate = _gated_lufs(energies, absolute) + RELATIVE_GATE_LU  # (batch,)
    return _gated_lufs(energies, absolute & (block_lufs > relative_gate[:, None]))


def normalize_loudness_torch(
    x: torch.Tensor, sr: int, target_lufs: float | torch.Tensor
) -> torch.Tensor:
    """Scale each row of x (batch, samples) to target_lufs (a float, or one per row).

    Silent rows, and rows whose target is -inf, are returned unchanged.
    """
    loudness = integrated_loudness_torch(x, sr)
    target = torch.as_tensor(target_lufs, device=x.device, dtype=x.dtype).expand_as(loudness)
    return x * loudness_gain(loudness, target)[:, None]


def loudness_gain(loudness: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Linear gain taking `loudness` to `target` (both LUFS, same shape); 1 where either
    is not finite (silence cannot be brought to a level)."""
    finite = torch.isfinite(loudness) & torch.isfinite(target)
    difference = torch.where(finite, target - loudness, torch.zeros_like(loudness))
    return torch.pow(10.0, difference / 20.0)


def _block_energies(weighted: torch.Tensor, sr: int) -> torch.Tensor:
    """Mean square of each 400 ms block at 75 % overlap (batch, blocks), on the block grid
    of `instrec.audio`: a last block running past the end counts its missing part as 0."""
    samples = weighted.shape[-1]
    block = round(BLOCK_SECONDS * sr)
    if samples < block:
        return weighted.pow(2).mean(-1, keepdim=True)
    hop = round(BLOCK_SECONDS * (1 - BLOCK_OVERLAP) * sr)
    n_blocks = round((samples / sr - BLOCK_SECONDS) / (BLOCK_SECONDS * (1 - BLOCK_OVERLAP))) + 1
    padded = torch.nn.functional.pad(weighted, (0, max(0, (n_blocks - 1) * hop + block - samples)))
    blocks = padded.unfold(-1, block, hop)[:, :n_blocks]  # (batch, blocks, block)
    return blocks.pow(2).mean(-1)


def _gated_lufs(energies: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """-0.691 + 10 log10 of the mean energy of the kept blocks per row; -inf if none."""
    count = kept.sum(-1)
    total = torch.where(kept, energies, torch.zeros_like(energies)).sum(-1)
    mean = torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))
    return -0.691 + 10 * torch.log10(mean)
