"""The one audio path: file -> 16 kHz mono float32 -> loudness -> fixed-length windows.

Every dataset loader and `instrec predict` go through these functions, so a file is
turned into model input the same way in training, evaluation and use.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Generator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

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


DECODE_BLOCK_FRAMES = 1 << 16  # file frames per read (~1.5 s at 44.1 kHz) up to stereo;
# files with more channels read proportionally fewer frames, so a block stays ~0.5 MB
RATE_RANGE = (4_000, 768_000)  # Hz a file may declare: outside it, it is no music recording
# (or its header is damaged), and a 1 Hz file would resample to 16,000x its length
STREAMED_WAV_SIZES = (0, 0xFFFFFFFF)  # data sizes of a WAV written to a pipe: length unknown
FOLDER = "is a folder, not a file"  # what input_problem says of a folder


def load_audio(path: str | Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read any wav/flac/ogg/mp3 file as mono float32 at `sr` Hz (the whole of
    `stream_audio`, which says how and which errors it raises)."""
    return np.concatenate(list(stream_audio(path, sr)))


def stream_audio(path: str | Path, sr: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """The file as consecutive mono float32 blocks at `sr` Hz, decoded and resampled one
    block at a time, so memory stays that of a block however long the file is.

    Channels are averaged; resampling is a streaming soxr (high quality), bit-identical to
    resampling the whole signal at once. Missing, non-regular (folder, FIFO, device),
    undecodable, empty, truncated or non-finite files, and rates outside RATE_RANGE, raise
    AudioError naming the file (non-finite samples, mid-file decoding errors and truncation
    only when the decoding reaches them).
    """
    path = Path(path)
    problem = input_problem(path)
    if problem is not None:
        raise AudioError(path, problem)
    blocks, file_sr = _open_decoder(path)
    resampler = None
    if file_sr != sr:
        resampler = soxr.ResampleStream(file_sr, sr, 1, dtype="float32", quality="HQ")
    decoded, produced = 0, 0  # file frames, samples at `sr`
    with closing(blocks):
        while True:
            try:
                frames = next(blocks, None)  # (frames, channels)
            except AudioError:
                raise
            except Exception as error:  # libsndfile / pedalboard raise untyped errors
                raise AudioError(path, f"cannot decode audio ({error})") from None
            if frames is None:
                break
            decoded += len(frames)
            mono = frames @ np.full(frames.shape[1], 1 / frames.shape[1], np.float32)  # 25x mean()
            if not np.isfinite(mono).all():  # a NaN/inf in any channel reaches the mix
                raise AudioError(path, "contains NaN or infinite samples")
            out = mono if resampler is None else resampler.resample_chunk(mono)
            produced += out.size
            if out.size:
                yield out
    if decoded == 0:
        raise AudioError(path, "contains no audio samples")
    tail = np.zeros(0, np.float32)
    if resampler is not None:
        tail = resampler.resample_chunk(tail, last=True)
    if produced + tail.size == 0:
        raise AudioError(
            path, f"too short to make one sample at {sr} Hz ({decoded} at {file_sr} Hz)"
        )
    if tail.size:
        yield tail


def input_problem(path: Path, missing: str = "no such file") -> str | None:
    """Why `path` cannot be read as an input file (None: it is a regular file or a link to
    one), found with stat alone: a FIFO or device is never opened, as reading one could
    block forever."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "broken symbolic link" if path.is_symlink() else missing
    except OSError as error:  # a name too long, a loop of links, no permission
        return (error.strerror or type(error).__name__).lower()
    except ValueError as error:  # a NUL in the name
        return str(error)
    if stat.S_ISDIR(mode):
        return FOLDER
    if not stat.S_ISREG(mode):
        kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
        return f"not a regular file (a {kind})"
    return None


def _open_decoder(path: Path) -> tuple[Generator[np.ndarray, None, None], int]:
    """(frames, channels) float32 blocks of the file and its rate: libsndfile, or
    pedalboard (ffmpeg-free MP3/AAC readers) where libsndfile cannot open it."""
    try:  # as bytes: soundfile cannot encode a name that is not valid UTF-8
        sound_file = soundfile.SoundFile(os.fsencode(path))
    except Exception as sndfile_error:  # libsndfile's errors share no useful base class
        try:
            from pedalboard.io import AudioFile

            audio_file = AudioFile(str(path))
        except Exception:
            raise AudioError(path, f"cannot decode audio ({sndfile_error})") from None
        _check_rate(path, audio_file)
        return _pedalboard_blocks(audio_file), int(audio_file.samplerate)
    _check_rate(path, sound_file)
    return _soundfile_blocks(sound_file, path), int(sound_file.samplerate)


def _check_rate(path: Path, opened: Any) -> None:
    """Refuses (and closes) an opened file whose rate is outside RATE_RANGE."""
    low, high = RATE_RANGE
    if not low <= opened.samplerate <= high:
        opened.close()
        raise AudioError(
            path, f"sample rate {opened.samplerate:.0f} Hz is outside {low}..{high} Hz"
        )


def _frames_per_read(channels: int) -> int:
    return DECODE_BLOCK_FRAMES * 2 // max(2, channels)


def _soundfile_blocks(
    sound_file: soundfile.SoundFile, path: Path
) -> Generator[np.ndarray, None, None]:
    """Blocks up to the end of the data, which must hold what the header promised (a file
    cut short in a copy or download is refused, not tagged on what is left).

    SoundFile.blocks is not used: it trusts the header and, on a short read, hands back
    the rest of its buffer as if it were audio.
    """
    with sound_file:
        promised = max(sound_file.frames, _wav_data_frames(path, sound_file) or 0)
        size, held = _frames_per_read(sound_file.channels), 0
        while True:
            block = sound_file.read(size, dtype="float32", always_2d=True)
            held += len(block)
            if len(block):
                yield block
            if len(block) < size:
                break
    if held < promised:
        raise AudioError(path, f"truncated: header promises {promised} samples, file holds {held}")


def _wav_data_frames(path: Path, sound_file: soundfile.SoundFile) -> int | None:
    """Frames a PCM/float WAV file's data chunk declares (None: not such a file, or written
    to a pipe with the length unknown). libsndfile shortens its frame count to what the
    file holds, so a truncated WAV is only seen here."""
    if sound_file.format != "WAV" or not sound_file.subtype.startswith(("PCM", "FLOAT", "DOUBLE")):
        return None
    with open(path, "rb") as handle:
        if handle.read(12)[8:] != b"WAVE":
            return None
        align = None
        while len(header := handle.read(8)) == 8:
            name, size = header[:4], int.from_bytes(header[4:], "little")
            skip = size + size % 2  # chunks are padded to an even length
            if name == b"fmt ":  # format, channels, rate, bytes/s, then block align
                align = int.from_bytes(handle.read(14)[12:], "little") or None
                skip -= 14
            elif name == b"data":
                return None if size in STREAMED_WAV_SIZES or not align else size // align
            handle.seek(skip, os.SEEK_CUR)
    return None


def _pedalboard_blocks(audio_file: Any) -> Generator[np.ndarray, None, None]:
    with audio_file:
        size = _frames_per_read(audio_file.num_channels)
        while audio_file.tell() < audio_file.frames:
            block = audio_file.read(size)  # (channels, frames)
            if block.shape[1] == 0:
                return
            yield block.T.astype(np.float32)


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


class LoudnessMeter:
    """Integrated loudness (ITU-R BS.1770-4) of a signal fed in consecutive pieces.

    The K-weighting filters carry their state from piece to piece and the running energy
    is kept only where gating blocks start and end (about 20 numbers per second), so a file
    is measured while it is decoded, without holding it; the result is that of the whole
    signal. Defined for every input: a signal shorter than one 400 ms block is measured as
    a single block of its own length; silence (every block under the -70 LUFS gate) gives
    -inf.
    """

    def __init__(self, sr: int = SAMPLE_RATE) -> None:
        self.sr = sr
        self.samples = 0  # fed so far
        self._filters = [(b, a, np.zeros(2)) for b, a in k_weighting_coefficients(sr)]
        self._energy = 0.0  # sum of squared K-weighted samples so far
        self._block = round(BLOCK_SECONDS * sr)  # samples
        self._step = BLOCK_SECONDS * (1 - BLOCK_OVERLAP)  # s (the grid pyloudnorm uses)
        self._at_starts: list[float] = []  # running energy at block k's first sample
        self._at_ends: list[float] = []  # running energy just past block k's last sample

    def add(self, x: np.ndarray) -> None:
        """Feed the next samples of the signal."""
        weighted = np.asarray(x, dtype=np.float64)
        if weighted.size == 0:
            return  # lfilter would hand back a meaningless state for no input
        for i, (b, a, state) in enumerate(self._filters):
            weighted, state = scipy.signal.lfilter(b, a, weighted, zi=state)
            self._filters[i] = (b, a, state)
        # running[i]: energy of the signal's first self.samples + i samples
        running = self._energy + np.concatenate([[0.0], np.cumsum(weighted**2)])
        end = self.samples + weighted.size
        for marks, offset in ((self._at_starts, 0), (self._at_ends, self._block)):
            while (position := self._block_start(len(marks)) + offset) <= end:
                marks.append(float(running[position - self.samples]))
        self._energy, self.samples = float(running[-1]), end

    def loudness(self) -> float:
        """LUFS of everything fed so far."""
        energies = self._block_energies()
        with np.errstate(divide="ignore"):
            block_lufs = -0.691 + 10 * np.log10(energies)
        above_absolute = block_lufs >= ABSOLUTE_GATE_LUFS
        if not above_absolute.any():
            return float("-inf")
        relative_gate = -0.691 + 10 * np.log10(energies[above_absolute].mean()) - 10.0
        kept = energies[above_absolute & (block_lufs > relative_gate)]
        return float(-0.691 + 10 * np.log10(kept.mean()))

    def _block_start(self, k: int) -> int:
        return int(k * self._step * self.sr)  # samples, as numpy's arange(n) * step * sr

    def _block_energies(self) -> np.ndarray:
        """Mean square of each 400 ms block, 75 % overlap; a last block running past the
        end counts its missing part as 0."""
        if self.samples < self._block:
            return np.array([self._energy / max(self.samples, 1)])
        n_blocks = int(np.round((self.samples / self.sr - BLOCK_SECONDS) / self._step)) + 1
        starts = np.array(self._at_starts[:n_blocks])
        ends = np.array(self._at_ends[:n_blocks] + [self._energy] * (n_blocks - len(self._at_ends)))
        return (ends - starts) / self._block


def integrated_loudness(x: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Gated loudness of a mono signal in LUFS (ITU-R BS.1770-4; see LoudnessMeter)."""
    meter = LoudnessMeter(sr)
    meter.add(x)
    return meter.loudness()


def level_gain(loudness: float, target_lufs: float = DEFAULT_LUFS) -> float:
    """Linear gain taking a signal measured at `loudness` LUFS to `target_lufs`; 1 for
    silence (-inf: no gain can bring it to a level)."""
    return 10 ** ((target_lufs - loudness) / 20) if np.isfinite(loudness) else 1.0


def audible_gain(loudness: float, name: str | Path, target_lufs: float = DEFAULT_LUFS) -> float:
    """Gain taking a recording measured at `loudness` LUFS to `target_lufs`. Silence (every
    block under the -70 LUFS gate) raises AudioError naming `name`: scaled up it would be
    noise, and a model would name instruments in it."""
    if not np.isfinite(loudness):
        raise AudioError(name, f"is silent (no 400 ms block above {ABSOLUTE_GATE_LUFS:g} LUFS)")
    return level_gain(loudness, target_lufs)


def at_audible_level(
    x: np.ndarray, name: str | Path, target_lufs: float = DEFAULT_LUFS
) -> np.ndarray:
    """A 16 kHz signal scaled to `target_lufs`; silence raises AudioError naming `name`
    (see audible_gain)."""
    return (x * audible_gain(integrated_loudness(x), name, target_lufs)).astype(np.float32)


def load_normalized(path: str | Path, target_lufs: float = DEFAULT_LUFS) -> np.ndarray:
    """A recording as the models see it: mono float32 at 16 kHz, scaled to `target_lufs`;
    silent files raise AudioError."""
    return at_audible_level(load_audio(path), path, target_lufs)


def normalize_loudness(
    x: np.ndarray, sr: int = SAMPLE_RATE, target_lufs: float = DEFAULT_LUFS
) -> np.ndarray:
    """Scale a signal to `target_lufs`; silence is returned unchanged (as a copy).

    No limiter is applied, as in the paper: peaks may exceed 1.0 after normalisation.
    """
    return (x * level_gain(integrated_loudness(x, sr), target_lufs)).astype(np.float32)


def window_starts(n_samples: int, window: int, hop: int, drop_tail: bool = False) -> np.ndarray:
    """Start sample of each window that covers a signal of `n_samples`.

    Windows start every `hop` samples; if the last regular window leaves a tail, one
    more window is placed flush with the end, so every sample is seen and nothing is
    padded (`drop_tail`: the tail is left out instead, as the authors' evaluation's
    `unfold` does). A signal shorter than one window gets one window at 0 (padded by
    `windows`).
    """
    if n_samples <= window:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_samples - window + 1, hop, dtype=np.int64)
    if not drop_tail and starts[-1] + window < n_samples:
        starts = np.append(starts, n_samples - window)
    return starts


def windows(
    x: np.ndarray,
    sr: int = SAMPLE_RATE,
    seconds: float = 1.0,
    overlap: float = 0.5,
    drop_tail: bool = False,
) -> np.ndarray:
    """Cut a signal into (n_windows, seconds * sr) windows with the given overlap.

    The tail rule is `window_starts`'; a signal shorter than one window is zero-padded
    at the end to one full window.
    """
    window = round(seconds * sr)
    hop = max(1, round(window * (1 - overlap)))
    if x.size < window:
        return np.pad(x, (0, window - x.size))[None, :].astype(np.float32, copy=False)
    starts = window_starts(x.size, window, hop, drop_tail)
    index = starts[:, None] + np.arange(window)[None, :]
    return x[index].astype(np.float32, copy=False)
