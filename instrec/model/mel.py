"""Log-mel front end: the same frames as the sinc front end, from a fixed mel filterbank.

An alternative input for the same ResNet/LDE (the paper's Table IV sets waveform systems
beside mel-spectrogram ones). Each frame is the power spectrum of `kernel_size` samples
under a Hann window, centred where the sinc front end centres its frame (same kernel,
stride and padding: frames = ceil(samples / stride)), summed into HTK mel bands spanning
0 Hz .. sr/2 with unnormalised triangles and taken in dB, as the authors' mel extractor
does (src/models/mel_extractor.py: torchaudio's Spectrogram(power=2), MelScale(mel_scale=
"htk", norm=None), AmplitudeToDB()). The DFT is a convolution with fixed cosine and sine
kernels rather than torch.stft, so the graph is plain Conv/MatMul/Log in ONNX and the
kernels can be as long as the window (shorter than the FFT), like the sinc kernels.

One departure: a band more than RANGE_DB below its frame's strongest band is raised to
that level. Float32 rounding leaves a noise floor about 100 dB below a frame's peak, which
the logarithm turns into dB values that differ between PyTorch and onnxruntime by up to
0.45 dB (clean tones); 80 dB below the peak they agree within 0.005 dB. The range is per
frame, so a frame still depends only on the samples it sees (a range over the whole clip,
like AmplitudeToDB's top_db, would make frames depend on the chunk they are computed in).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from instrec.errors import InstrecError
from instrec.model.sincnet import check_padding, hz_to_mel, mel_to_hz, pad_wave

POWER_FLOOR = 1e-10  # AmplitudeToDB's amin: silence is -100 dB, not -inf
RANGE_DB = 80.0  # dB below its frame's strongest band that a band is kept to


def mel_filterbank(bands: int, n_fft: int, sample_rate: int) -> np.ndarray:
    """(bands, n_fft // 2 + 1) triangular HTK-mel weights over the FFT bins, 0 .. sr/2.

    Triangle b rises from mel point b to b + 1 and falls to b + 2 (bands + 2 points equally
    spaced in mel), peak 1, unnormalised: torchaudio's melscale_fbanks(norm=None, "htk").
    """
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)  # Hz
    points = mel_to_hz(np.linspace(0.0, hz_to_mel(sample_rate / 2), bands + 2))  # Hz
    widths = np.diff(points)  # (bands + 1,)
    offsets = points[None, :] - bins[:, None]  # (bins, bands + 2)
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    weights = np.maximum(0.0, np.minimum(rising, falling)).T  # (bands, bins)
    empty = np.flatnonzero(weights.max(axis=1) == 0)
    if empty.size:
        raise InstrecError(
            f"{bands} mel bands are too many for a {n_fft}-point FFT: band {empty[0]} "
            "covers no FFT bin (use fewer bands or a longer FFT)"
        )
    return weights


class LogMel(nn.Module):
    """(batch, samples) waveform -> (batch, bands, frames) log-mel power in dB."""

    dft: torch.Tensor  # (2 * bins, 1, kernel_size): windowed cosines, then sines
    filterbank: torch.Tensor  # (bands, bins)

    def __init__(
        self,
        bands: int = 128,
        kernel_size: int = 800,
        stride: int = 192,
        n_fft: int = 1024,
        sample_rate: int = 16_000,
        padding: str = "reflect",
    ) -> None:
        super().__init__()
        if bands < 1 or kernel_size < 1 or stride < 1 or n_fft < 2:
            raise InstrecError(
                f"mel bands, kernel, stride and FFT size must be positive (FFT >= 2), got "
                f"{bands}, {kernel_size}, {stride}, {n_fft}"
            )
        self.bands = bands
        self.kernel_size = kernel_size | 1  # odd, centred like the sinc kernels
        self.stride = stride
        self.n_fft = n_fft
        self.sample_rate = sample_rate
        self.padding = check_padding(padding)
        half = self.kernel_size // 2
        # phase is measured from the centre tap: |X(k)| does not depend on where the window
        # sits inside the n_fft frame, so this equals torch.stft's power spectrum
        taps = torch.arange(-half, half + 1, dtype=torch.float64)
        bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
        angle = 2 * math.pi * bins[:, None] * taps[None, :] / n_fft  # (bins, kernel)
        window = torch.hann_window(self.kernel_size, periodic=False, dtype=torch.float64)
        dft = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window
        self.register_buffer("dft", dft[:, None, :].float(), persistent=False)
        weights = mel_filterbank(bands, n_fft, sample_rate)
        self.register_buffer("filterbank", torch.from_numpy(weights).float(), persistent=False)

    def power(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, bins, frames) power spectrum of each frame."""
        padded = pad_wave(wave, self.kernel_size // 2, self.padding)
        spectrum = F.conv1d(padded, self.dft, stride=self.stride)  # (batch, 2 * bins, frames)
        real, imag = spectrum.chunk(2, dim=1)
        return real.pow(2) + imag.pow(2)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        # (batch, samples) -> (batch, bands, frames)
        mel = torch.matmul(self.filterbank, self.power(wave))  # (batch, bands, frames)
        peak = mel.amax(dim=1, keepdim=True)  # (batch, 1, frames)
        floor = torch.clamp(peak * 10 ** (-RANGE_DB / 10), min=POWER_FLOOR)
        return 10.0 * torch.log10(torch.maximum(mel, floor))

    def extra_repr(self) -> str:
        return (
            f"bands={self.bands}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"n_fft={self.n_fft}, sample_rate={self.sample_rate}, padding={self.padding}"
        )
