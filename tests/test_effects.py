"""Each batched effect on known signals: sines, impulses, noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from instrec.train import effects

SR = 16_000


def _sine(freq: float, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(round(seconds * SR), dtype=torch.float64) / SR
    return (amplitude * torch.sin(2 * math.pi * freq * t)).float()


def _impulse(samples: int = SR) -> torch.Tensor:
    x = torch.zeros(1, samples)
    x[0, 0] = 1.0
    return x


def _peak_hz(x: torch.Tensor) -> float:
    """Frequency of the strongest spectral peak (Hann window, zero-padded, parabolic fit)."""
    n = 1 << 20
    spectrum = np.abs(np.fft.rfft(x.numpy() * np.hanning(x.numel()), n))
    k = int(spectrum.argmax())
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / n


def _db(power_ratio: torch.Tensor) -> float:
    return float(10 * torch.log10(power_ratio))


def test_fft_convolve_equals_direct_convolution() -> None:
    rng = np.random.default_rng(0)
    x, h = rng.normal(size=(3, 500)), rng.normal(size=(3, 70))
    got = effects.fft_convolve(torch.from_numpy(x), torch.from_numpy(h)).numpy()
    expected = np.stack([np.convolve(a, b)[:500] for a, b in zip(x, h, strict=True)])
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_gain_scales_by_decibels() -> None:
    x = torch.ones(2, 10)
    got = effects.gain(x, torch.tensor([20.0, -6.0]))
    np.testing.assert_allclose(got[:, 0].numpy(), [10.0, 10 ** (-6 / 20)], rtol=1e-6)


def test_noise_is_added_at_the_requested_snr() -> None:
    x = torch.stack([_sine(440), _sine(1000, amplitude=0.05)])
    snr = torch.tensor([10.0, 30.0])
    generator = torch.Generator().manual_seed(0)
    y = effects.add_noise(x, snr, torch.tensor([False, True]), generator)
    measured = [_db(x[i].pow(2).mean() / (y[i] - x[i]).pow(2).mean()) for i in range(2)]
    np.testing.assert_allclose(measured, [10.0, 30.0], atol=0.01)


def test_pink_noise_loses_3_db_per_octave_and_white_is_flat() -> None:
    x = torch.ones(2, 4 * SR)  # DC-only signal: every non-DC bin of y - x is noise
    pink = torch.tensor([False, True])
    y = effects.add_noise(x, torch.zeros(2), pink, torch.Generator().manual_seed(0))
    power_db = 10 * torch.log10(torch.fft.rfft(y - x).abs().pow(2)).numpy()  # bins of 0.25 Hz
    freqs = np.fft.rfftfreq(4 * SR, 1 / SR)
    band = (freqs > 50) & (freqs < 6000)
    slopes = [np.polyfit(np.log2(freqs[band]), row[band], 1)[0] for row in power_db]
    assert slopes[0] == pytest.approx(0.0, abs=0.1)  # dB per octave
    assert slopes[1] == pytest.approx(-3.01, abs=0.1)


def test_noise_leaves_silence_silent_and_is_reproducible() -> None:
    x = torch.zeros(1, 1000)
    y = effects.add_noise(x, torch.tensor([20.0]), torch.tensor([False]), torch.Generator())
    assert torch.equal(y, x)
    sine = _sine(440)[None, :]
    runs = [
        effects.add_noise(
            sine, torch.tensor([20.0]), torch.tensor([True]), torch.Generator().manual_seed(3)
        )
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])


def test_delay_echoes_at_the_set_lag_with_feedback() -> None:
    lag, feedback = torch.tensor([4000, 7000]), torch.tensor([0.5, 0.3])
    y = effects.delay(_impulse().repeat(2, 1), lag, feedback)
    for row, (step, f) in enumerate(zip(lag.tolist(), feedback.tolist(), strict=True)):
        echoes = list(range(0, SR, step))
        np.testing.assert_allclose(
            y[row, echoes].numpy(), [f**k for k in range(len(echoes))], rtol=1e-6
        )  # float32
        rest = torch.ones(SR, dtype=torch.bool)
        rest[echoes] = False
        assert y[row, rest].abs().max() < 1e-6


def test_delay_of_a_note_peaks_in_autocorrelation_at_the_lag() -> None:
    t = torch.arange(SR) / SR
    note = torch.sin(2 * math.pi * 440 * t) * torch.exp(-t / 0.05)  # a plucked note
    y = effects.delay(note[None, :], torch.tensor([5600]), torch.tensor([0.4]))[0]
    correlation = np.correlate(y.numpy(), note.numpy(), mode="full")[SR - 1 :]
    assert int(np.argmax(correlation[1000:])) + 1000 == 5600


def test_reverb_tail_decays_at_the_set_rt60() -> None:
    rt60 = torch.tensor([0.3, 0.8])
    y = effects.reverb(
        _impulse().repeat(2, 1), rt60, torch.ones(2), SR, torch.Generator().manual_seed(0)
    )
    # Schroeder backward integration; fit the -5 to -25 dB part and extrapolate to -60 dB
    for row, expected in enumerate(rt60.tolist()):
        energy = y[row].double().pow(2).flip(0).cumsum(0).flip(0)
        decay_db = 10 * torch.log10(energy / energy[0]).numpy()
        fit = (decay_db < -5) & (decay_db > -25)
        slope = np.polyfit(np.arange(SR)[fit] / SR, decay_db[fit], 1)[0]  # dB per second
        assert -60 / slope == pytest.approx(expected, rel=0.1)


def test_reverb_dry_mix_is_the_input() -> None:
    x = _sine(440)[None, :]
    y = effects.reverb(x, torch.tensor([1.0]), torch.zeros(1), SR, torch.Generator())
    assert torch.equal(y, x)


@pytest.mark.parametrize(("semitones", "expected_hz"), [(2.0, 493.88), (-3.0, 369.99)])
def test_pitch_shift_moves_a_sine_and_keeps_its_length(semitones: float, expected_hz: float):
    y = effects.pitch_shift(_sine(440)[None, :], torch.tensor([semitones]))
    assert y.shape == (1, SR)
    assert _peak_hz(y[0]) == pytest.approx(expected_hz, rel=0.01)


def test_pitch_shift_per_row_keeps_level_and_zero_is_identity() -> None:
    x = torch.stack([_sine(440), _sine(440), _sine(1000, amplitude=0.1)])
    y = effects.pitch_shift(x, torch.tensor([0.0, 7.0, -7.0]))
    assert _peak_hz(y[1]) == pytest.approx(440 * 2 ** (7 / 12), rel=0.01)
    assert _peak_hz(y[2]) == pytest.approx(1000 * 2 ** (-7 / 12), rel=0.01)
    np.testing.assert_allclose(y[0].numpy(), x[0].numpy(), atol=1e-3)
    np.testing.assert_allclose(y.pow(2).mean(-1).numpy(), x.pow(2).mean(-1).numpy(), rtol=1e-4)


@pytest.mark.parametrize("samples", [4_000, 12_345])  # not whole hops: the end is kept too
def test_pitch_shift_keeps_any_length_and_zero_shift_returns_noise(samples: int) -> None:
    x = 0.1 * torch.randn(2, samples, generator=torch.Generator().manual_seed(0))
    y = effects.pitch_shift(x, torch.tensor([0.0, -5.0]))
    assert y.shape == x.shape
    np.testing.assert_allclose(y[0].numpy(), x[0].numpy(), atol=2e-3)  # every bin's phase
    assert not torch.allclose(y[1], x[1], atol=0.05)


def test_overlap_add_inverts_the_stft_like_istft() -> None:
    window = torch.hann_window(effects.PITCH_FFT, dtype=torch.float64)
    x = torch.randn(2, 12_345, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spec = torch.stft(x, effects.PITCH_FFT, effects.PITCH_HOP, window=window, return_complex=True)
    y = effects._overlap_add(spec.transpose(1, 2), window, x.shape[-1])  # (batch, frames, bins)
    reference = torch.istft(
        spec, effects.PITCH_FFT, effects.PITCH_HOP, window=window, length=12_345
    )
    np.testing.assert_allclose(y.numpy(), reference.numpy(), atol=1e-12)
    np.testing.assert_allclose(y.numpy(), x.numpy(), atol=1e-12)


def _gain_db(filtered: torch.Tensor, original: torch.Tensor) -> float:
    middle = slice(SR // 4, 3 * SR // 4)  # away from the clip's edges
    return _db(filtered[middle].pow(2).mean() / original[middle].pow(2).mean())


def test_lowpass_attenuates_above_its_cutoff() -> None:
    cutoff = torch.tensor([2000.0, 2000.0, 2000.0])
    x = torch.stack([_sine(500), _sine(2000), _sine(4000)])
    y = effects.lowpass(x, cutoff, SR)
    gains = [_gain_db(y[i], x[i]) for i in range(3)]
    assert gains[0] == pytest.approx(0.0, abs=0.05)
    assert gains[1] == pytest.approx(-3.01, abs=0.1)
    assert gains[2] < -24.0  # order 4: 24 dB per octave


def test_highpass_attenuates_below_its_cutoff() -> None:
    x = torch.stack([_sine(250), _sine(1000), _sine(4000)])
    y = effects.highpass(x, torch.full((3,), 1000.0), SR)
    gains = [_gain_db(y[i], x[i]) for i in range(3)]
    assert gains[0] < -48.0  # two octaves below
    assert gains[1] == pytest.approx(-3.01, abs=0.1)
    assert gains[2] == pytest.approx(0.0, abs=0.05)
