"""Batched audio effects in torch: every op takes (batch, samples) and per-row parameters.

The ops are deterministic given their parameters (noise and reverb also take the
torch.Generator their randomness comes from), so tests can check each one on known
signals and `instrec.train.augment` only decides *which* rows get *which* parameters. Everything
runs on the input's device (GPU when training on one); none loops over samples.
"""

from __future__ import annotations

import math

import torch

FILTER_ORDER = 4  # Butterworth order of the high/low pass (24 dB per octave)
PITCH_FFT = 512  # samples: phase-vocoder frame (32 ms at 16 kHz)
PITCH_HOP = 128  # samples: phase-vocoder hop (4x overlap)
DECAY_60_DB = math.log(1000.0)  # amplitude decay exponent over one RT60 (-60 dB)


def fft_convolve(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Causal linear convolution of each row of x with h, cut to x's length.

    x: (batch, samples); h: (batch, taps) or (1, taps) shared by every row. Zero-padded to
    a power of two at least samples + taps - 1 long, so nothing wraps around.
    """
    n = 1 << (x.shape[-1] + h.shape[-1] - 2).bit_length()
    spectrum = torch.fft.rfft(x, n=n) * torch.fft.rfft(h.to(x.dtype), n=n)  # (batch, n/2+1)
    return torch.fft.irfft(spectrum, n=n)[..., : x.shape[-1]]


def gain(x: torch.Tensor, db: torch.Tensor) -> torch.Tensor:
    """Scale row b by db[b] decibels."""
    return x * torch.pow(10.0, db / 20.0).to(x.dtype)[:, None]


def add_noise(
    x: torch.Tensor,
    snr_db: torch.Tensor,
    pink: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Add white (pink[b] False) or pink (1/f power) Gaussian noise at snr_db[b] dB below
    the row's mean power. A silent row gets no noise (its SNR is undefined)."""
    noise = _randn(x.shape, generator, x.device, x.dtype)  # (batch, samples) white
    spectrum = torch.fft.rfft(noise)  # (batch, bins)
    bins = torch.arange(spectrum.shape[-1], device=x.device, dtype=x.dtype)
    pink_shape = torch.where(bins > 0, bins.clamp(min=1).rsqrt(), torch.zeros_like(bins))
    colour = torch.where(pink[:, None], pink_shape[None, :], torch.ones_like(pink_shape)[None, :])
    noise = torch.fft.irfft(spectrum * colour, n=x.shape[-1])
    noise = noise / noise.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-12)  # unit power
    signal_rms = x.pow(2).mean(-1, keepdim=True).sqrt()
    return x + noise * signal_rms * torch.pow(10.0, -snr_db / 20.0).to(x.dtype)[:, None]


def delay(x: torch.Tensor, lag: torch.Tensor, feedback: torch.Tensor) -> torch.Tensor:
    """Feedback echo: y[n] = x[n] + f x[n-L] + f^2 x[n-2L] + ... with lag L = lag[b]
    samples (>= 1) and f = feedback[b] in [0, 1); echoes past the clip's end are dropped."""
    batch, samples = x.shape
    echoes = (samples - 1) // max(int(lag.min()), 1)  # the most echoes any row can fit
    k = torch.arange(1, echoes + 1, device=x.device)  # (echoes,)
    positions = lag.to(x.device).long()[:, None] * k[None, :]  # (batch, echoes)
    amplitudes = feedback.to(x.dtype)[:, None] ** k[None, :].to(x.dtype)
    amplitudes = torch.where(positions < samples, amplitudes, torch.zeros_like(amplitudes))
    response = torch.zeros(batch, samples, device=x.device, dtype=x.dtype)
    response[:, 0] = 1.0
    response.scatter_add_(1, positions.clamp(max=samples - 1), amplitudes)
    return fft_convolve(x, response)


def reverb(
    x: torch.Tensor,
    rt60: torch.Tensor,
    wet: torch.Tensor,
    sample_rate: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Synthetic room: convolve with Gaussian noise decaying 60 dB in rt60[b] seconds
    (normalised to unit energy, as long as the clip), mixed (1 - wet) dry + wet reverberant."""
    samples = x.shape[-1]
    t = torch.arange(samples, device=x.device, dtype=x.dtype) / sample_rate  # seconds
    envelope = torch.exp(-DECAY_60_DB * t[None, :] / rt60.to(x.dtype)[:, None])  # (batch, samples)
    response = _randn(x.shape, generator, x.device, x.dtype) * envelope
    response = response / response.pow(2).sum(-1, keepdim=True).sqrt()
    mix = wet.to(x.dtype)[:, None]
    return (1 - mix) * x + mix * fft_convolve(x, response)


def pitch_shift(x: torch.Tensor, semitones: torch.Tensor) -> torch.Tensor:
    """Shift row b's pitch by semitones[b], keeping its length (phase vocoder).

    Each output STFT bin j takes the magnitude of input bin j / ratio (interpolated) and
    that bin's instantaneous frequency times ratio, integrated over frames into a phase;
    content moved past Nyquist is dropped. The output keeps the input's RMS level.
    """
    window = torch.hann_window(PITCH_FFT, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, PITCH_FFT, PITCH_HOP, window=window, return_complex=True)
    spec = spec.transpose(1, 2)  # (batch, frames, bins), contiguous: bins are gathered per row
    _, frames, bins = spec.shape
    ratio = torch.pow(2.0, semitones.to(x.dtype) / 12.0)[:, None]  # (batch, 1)
    source = torch.arange(bins, device=x.device, dtype=x.dtype)[None, :] / ratio  # (batch, bins)
    low = source.floor().long().clamp(max=bins - 1)
    inside = source <= bins - 1
    frac = source - low
    magnitude = spec.abs()
    upper = _gather_bins(magnitude, (low + 1).clamp(max=bins - 1))
    upper.mul_(torch.where(inside, frac, 0.0)[:, None, :])
    magnitude = _gather_bins(magnitude, low).mul_(torch.where(inside, 1 - frac, 0.0)[:, None, :])
    magnitude.add_(upper)  # (batch, frames, bins)

    nearest = source.round().long().clamp(max=bins - 1)  # (batch, bins)
    near = _gather_bins(spec, nearest)  # (batch, frames, bins) complex
    centre = 2 * math.pi * PITCH_HOP / PITCH_FFT * nearest.to(x.dtype)  # rad per hop at bin centre
    # each bin's phase advance per hop less its centre's, wrapped to (-pi, pi], as
    # angle(X[t+1] conj(X[t]) e^(-i centre)): one angle() pass, no diff or remainder (a real
    # DC or Nyquist bin that flips sign may read +pi or -pi: its frequency is ambiguous)
    rotation = torch.polar(torch.ones_like(centre), -centre)[:, None, :]  # (batch, 1, bins)
    deviation = (near[:, 1:] * near[:, :-1].conj()).mul_(rotation).angle()  # (b, frames-1, bins)
    # out phase at frame t: start + t * ratio * centre + ratio * (deviations up to t);
    # ratio * centre is taken mod 2 pi (t is whole), which keeps float32 phases small
    step = torch.remainder(ratio * centre, 2 * math.pi)[:, None, :]  # (batch, 1, bins)
    t = torch.arange(frames, device=x.device, dtype=x.dtype)[None, :, None]
    phase = near[:, :1].angle() + step * t  # (batch, frames, bins)
    phase[:, 1:].add_(deviation.cumsum_(1).mul_(ratio[..., None]))
    shifted = torch.complex(phase.cos().mul_(magnitude), phase.sin().mul_(magnitude))
    y = _overlap_add(shifted, window, x.shape[-1])
    return y * _rms(x) / _rms(y).clamp(min=1e-12)


def highpass(x: torch.Tensor, cutoff_hz: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Zero-phase Butterworth high pass (FILTER_ORDER) at cutoff_hz[b], applied by FFT."""
    return _butterworth(x, cutoff_hz, sample_rate, high=True)


def lowpass(x: torch.Tensor, cutoff_hz: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Zero-phase Butterworth low pass (FILTER_ORDER) at cutoff_hz[b], applied by FFT."""
    return _butterworth(x, cutoff_hz, sample_rate, high=False)


def _butterworth(
    x: torch.Tensor, cutoff_hz: torch.Tensor, sample_rate: int, high: bool
) -> torch.Tensor:
    """Multiply the zero-padded spectrum by |H(f)| = 1 / sqrt(1 + (f/fc)^(2n)) (low pass)
    or its mirror (fc/f) (high pass); padding to twice the length keeps it linear."""
    n = 2 * x.shape[-1]
    freqs = torch.fft.rfftfreq(n, d=1.0 / sample_rate, device=x.device).to(x.dtype)  # Hz
    ratio = freqs[None, :] / cutoff_hz.to(x.dtype)[:, None]  # (batch, bins)
    if high:
        ratio = 1.0 / ratio.clamp(min=1e-12)
    response = torch.rsqrt(1.0 + ratio.clamp(max=1e6) ** (2 * FILTER_ORDER))
    return torch.fft.irfft(torch.fft.rfft(x, n=n) * response, n=n)[..., : x.shape[-1]]


def _gather_bins(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (batch, frames, bins) at per-row bin indices (batch, bins), every frame."""
    return values.gather(2, index[:, None, :].expand(-1, values.shape[1], -1))


def _overlap_add(spec: torch.Tensor, window: torch.Tensor, samples: int) -> torch.Tensor:
    """Inverse of torch.stft(center=True) from (batch, frames, bins) to (batch, samples):
    windowed inverse FFT of each frame, overlap-added in PITCH_HOP blocks and divided by
    the summed squared window (torch.istft without its transposes and checks)."""
    batch, frames, _ = spec.shape
    parts = PITCH_FFT // PITCH_HOP  # frames overlapping each hop-long block
    pieces = torch.fft.irfft(spec, n=PITCH_FFT).mul_(window)  # (batch, frames, fft)
    pieces = pieces.view(batch, frames, parts, PITCH_HOP)
    out = pieces.new_zeros(batch, frames + parts - 1, PITCH_HOP)
    envelope = window.new_zeros(frames + parts - 1, PITCH_HOP)
    squared = window.square().view(parts, PITCH_HOP)
    for k in range(parts):
        out[:, k : k + frames] += pieces[:, :, k]
        envelope[k : k + frames] += squared[k]
    keep = slice(PITCH_FFT // 2, PITCH_FFT // 2 + samples)  # drop the centring pad
    return out.view(batch, -1)[:, keep] / envelope.view(-1)[keep]


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(-1, keepdim=True).sqrt()  # (batch, 1)


def _randn(
    shape: torch.Size, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Standard normal draws from `generator` (on its own device), moved to `device`."""
    source = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=source, dtype=dtype).to(device)
