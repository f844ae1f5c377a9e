"""`Tagger`: audio files, folders or arrays -> the instruments that lead them.

A file goes through the one audio path (instrec.audio: 16 kHz mono, -12 LUFS, as the
IRMAS data), is cut into 1 s windows with 50 % overlap (as in evaluation), and the window
logits are averaged per file; the sigmoid of that average is the file's probability per
class. Files are decoded block by block: a first pass measures their loudness and keeps
the blocks of files up to HOLD_SECONDS; a longer file is decoded again while it is
tagged, so memory does not grow with length. Two engines run the network: a saved
PyTorch model file, or an exported .onnx file on onnxruntime (no torch imported).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instrec.audio import (
    FOLDER,
    SAMPLE_RATE,
    LoudnessMeter,
    at_audible_level,
    audible_gain,
    input_problem,
    resample,
    stream_audio,
)
from instrec.errors import AudioError
from instrec.model.registry import resolve
from instrec.tagging.geometry import WINDOW, Engine
from instrec.tagging.onnx_engine import OnnxEngine
from instrec.tagging.windows import SampleReader, window_logits

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
HOLD_SECONDS = 600.0  # s of decoded audio kept between measuring and tagging (38 MB);
# longer files are decoded twice instead, so memory stays bounded whatever their length


@dataclass
class Prediction:
    """One file's (or array's) result; `error` is set instead when it was skipped."""

    path: str
    instruments: list[str] = field(default_factory=list)  # codes at/above threshold, best first
    probabilities: dict[str, float] = field(default_factory=dict)  # code -> sigmoid probability
    error: str | None = None
    duration_s: float | None = None  # of the decoded audio
    padded: bool = False  # shorter than 1 s: zero-padded to one window
    window_starts_s: np.ndarray | None = None  # (windows,) s
    window_probabilities: np.ndarray | None = None  # (windows, classes)

    def as_dict(self, timeline: bool = False) -> dict[str, Any]:
        """JSON-able: path, instruments, probabilities, error, duration_s, padded (+ timeline)."""
        out: dict[str, Any] = {
            "path": self.path,
            "instruments": self.instruments,
            "probabilities": self.probabilities,
            "error": self.error,
            "duration_s": self.duration_s,
            "padded": self.padded,
        }
        if timeline and self.window_probabilities is not None:
            assert self.window_starts_s is not None
            out["timeline"] = {
                "window_s": WINDOW / SAMPLE_RATE,
                "start_s": [round(float(s), 4) for s in self.window_starts_s],
                "probabilities": {
                    code: [round(float(p), 4) for p in self.window_probabilities[:, i]]
                    for i, code in enumerate(self.probabilities)
                },
            }
        return out


class Tagger:
    """Names the instruments in audio: `load_model(path).predict("song.mp3")`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.classes = engine.classes
        self.threshold = engine.threshold

    def predict(
        self,
        audio: str | Path | np.ndarray,
        sr: int | None = None,
        threshold: float | None = None,
        top_k: int | None = None,
    ) -> Prediction:
        """Tag a file path, or an array of samples at `sr` Hz (default 16 kHz).

        Arrays are mono (samples,) or multi-channel 2-D (the shorter axis is taken as
        channels). Instruments are the classes whose probability is at least `threshold`
        (default: the model's), most probable first, at most `top_k`. A bad or silent file
        (or array) raises AudioError, and so does a file that changes while it is read or
        audio the model gives non-finite outputs for; audio shorter than 1 s is zero-padded
        and flagged `padded`.
        """
        if isinstance(audio, str | Path):
            name, stamp = str(audio), _stamp(Path(audio))
            blocks, total = _loudness_normalized_blocks(Path(audio))
        else:
            name, x = "<array>", _array_to_mono(audio, sr or SAMPLE_RATE)
            blocks, total = [at_audible_level(x, name)], x.size
        duration, padded = total / SAMPLE_RATE, total < WINDOW
        if padded:
            blocks, total = [np.pad(np.concatenate(list(blocks)), (0, WINDOW - total))], WINDOW
        reader = SampleReader(blocks, total, name)
        logits, starts = window_logits(self.engine, reader)  # (windows, classes), (windows,)
        if isinstance(audio, str | Path) and _stamp(Path(audio)) != stamp:
            raise AudioError(name, "changed while being read (tag it again once it is complete)")
        if not np.isfinite(logits).all():
            raise AudioError(name, "the model gives non-finite (NaN or infinite) outputs for it")
        probabilities = _sigmoid(logits.mean(axis=0))  # mean of logits, as in evaluation
        chosen = self.threshold if threshold is None else threshold
        return Prediction(
            path=name,
            instruments=_choose(self.classes, probabilities, chosen, top_k),
            probabilities={
                c: round(float(p), 6) for c, p in zip(self.classes, probabilities, strict=True)
            },
            duration_s=round(duration, 3),
            padded=padded,
            window_starts_s=starts / SAMPLE_RATE,
            window_probabilities=_sigmoid(logits),
        )

    def predict_files(
        self,
        paths: Iterable[str | Path],
        threshold: float | None = None,
        top_k: int | None = None,
    ) -> Iterator[Prediction]:
        """Tag files and folders (searched recursively for wav/flac/ogg/mp3); an input that
        cannot be used yields a Prediction whose `error` says why, and the batch goes on."""
        for path, problem in find_audio(paths):
            if problem is not None:
                yield Prediction(path=str(path), error=problem)
                continue
            try:
                yield self.predict(path, threshold=threshold, top_k=top_k)
            except AudioError as error:
                yield Prediction(path=str(path), error=error.reason)


def find_audio(paths: Iterable[str | Path]) -> Iterator[tuple[Path, str | None]]:
    """Each file named, and each audio file under each folder named (sorted), with the reason
    it cannot be used (None when it may be); found with stat alone, so no FIFO or device
    is opened."""
    for path in map(Path, paths):
        problem = input_problem(path, missing="no such file or folder")
        if problem != FOLDER:
            yield path, problem
            continue
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        checked = [(p, input_problem(p)) for p in found]
        usable = [(p, why) for p, why in checked if why != FOLDER]  # folders are searched too
        if not usable:
            yield path, f"folder holds no {'/'.join(s[1:] for s in AUDIO_SUFFIXES)} files"
        yield from usable


def load_model(
    model: str | Path | None = None, threads: int | None = None, fast: bool = False
) -> Tagger:
    """A Tagger from a shipped model's name (None: the default one; run by onnxruntime),
    a model file (.pt, run by PyTorch) or an exported .onnx file (run by onnxruntime,
    torch not imported). `threads`: CPU threads (default: the library's).

    `fast`: pool every window from frames computed once over the file even where the
    model's receptive field makes that differ from evaluation's lone windows (about twice
    as fast for the zoo's default front end; see Geometry, and docs/prediction.md for the
    measured change).
    """
    path = resolve(model, "onnx")
    engine: Engine
    if path.suffix.lower() == ".onnx":
        engine = OnnxEngine.from_file(path, threads)
    else:
        from instrec.tagging.torch_engine import TorchEngine

        engine = TorchEngine.from_file(path, threads)
    if fast:
        engine.geometry = dataclasses.replace(engine.geometry, pooled=True)
    return Tagger(engine)


def _loudness_normalized_blocks(path: Path) -> tuple[Iterable[np.ndarray], int]:
    """The file at -12 LUFS as 16 kHz blocks, and its length in samples.

    Loudness needs the whole file before the first window can be scaled: the file is
    decoded once to measure it, its blocks kept while they fit in HOLD_SECONDS; a longer
    file is decoded a second time, block by block, so memory does not grow with length.
    """
    limit = HOLD_SECONDS * SAMPLE_RATE
    meter, held = LoudnessMeter(SAMPLE_RATE), []
    for block in stream_audio(path):
        meter.add(block)
        if meter.samples <= limit:
            held.append(block)
        else:
            held = []  # too long to hold: decoded again below
    gain = audible_gain(meter.loudness(), path)
    blocks = held if meter.samples <= limit else stream_audio(path)
    return (block * gain for block in blocks), meter.samples


def _stamp(path: Path) -> tuple[int, int] | None:
    """Size and modification time: a file whose stamp moves was written while it was read."""
    try:
        status = os.stat(path)
    except (OSError, ValueError):  # gone, or a name no file can have: decoding says why
        return None
    return status.st_size, status.st_mtime_ns


def _array_to_mono(audio: np.ndarray, sr: int) -> np.ndarray:
    """(samples,) or 2-D multi-channel (shorter axis = channels) -> 16 kHz mono float32."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=int(np.argmin(x.shape)))
    if x.ndim != 1 or x.size == 0:
        raise AudioError("<array>", f"expected 1-D or 2-D non-empty audio, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise AudioError("<array>", "contains NaN or infinite samples")
    return resample(x, sr, SAMPLE_RATE)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)  # overflow-free logistic


def _choose(
    classes: Sequence[str], probabilities: np.ndarray, threshold: float, top_k: int | None
) -> list[str]:
    """Codes with probability >= threshold, most probable first, at most top_k."""
    order = [i for i in np.argsort(-probabilities, kind="stable") if probabilities[i] >= threshold]
    return [classes[i] for i in order[:top_k]]
