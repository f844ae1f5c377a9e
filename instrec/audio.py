"""The one audio path: file -> 16 kHz mono float32 -> loudness -> fixed-length windows.

Every dataset loader and `instrec predict` go through these functions, so a file is
turned into model input the same way in training, evaluation and use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.signal
import soundfile
import soxr

from instrec.errors import AudioError

SAMPLE_RATE = 16_000  # Hz: the model's input rate
DEFAULT_LUFS = -12.0  # LUFS: the paper's level for IRMAS samples
ABSOLUTE_GATE_LUFS = -70.0  # BS.1770-4 absolute gate
BLOCK_SECONDS = 0.4  # BS.1770-4 gating block
BLOCK_OVERLAP = 0.75


def load_audio(path: str | Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read any wav/flac/ogg/mp3 file as mono float32 at `sr` Hz.

    Channels are averaged; resampling uses soxr (high quality). Missing, undecodable,
    empty or non-finite files raise AudioError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file")
    data, file_sr = _decode(path)
    if data.size == 0:
        raise AudioError(path, "contains no audio samples")
    if not np.isfinite(data).all():
        raise AudioError(path, "contains NaN or infinite samples")
    mono = data.mean(axis=1) if data.ndim == 2 else data
    return resample(mono.astype(np.float32, copy=False), file_sr, sr)


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 and the file's rate; pedalboard where libsndfile fails."""
    try:
        data, file_sr = soundfile.read(path, dtype="float32", always_2d=True)
        return data, int(file_sr)
    except Exception as sndfile_error:  # libsndfile's errors share no useful base class
        try:
            from pedalboard.io import AudioFile

            with AudioFile(str(path)) as audio_file:
                frames = audio_file.read(audio_file.frames)  # (channels, frames)
                return frames.T.astype(np.float32), int(audio_file.samplerate)
        except Exception:
            raise AudioError(path, f"cannot decode audio ({sndfile_error})") from None


def resample(x: np.ndarray, from_sr: int, to_sr: int) -> np.ndarray:
    """Resample a mono float32 signal with soxr; identity when the rates match."""
    if from_sr == to_sr:
        return x
    return soxr.resample(x, from_sr, to_sr, quality="HQ").astype(np.float32, copy=False)


def k_weighting_coefficients(sr: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """BS.1770-4 K-weighting as two biquads (b, a): a +4 dB high shelf at 1.5 kHz, then a
    38 Hz high pass, designed for any rate with the RBJ formulas pyloudnorm uses."""
    shelf_gain = 10 ** (4.0 / 40.0)
    w0 = 2 * np.pi * 1500.0 / sr
    alpha = np.sin(w0) / (2 * (1 / np.sqrt(2)))
    cos, root = np.cos(w0), 2 * np.sqrt(shelf_gain) * alpha
    a_ = shelf_gain
    shelf_b = [
        a_ * ((a_ + 1) + (a_ - 1) * cos + root),
        -2 * a_ * ((a_ - 1) + (a_ + 1) * cos),
        a_ * ((a_ + 1) + (a_ - 1) * cos - root),
    ]
    shelf_a = [(a_ + 1) - (a_ - 1) * cos + root, 2 * ((a_ - 1) - (a_ + 1) * cos),
               (a_ + 1) - (a_ - 1) * cos - root]  # fmt: skip
    w0 = 2 * np.pi * 38.0 / sr
    alpha, cos = np.sin(w0) / (2 * 0.5), np.cos(w0)
    pass_b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
    pass_a = [1 + alpha, -2 * cos, 1 - alpha]
    return [
        (np.array(b) / a[0], np.array(a) / a[0]) for b, a in ((shelf_b, shelf_a), (pass_b, pass_a))
    ]


def integrated_loudness(x: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Gated loudness of a mono signal in LUFS (ITU-R BS.1770-4).

    Defined for every input: a signal shorter than one 400 ms block is measured as a
    single block of its own length; silence (every block under the -70 LUFS gate)
    gives -inf.
    """
    weighted = np.asarray(x, dtype=np.float64)
    for b, a in k_weighting_coefficients(sr):
        weighted = scipy.signal.lfilter(b, a, weighted)
    energies = _block_energies(weighted, sr)
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10 * np.log10(energies)
    above_absolute = block_lufs >= ABSOLUTE_GATE_LUFS
    if not above_absolute.any():
        return float("-inf")
    relative_gate = -0.691 + 10 * np.log10(energies[above_absolute].mean()) - 10.0
    kept = energies[above_absolute & (block_lufs > relative_gate)]
    return float(-0.691 + 10 * np.log10(kept.mean()))


def _block_energies(weighted: np.ndarray, sr: int) -> np.ndarray:
    """Mean square of each 400 ms block, 75 % overlap (the block grid pyloudnorm uses)."""
    block = round(BLOCK_SECONDS * sr)
    if weighted.size < block:
        return np.array([np.mean(weighted**2)]) if weighted.size else np.zeros(1)
    step = BLOCK_SECONDS * (1 - BLOCK_OVERLAP)
    n_blocks = int(np.round((weighted.size / sr - BLOCK_SECONDS) / step)) + 1
    starts = (np.arange(n_blocks) * step * sr).astype(int)
    cumulative = np.concatenate([[0.0], np.cumsum(weighted**2)])
    ends = np.minimum(starts + block, weighted.size)
    return (cumulative[ends] - cumulative[starts]) / block


def normalize_loudness(
    x: np.ndarray, sr: int = SAMPLE_RATE, target_lufs: float = DEFAULT_LUFS
) -> np.ndarray:
    """Scale a signal to `target_lufs`; silence is returned unchanged (no gain can help it).

    No limiter is applied, as in the paper: peaks may exceed 1.0 after normalisation.
    """
    loudness = integrated_loudness(x, sr)
    if not np.isfinite(loudness):
        return x.astype(np.float32, copy=True)
    gain = 10 ** ((target_lufs - loudness) / 20)
    return (x * gain).astype(np.float32)


def window_starts(n_samples: int, window: int, hop: int) -> np.ndarray:
    """Start sample of each window that covers a signal of `n_samples`.

    Windows start every `hop` samples; if the last regular window leaves a tail, one
    more window is placed flush with the end, so every sample is seen and nothing is
    padded. A signal shorter than one window gets one window at 0 (padded by `windows`).
    """
    if n_samples <= window:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_samples - window + 1, hop, dtype=np.int64)
    if starts[-1] + window < n_samples:
        starts = np.append(starts, n_samples - window)
    return starts


def windows(
    x: np.ndarray, sr: int = SAMPLE_RATE, seconds: float = 1.0, overlap: float = 0.5
) -> np.ndarray:
    """Cut a signal into (n_windows, seconds * sr) windows with the given overlap.

    The tail rule is `window_starts`'; a signal shorter than one window is zero-padded
    at the end to one full window.
    """
    window = round(seconds * sr)
    hop = max(1, round(window * (1 - overlap)))
    if x.size < window:
        return np.pad(x, (0, window - x.size))[None, :].astype(np.float32, copy=False)
    starts = window_starts(x.size, window, hop)
    index = starts[:, None] + np.arange(window)[None, :]
    return x[index].astype(np.float32, copy=False)
