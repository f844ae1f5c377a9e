"""SincNet front end: a 1-D convolution whose kernels are learnable band-pass sinc filters.

Each kernel is g[n] = 2 f2 sinc(2π f2 n) − 2 f1 sinc(2π f1 n) under a Hamming window
(Ravanelli & Bengio 2018); only the cut-offs f1 < f2 (Hz) of each filter are learned, so
128 filters cost 256 parameters. Parameterised as in Shi et al.'s code: f1 = min_low + |low|,
f2 = min(f1 + min_band + |band|, sr/2), and each kernel is scaled so its centre tap is 1.
The waveform is padded by half a kernel each side, by reflection as in the authors' code
(speechbrain's SincConv, `padding_mode="reflect"`) or with zeros (instrec's first reading).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from instrec.errors import InstrecError

SINC_INITS = ("mel", "mel-edges", "linear", "midi")
PADDINGS = ("reflect", "zeros")  # how a front end extends the waveform past its ends


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale (mel) of frequencies in Hz."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of `hz_to_mel` (Hz)."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def check_padding(mode: str) -> str:
    """`mode` if it is one of PADDINGS (checked when a front end is built, not per clip)."""
    if mode not in PADDINGS:
        raise InstrecError(f"unknown padding {mode!r} (choose from {', '.join(PADDINGS)})")
    return mode


def pad_wave(wave: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """(batch, samples) -> (batch, 1, samples + 2 pad): `pad` samples added each side.

    "reflect" mirrors the signal about its end samples, which needs more than `pad` of
    them; a shorter clip is refused rather than padded some other way (in an exported ONNX
    graph, onnxruntime refuses it).
    """
    if mode == "reflect" and not torch.jit.is_tracing() and wave.shape[-1] <= pad:
        raise InstrecError(
            f"a clip of {wave.shape[-1]} samples is too short for reflect padding of {pad} "
            f"(it needs at least {pad + 1}; sinc_padding=zeros takes any length)"
        )
    return F.pad(wave[:, None, :], (pad, pad), mode="reflect" if mode == "reflect" else "constant")


def initial_cutoffs(
    init: str, filters: int, sample_rate: int, min_low_hz: float, min_band_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    """Start values (f1, f2) in Hz of every filter, each (filters,).

    "mel-edges" and "linear" tile min_low_hz .. sr/2 − (min_low + min_band) with adjacent
    bands equally spaced on that scale; "mel" (SincNet's and the paper's choice) starts from
    the same mel edges as the authors' code (after SincNet's) does: it stores them as the
    learned offsets, so each band starts min_low above its edge and ends min_low + min_band
    above the next (5-10 Hz up). "midi" centres two-semitone bands on MIDI notes 1, 2, ...
    (Shi et al.'s alternative), clipped at sr/2.
    """
    top = sample_rate / 2 - (min_low_hz + min_band_hz)
    if init in ("mel", "mel-edges"):
        edges = mel_to_hz(np.linspace(hz_to_mel(min_low_hz), hz_to_mel(top), filters + 1))
        if init == "mel":  # low_hz_ = hz[:-1], band_hz_ = diff(hz) in transforms.py
            return edges[:-1] + min_low_hz, edges[1:] + min_low_hz + min_band_hz
        return edges[:-1], edges[1:]
    if init == "linear":
        edges = np.linspace(min_low_hz, top, filters + 1)
        return edges[:-1], edges[1:]
    if init == "midi":
        notes = 440.0 * 2.0 ** ((np.arange(filters + 2) - 69) / 12)  # Hz of MIDI 0 .. filters+1
        low = np.minimum(notes[:-2], top)
        high = np.clip(notes[2:], low + min_band_hz, sample_rate / 2)
        return low, high
    raise InstrecError(
        f"unknown sinc initialisation {init!r} (choose from {', '.join(SINC_INITS)})"
    )


class SincConv(nn.Module):
    """(batch, samples) waveform -> (batch, filters, frames) band-pass filter outputs.

    'Same' padding (half a kernel each side, see `pad_wave`): frames = ceil(samples / stride),
    frame t centred on sample t * stride. An even kernel size is rounded up to the next odd
    number so every kernel is symmetric about its centre tap (zero phase).
    """

    tap_seconds: torch.Tensor  # (kernel // 2,) s: times of the taps right of the centre
    half_window: torch.Tensor  # (kernel // 2,) right half of the Hamming window

    def __init__(
        self,
        filters: int = 128,
        kernel_size: int = 800,
        stride: int = 192,
        sample_rate: int = 16_000,
        min_low_hz: float = 5.0,
        min_band_hz: float = 5.0,
        init: str = "mel",
        padding: str = "reflect",
    ) -> None:
        super().__init__()
        if filters < 1 or kernel_size < 1 or stride < 1:
            raise InstrecError(
                f"sinc filters, kernel and stride must be positive, got "
                f"{filters}, {kernel_size}, {stride}"
            )
        self.filters = filters
        self.kernel_size = kernel_size | 1  # odd: taps -half .. +half
        self.stride = stride
        self.sample_rate = sample_rate
        self.min_low_hz = min_low_hz
        self.min_band_hz = min_band_hz
        self.padding = check_padding(padding)
        low, high = initial_cutoffs(init, filters, sample_rate, min_low_hz, min_band_hz)
        # learned: f1 = min_low + |low_hz|, f2 = f1 + min_band + |band_hz|
        self.low_hz = nn.Parameter(torch.tensor(low - min_low_hz, dtype=torch.float32))
        self.band_hz = nn.Parameter(
            torch.tensor(np.maximum(high - low - min_band_hz, 0.0), dtype=torch.float32)
        )
        half = self.kernel_size // 2
        taps = torch.arange(1, half + 1, dtype=torch.float32)
        self.register_buffer("tap_seconds", taps / sample_rate, persistent=False)  # (half,) s
        window = torch.hamming_window(self.kernel_size, periodic=False, dtype=torch.float32)
        self.register_buffer("half_window", window[half + 1 :], persistent=False)  # (half,)

    def cutoffs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Current (f1, f2) in Hz, each (filters,), with the minimum low and band applied."""
        low = self.min_low_hz + self.low_hz.abs()
        high = torch.clamp(low + self.min_band_hz + self.band_hz.abs(), max=self.sample_rate / 2)
        return low, high

    def kernels(self) -> torch.Tensor:
        """The windowed band-pass kernels, (filters, 1, kernel_size), centre tap 1."""
        low, high = self.cutoffs()
        band = (high - low)[:, None]  # (filters, 1) Hz
        t = self.tap_seconds  # (half,) s
        # ideal band-pass impulse response at t > 0: (sin 2π f2 t − sin 2π f1 t) / (π t)
        right = (
            torch.sin(2 * math.pi * high[:, None] * t) - torch.sin(2 * math.pi * low[:, None] * t)
        ) / (math.pi * t)
        right = right * self.half_window  # (filters, half)
        full = torch.cat([right.flip(1), 2 * band, right], dim=1)  # (filters, kernel)
        return (full / (2 * band))[:, None, :]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        # (batch, samples) -> (batch, filters, frames)
        padded = pad_wave(wave, self.kernel_size // 2, self.padding)
        return F.conv1d(padded, self.kernels(), stride=self.stride)

    def extra_repr(self) -> str:
        return (
            f"filters={self.filters}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"sample_rate={self.sample_rate}, padding={self.padding}"
        )
