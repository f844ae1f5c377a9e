"""The one audio path: decoding, mono, resampling, BS.1770-4 loudness and windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile
import soxr

from instrec import audio as audio_module
from instrec.audio import (
    DECODE_BLOCK_FRAMES,
    LoudnessMeter,
    integrated_loudness,
    load_audio,
    load_normalized,
    normalize_loudness,
    stream_audio,
    window_starts,
    windows,
)
from instrec.errors import AudioError


def sine(freq_hz: float, seconds: float, sr: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def peak_frequency(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / sr)[spectrum.argmax()])


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_load_audio_decodes_every_format_to_16k_mono(tmp_path: Path, fmt: str) -> None:
    left = sine(440, 2.0, 44_100)
    stereo = np.stack([left, left], axis=1)
    path = tmp_path / f"tone.{fmt.lower()}"
    soundfile.write(path, stereo, 44_100, format=fmt)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - 32_000) < 1_200  # mp3 adds encoder padding
    assert peak_frequency(audio, 16_000) == pytest.approx(440, abs=2)


def test_load_audio_averages_channels(tmp_path: Path) -> None:
    left, right = sine(300, 1.0, 16_000, 0.6), sine(300, 1.0, 16_000, 0.2)
    soundfile.write(tmp_path / "lr.wav", np.stack([left, right], axis=1), 16_000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "lr.wav"), (left + right) / 2, atol=1e-6)


def test_load_audio_resamples_any_rate(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "a.wav", sine(1000, 1.0, 22_050), 22_050)
    audio = load_audio(tmp_path / "a.wav", sr=16_000)
    assert audio.size == 16_000
    assert peak_frequency(audio, 16_000) == pytest.approx(1000, abs=2)


def test_stream_audio_is_the_whole_file_resampled_in_bounded_blocks(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stereo = (rng.standard_normal((10 * 44_100, 2)) * 0.1).astype(np.float32)
    soundfile.write(tmp_path / "long.wav", stereo, 44_100, subtype="FLOAT")
    blocks = list(stream_audio(tmp_path / "long.wav"))
    assert len(blocks) >= 6  # 441,000 frames in blocks of 65,536
    largest = 2 * DECODE_BLOCK_FRAMES * 16_000 / 44_100  # soxr may hold back part of a block
    assert max(b.size for b in blocks) <= largest < 160_000 / 3
    whole = soxr.resample(stereo.mean(axis=1), 44_100, 16_000, quality="HQ")
    np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_files_libsndfile_cannot_open_are_read_by_pedalboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = sine(440, 3.0, 16_000)
    soundfile.write(tmp_path / "a.wav", x, 16_000, subtype="FLOAT")

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("format not recognised")

    monkeypatch.setattr(audio_module.soundfile, "SoundFile", refuse)
    np.testing.assert_allclose(load_audio(tmp_path / "a.wav"), x, atol=1e-6)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"nope\.wav: no such file"):
        load_audio(tmp_path / "nope.wav")


def test_undecodable_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match=r"junk\.wav: cannot decode"):
        load_audio(tmp_path / "junk.wav")


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "empty.wav", np.zeros((0, 2), dtype=np.float32), 44_100)
    with pytest.raises(AudioError, match=r"empty\.wav: contains no audio samples"):
        load_audio(tmp_path / "empty.wav")


def test_nan_samples_are_an_error(tmp_path: Path) -> None:
    x = sine(440, 0.5, 16_000)
    x[100] = np.nan
    soundfile.write(tmp_path / "nan.wav", x, 16_000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: contains NaN"):
        load_audio(tmp_path / "nan.wav")


@pytest.mark.parametrize("sr", [16_000, 44_100, 48_000])
@pytest.mark.parametrize("seconds", [0.5, 1.0, 3.7])
def test_loudness_matches_pyloudnorm(sr: int, seconds: float) -> None:
    rng = np.random.default_rng(sr + int(seconds * 10))
    n = int(seconds * sr)
    x = rng.standard_normal(n) * np.linspace(0.02, 0.3, n) + 0.2 * np.sin(np.arange(n) * 0.05)
    reference = pyloudnorm.Meter(sr).integrated_loudness(x)
    assert integrated_loudness(x, sr) == pytest.approx(reference, abs=0.1)


@pytest.mark.parametrize("amplitude_db", [0.0, -10.0, -20.0])
def test_loudness_of_a_1khz_sine_follows_bs1770(amplitude_db: float) -> None:
    # BS.1770: a full-scale 1 kHz sine in one channel reads -3.01 LUFS.
    x = sine(1000, 5.0, 48_000, amplitude=10 ** (amplitude_db / 20))
    assert integrated_loudness(x, 48_000) == pytest.approx(amplitude_db - 3.01, abs=0.1)


def test_silence_measures_minus_infinity_and_stays_silent() -> None:
    silence = np.zeros(16_000, dtype=np.float32)
    assert integrated_loudness(silence) == float("-inf")
    normalized = normalize_loudness(silence, target_lufs=-12.0)
    assert np.array_equal(normalized, silence)


@pytest.mark.parametrize("sr", [16_000, 44_100])
def test_loudness_fed_in_pieces_equals_the_whole_signal(sr: int) -> None:
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(7 * sr + 123) * np.linspace(0.01, 1, 7 * sr + 123)).astype(np.float32)
    meter = LoudnessMeter(sr)
    cuts = np.sort(rng.integers(0, x.size, 40))
    for piece in np.split(x, np.concatenate([cuts, [cuts[-1], cuts[-1] + 1]])):  # incl. empty
        meter.add(piece)
    assert meter.samples == x.size
    assert meter.loudness() == pytest.approx(integrated_loudness(x, sr), abs=1e-9)
    assert meter.loudness() == pytest.approx(pyloudnorm.Meter(sr).integrated_loudness(x), abs=0.02)


def test_too_short_input_is_measured_as_one_block() -> None:
    short = sine(1000, 0.1, 16_000, amplitude=0.5)  # shorter than one 400 ms block
    loudness = integrated_loudness(short)
    assert np.isfinite(loudness)
    assert loudness == pytest.approx(20 * np.log10(0.5) - 3.01, abs=0.3)
    assert integrated_loudness(normalize_loudness(short, target_lufs=-20)) == pytest.approx(-20)
    assert integrated_loudness(np.zeros(0)) == float("-inf")


def test_normalize_reaches_target_on_real_like_signal() -> None:
    x = sine(220, 3.0, 16_000, 0.05) + sine(3000, 3.0, 16_000, 0.01)
    out = normalize_loudness(x, 16_000, target_lufs=-12.0)
    assert integrated_loudness(out, 16_000) == pytest.approx(-12.0, abs=0.01)
    assert pyloudnorm.Meter(16_000).integrated_loudness(out.astype(np.float64)) == pytest.approx(
        -12.0, abs=0.1
    )


def test_load_normalized_reaches_the_level_and_refuses_silence(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "tone.wav", sine(440, 2.0, 44_100, 0.01), 44_100)
    tone = load_normalized(tmp_path / "tone.wav", target_lufs=-12.0)
    assert pyloudnorm.Meter(16_000).integrated_loudness(tone) == pytest.approx(-12.0, abs=0.1)
    hiss = (np.random.default_rng(0).standard_normal(32_000) * 1e-6).astype(np.float32)
    soundfile.write(tmp_path / "hiss.wav", hiss, 16_000, subtype="FLOAT")  # ~-120 dBFS
    with pytest.raises(AudioError, match=r"hiss\.wav: is silent \(no 400 ms block above -70"):
        load_normalized(tmp_path / "hiss.wav")


def test_windows_hop_half_a_second_and_cover_the_tail() -> None:
    assert window_starts(5 * 16_000, 16_000, 8_000).tolist() == list(range(0, 64_001, 8_000))
    starts = window_starts(5 * 16_000 + 100, 16_000, 8_000)
    assert starts[-1] == 5 * 16_000 + 100 - 16_000  # flush with the end, no padding
    assert window_starts(16_000, 16_000, 8_000).tolist() == [0]


def test_windows_cut_the_signal_and_pad_short_input() -> None:
    x = np.arange(40_000, dtype=np.float32)
    cut = windows(x, 16_000)
    assert cut.shape == (4, 16_000)
    assert cut[1, 0] == 8_000 and cut[-1, -1] == 39_999
    short = windows(np.ones(5_000, dtype=np.float32))
    assert short.shape == (1, 16_000)
    assert short[0, :5_000].sum() == 5_000 and not short[0, 5_000:].any()
