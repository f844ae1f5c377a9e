"""Batched torch loudness against scipy's IIR filter, instrec.audio and pyloudnorm."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
import scipy.signal
import torch

from instrec.audio import integrated_loudness, k_weighting_coefficients
from instrec.train.effects import fft_convolve
from instrec.train.loudness import (
    integrated_loudness_torch,
    k_weighting_response,
    loudness_gain,
    normalize_loudness_torch,
)

SR = 16_000


def _signals(sr: int, seconds: float) -> np.ndarray:
    """Noise, sines at 100 Hz / 1 kHz / 6 kHz and a half-silent burst, different levels."""
    rng = np.random.default_rng(1)
    n = round(seconds * sr)
    t = np.arange(n) / sr
    burst = rng.normal(0, 0.3, n) * (t < seconds / 2)
    return np.stack(
        [
            rng.normal(0, 0.1, n),
            0.5 * np.sin(2 * np.pi * 100 * t),
            0.05 * np.sin(2 * np.pi * 1000 * t),
            0.8 * np.sin(2 * np.pi * 6000 * t),
            burst,
        ]
    )


def test_k_weighting_response_reproduces_the_iir_cascade() -> None:
    x = np.random.default_rng(0).normal(size=(2, 8000))
    expected = x
    for b, a in k_weighting_coefficients(SR):
        expected = scipy.signal.lfilter(b, a, expected, axis=-1)
    response = torch.from_numpy(k_weighting_response(SR))[None, :]
    got = fft_convolve(torch.from_numpy(x), response).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize(("sr", "seconds"), [(16_000, 1.0), (16_000, 1.73), (44_100, 2.0)])
def test_matches_pyloudnorm_and_the_numpy_reference(sr: int, seconds: float) -> None:
    signals = _signals(sr, seconds)
    got = integrated_loudness_torch(torch.tensor(signals, dtype=torch.float32), sr).numpy()
    meter = pyloudnorm.Meter(sr)
    for row, value in zip(signals, got, strict=True):
        assert value == pytest.approx(meter.integrated_loudness(row), abs=0.1)
        assert value == pytest.approx(integrated_loudness(row, sr), abs=0.02)


def test_clip_shorter_than_one_block_matches_the_numpy_reference() -> None:
    signals = _signals(SR, 0.25)  # pyloudnorm refuses clips under 0.4 s
    got = integrated_loudness_torch(torch.tensor(signals, dtype=torch.float32), SR)
    expected = [integrated_loudness(row, SR) for row in signals]
    np.testing.assert_allclose(got.numpy(), expected, atol=0.02)


def test_silent_rows_are_minus_infinity_and_stay_silent() -> None:
    x = torch.zeros(3, SR)
    x[1] = 0.1 * torch.randn(SR, generator=torch.Generator().manual_seed(0))
    loudness = integrated_loudness_torch(x, SR)
    assert loudness[0] == -np.inf and loudness[2] == -np.inf
    assert torch.isfinite(loudness[1])
    normalized = normalize_loudness_torch(x, SR, -12.0)
    assert not normalized.isnan().any()
    assert torch.equal(normalized[0], x[0])


def test_normalize_reaches_per_row_targets() -> None:
    x = torch.tensor(_signals(SR, 1.0), dtype=torch.float32)
    targets = torch.tensor([-12.0, -20.0, -30.0, -6.0, -23.0])
    got = integrated_loudness_torch(normalize_loudness_torch(x, SR, targets), SR)
    np.testing.assert_allclose(got.numpy(), targets.numpy(), atol=0.01)
    scalar = integrated_loudness_torch(normalize_loudness_torch(x, SR, -12.0), SR)
    np.testing.assert_allclose(scalar.numpy(), -12.0, atol=0.01)


def test_gain_is_one_where_a_level_is_not_finite() -> None:
    loudness = torch.tensor([-20.0, -np.inf, -20.0])
    target = torch.tensor([-14.0, -10.0, -np.inf])
    expected = [10 ** (6 / 20), 1.0, 1.0]
    np.testing.assert_allclose(loudness_gain(loudness, target).numpy(), expected, rtol=1e-6)
