"""`instrec predict`: audio files or folders -> the instruments that lead them.

The user-facing twin of whisper's transcribe.py. A file goes through the one audio path
(instrec.audio: 16 kHz mono, -12 LUFS, as the IRMAS data), is cut into 1 s windows with
50 % overlap (as in evaluation), and the window logits are averaged per file; the sigmoid
of that average is the file's probability per class.

Files are decoded block by block: a first pass measures their loudness and keeps the
blocks of files up to HOLD_SECONDS; a longer file is decoded again while it is tagged, so
memory does not grow with length. Windows are computed one of two ways (see Geometry):
each window alone through the whole network, in batches, exactly as evaluation does; or,
for models whose receptive field is narrow (or with `fast`), the convolutional body once
over long chunks (with margins wider than its receptive field, so chunk edges change
nothing) and every window LDE-pooled from the frames it covers, frames needed by windows
that straddle a chunk boundary being carried to the next chunk. Two engines run that graph:
a saved PyTorch model file, or an exported .onnx file on onnxruntime (no torch imported).
Neither imports the training stack.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from instrec.atomic import atomic_path, refuse_to_overwrite
from instrec.audio import (
    SAMPLE_RATE,
    LoudnessMeter,
    at_audible_level,
    audible_gain,
    resample,
    stream_audio,
    window_starts,
)
from instrec.errors import AudioError, InstrecError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
WINDOW = SAMPLE_RATE  # samples: 1 s windows, as in training and evaluation
HOP = WINDOW // 2  # samples: 50 % overlap
CHUNK_SECONDS = 10.0  # s of audio per body pass at least: bounds memory (~0.5 GB, resnet34)
HOLD_SECONDS = 600.0  # s of decoded audio kept between measuring and tagging (38 MB);
# longer files are decoded twice instead, so memory stays bounded whatever their length
SKIPPED_EXIT_CODE = 3  # `instrec predict` exit status when some input was skipped
METADATA_PREFIX = "instrec."  # ONNX metadata_props keys written by instrec export


POOLING_MAX_RADIUS = WINDOW // 10  # samples: widest receptive field for pooled frames
WINDOW_BATCH = 16  # windows per network call when windows run alone


@dataclass(frozen=True)
class Geometry:
    """How frames relate to samples for one network (all counts in samples or frames).

    `pooled`: the body runs once over long chunks and each window is pooled from its frames.
    That changes a window's result only where its edge frames now see the neighbouring audio
    instead of zero padding, which is small while the receptive field is narrow next to the
    window (radius <= POOLING_MAX_RADIUS, 0.1 s; a 0.04 s field moved file probabilities of a
    trained model by 0.03). A wider field (e.g. a 1536-sample sinc stride: 0.7-1.4 s) makes
    every frame of a lone window see padding, so such models run each window alone, exactly
    as evaluation does, in batches of WINDOW_BATCH, unless the user asks for `fast`.
    """

    samples_per_frame: int  # input samples per body output frame
    margin_frames: int  # context each side of a chunk that hides its edges (> receptive field)
    chunk_frames: int  # frames produced per body pass, margins excluded
    pooled: bool = True

    def frames_for(self, samples: int) -> int:
        """Frames the body makes of `samples` ('same' padding: ceil)."""
        return -(-samples // self.samples_per_frame)

    @property
    def window_frames(self) -> int:
        """Frames of one 1 s window, as the network sees a lone window."""
        return self.frames_for(WINDOW)


class Engine(Protocol):
    """Runs the tagging graph on one chunk (see instrec.export.WindowTagger)."""

    classes: tuple[str, ...]
    threshold: float  # on sigmoid probability
    geometry: Geometry
    frame_dim: int  # features per frame (128)

    def run(
        self, wave: np.ndarray, carry: np.ndarray, index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """wave (batch, samples), carried frames (carried, dim), index (windows,
        window_frames) into concat(carry, frames of every wave row) -> logits
        (windows, classes), frames (batch * frames, dim)."""
        ...


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
        (or array) raises AudioError; audio shorter than 1 s is zero-padded and flagged
        `padded`.
        """
        if isinstance(audio, str | Path):
            name, (blocks, total) = str(audio), _loudness_normalized_blocks(Path(audio))
        else:
            name, x = "<array>", _array_to_mono(audio, sr or SAMPLE_RATE)
            blocks, total = [at_audible_level(x, name)], x.size
        duration, padded = total / SAMPLE_RATE, total < WINDOW
        if padded:
            blocks, total = [np.pad(np.concatenate(list(blocks)), (0, WINDOW - total))], WINDOW
        reader = SampleReader(blocks, total, name)
        logits, starts = window_logits(self.engine, reader)  # (windows, classes), (windows,)
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
    it cannot be used (None when it may be)."""
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
            )
            if not found:
                yield path, f"folder holds no {'/'.join(s[1:] for s in AUDIO_SUFFIXES)} files"
            yield from ((p, None) for p in found)
        else:
            yield path, None if path.is_file() else "no such file or folder"


def load_model(path: str | Path, threads: int | None = None, fast: bool = False) -> Tagger:
    """A Tagger from a model file (.pt, run by PyTorch) or an exported .onnx file
    (run by onnxruntime, torch not imported). `threads`: CPU threads (default: library's).

    `fast`: pool every window from frames computed once over the file even where the
    model's receptive field makes that differ from evaluation's lone windows (about twice
    as fast for the zoo's default front end; see Geometry and the README's measured change).
    """
    path = Path(path)
    engine: Engine
    if path.suffix.lower() == ".onnx":
        engine = OnnxEngine.from_file(path, threads)
    else:
        from instrec.export import TorchEngine

        engine = TorchEngine.from_file(path, threads)
    if fast:
        engine.geometry = dataclasses.replace(engine.geometry, pooled=True)
    return Tagger(engine)


class OnnxEngine:
    """Runs an exported WindowTagger (instrec export) on onnxruntime; imports no torch."""

    def __init__(self, session: Any, source: str | Path) -> None:
        props = session.get_modelmeta().custom_metadata_map
        try:
            values = {
                key[len(METADATA_PREFIX) :]: json.loads(value)
                for key, value in props.items()
                if key.startswith(METADATA_PREFIX)
            }
            self.classes = tuple(str(c) for c in values["classes"])
            self.threshold = float(values["threshold"])
            self.geometry = Geometry(**values["geometry"])
            self.frame_dim = int(values["frame_dim"])
        except (KeyError, TypeError, ValueError) as error:
            raise InstrecError(
                f"{source}: not an ONNX file written by instrec export ({error})"
            ) from None
        self.session = session

    @classmethod
    def from_file(cls, path: str | Path, threads: int | None = None) -> OnnxEngine:
        import onnxruntime

        if not Path(path).is_file():
            raise InstrecError(f"{path}: no such ONNX file")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise InstrecError(f"{path}: not a readable ONNX file ({error})") from None
        return cls(session, path)

    def run(
        self, wave: np.ndarray, carry: np.ndarray, index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        feeds = {
            "wave": np.ascontiguousarray(wave, dtype=np.float32),
            "carry": np.ascontiguousarray(carry, dtype=np.float32),
            "index": np.ascontiguousarray(index, dtype=np.int64),
        }
        logits, frames = self.session.run(["logits", "frames"], feeds)
        return logits, frames


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


class SampleReader:
    """Samples [start, end) of a signal arriving as consecutive blocks, for readers whose
    `start` never moves back: what lies before the latest start is let go, so a file of
    any length costs about one chunk of memory."""

    def __init__(self, blocks: Iterable[np.ndarray], total: int, name: str = "<array>") -> None:
        self.total = total  # samples the blocks add up to
        self.name = name  # for errors
        self._blocks = iter(blocks)
        self._buffer = np.zeros(0, np.float32)
        self._offset = 0  # signal index of _buffer[0]

    def read(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end) (end clipped to the signal's length) as float32."""
        if start < self._offset:
            raise ValueError(f"SampleReader cannot go back to {start} (at {self._offset})")
        end = min(end, self.total)
        drop = min(start - self._offset, self._buffer.size)
        pieces, offset = [self._buffer[drop:]], self._offset + drop
        have = offset + pieces[0].size
        while have < end:
            block = next(self._blocks, None)
            if block is None:
                raise AudioError(self.name, f"ended at sample {have} of {self.total}")
            pieces.append(block.astype(np.float32, copy=False))
            have += block.size
        self._buffer = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        self._offset = offset
        return self._buffer[start - offset : end - offset]


def window_logits(
    engine: Engine, signal: np.ndarray | SampleReader
) -> tuple[np.ndarray, np.ndarray]:
    """(windows, classes) logits of each 1 s window of a 16 kHz signal of >= 1 s, and the
    windows' start samples (evaluation's grid: hop 0.5 s, last window flush with the end)."""
    reader = SampleReader([signal], signal.size) if isinstance(signal, np.ndarray) else signal
    starts = window_starts(reader.total, WINDOW, HOP)
    if engine.geometry.pooled:
        return _pooled_logits(engine, reader, starts), starts
    return _lone_window_logits(engine, reader, starts), starts


def _lone_window_logits(engine: Engine, reader: SampleReader, starts: np.ndarray) -> np.ndarray:
    """Each window through the whole network on its own, WINDOW_BATCH at a time."""
    frames = engine.geometry.window_frames
    no_carry = np.zeros((0, engine.frame_dim), np.float32)
    results = []
    for i in range(0, starts.size, WINDOW_BATCH):
        first, last = starts[i], starts[i : i + WINDOW_BATCH][-1]
        span = reader.read(first, last + WINDOW)  # samples of this batch's windows
        batch = np.stack(
            [span[s - first : s - first + WINDOW] for s in starts[i : i + WINDOW_BATCH]]
        )
        index = np.arange(len(batch) * frames).reshape(len(batch), frames)  # window b's frames
        results.append(engine.run(batch, no_carry, index)[0])
    return np.concatenate(results)


def _pooled_logits(engine: Engine, reader: SampleReader, starts: np.ndarray) -> np.ndarray:
    """The body over chunks of `chunk_frames` frames plus `margin_frames` each side; a
    window is pooled from the frames starting nearest its start sample as soon as its
    last frame exists, so memory stays constant however long the file is."""
    g = engine.geometry
    total = g.frames_for(reader.total)
    first = np.round(starts / g.samples_per_frame).astype(np.int64)
    first = np.minimum(first, total - g.window_frames)  # each window's first frame
    ends = first + g.window_frames
    span = np.arange(g.window_frames)
    carry = np.zeros((0, engine.frame_dim), np.float32)  # frames [carry_start, core_start)
    carry_start, done, results = 0, 0, []
    for core_start in range(0, total, g.chunk_frames):
        core_end = min(core_start + g.chunk_frames, total)
        in_start = max(0, core_start - g.margin_frames)  # frames
        in_end = (core_end + g.margin_frames) * g.samples_per_frame  # samples
        wave = reader.read(in_start * g.samples_per_frame, in_end)[None]  # (1, samples)
        ready = int(np.searchsorted(ends, core_end, side="right"))  # windows complete so far
        wanted = first[done:ready, None] + span  # (windows, window_frames) frame numbers
        index = np.where(wanted < core_start, wanted - carry_start, len(carry) + wanted - in_start)
        logits, frames = engine.run(wave, carry, index)  # (windows, classes), (frames, dim)
        results.append(logits)
        keep_from = min(int(first[ready]), core_end) if ready < first.size else core_end
        kept = np.concatenate([carry, frames[core_start - in_start : core_end - in_start]])
        carry, carry_start, done = kept[keep_from - carry_start :], keep_from, ready
    return np.concatenate(results)


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


# ---- output formats ------------------------------------------------------------------------


def format_table(predictions: Sequence[Prediction], threshold: float) -> str:
    """One readable line per file: its length and its instruments with probabilities."""
    width = max([len(p.path) for p in predictions] + [4])
    lines = [f"{'file':<{width}}  {'length':>8}  instruments (probability >= {threshold:.2f})"]
    for p in predictions:
        if p.error is not None:
            lines.append(f"{p.path:<{width}}  {'-':>8}  skipped: {p.error}")
            continue
        length = f"{p.duration_s:.1f} s" + ("*" if p.padded else "")
        if p.instruments:
            found = ", ".join(f"{_name(c)} {p.probabilities[c]:.2f}" for c in p.instruments)
        else:
            best = max(p.probabilities, key=p.probabilities.__getitem__)
            found = f"none (most probable: {_name(best)} {p.probabilities[best]:.2f})"
        lines.append(f"{p.path:<{width}}  {length:>8}  {found}")
    if any(p.padded for p in predictions):
        lines.append("* shorter than 1 s: zero-padded to one window")
    return "\n".join(lines) + "\n"


def format_json(predictions: Sequence[Prediction], timeline: bool = False) -> str:
    """A JSON list, one object per file (see Prediction.as_dict)."""
    return json.dumps([p.as_dict(timeline) for p in predictions], indent=2) + "\n"


def format_csv(predictions: Sequence[Prediction], classes: Sequence[str]) -> str:
    """One row per file: path, error, duration_s, padded, instruments (space-separated),
    then one probability column per class."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "error", "duration_s", "padded", "instruments", *classes])
    for p in predictions:
        probabilities = [p.probabilities.get(c, "") for c in classes]
        duration = "" if p.duration_s is None else p.duration_s
        writer.writerow(
            [
                p.path,
                p.error or "",
                duration,
                int(p.padded),
                " ".join(p.instruments),
                *probabilities,
            ]
        )
    return out.getvalue()


def timeline_csv(prediction: Prediction, classes: Sequence[str]) -> str:
    """Per-window probabilities of one file: start_s, end_s, then one column per class."""
    assert prediction.window_starts_s is not None and prediction.window_probabilities is not None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["start_s", "end_s", *classes])
    for start, row in zip(prediction.window_starts_s, prediction.window_probabilities, strict=True):
        end = start + WINDOW / SAMPLE_RATE
        writer.writerow([f"{start:.3f}", f"{end:.3f}", *(f"{v:.4f}" for v in row)])
    return out.getvalue()


def _name(code: str) -> str:
    from instrec.labels import IRMAS_NAMES

    return IRMAS_NAMES.get(code, code)


# ---- `instrec predict` ---------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("model", type=Path, help="model file (.pt) or exported .onnx file")
    parser.add_argument(
        "paths", type=Path, nargs="+", metavar="PATH", help="audio files or folders (recursive)"
    )
    parser.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="output format"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="probability an instrument needs; None: the one saved with the model",
    )
    parser.add_argument(
        "--top-k", type=int, default=None, help="report at most this many instruments per file"
    )
    parser.add_argument(
        "--timeline",
        type=Path,
        default=None,
        metavar="DIR",
        help="write per-window probabilities (CSV) and an activity plot (PNG) per file here",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="write the report to this file, not stdout"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing --output / --timeline files"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads; None: what the library chooses"
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="run the network once over each file and pool every window from those frames "
        "(about 2x faster for wide receptive fields; window edges then see the neighbouring "
        "audio instead of evaluation's zero padding, which moves probabilities a little: "
        "see the README)",
    )


def run(args: argparse.Namespace) -> int:
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise InstrecError(f"--threshold must be within 0..1, got {args.threshold}")
    if args.top_k is not None and args.top_k < 1:
        raise InstrecError(f"--top-k must be at least 1, got {args.top_k}")
    if args.output is not None:
        refuse_to_overwrite(args.output, args.overwrite)
    tagger = load_model(args.model, args.threads, args.fast)
    threshold = tagger.threshold if args.threshold is None else args.threshold
    plots = _timeline_paths(args.paths, args.timeline, args.overwrite) if args.timeline else {}
    predictions = []
    for p in _progress(tagger.predict_files(args.paths, threshold, args.top_k)):
        predictions.append(p)
        if p.error is not None:
            print(f"instrec predict: skipped {p.path}: {p.error}", file=sys.stderr)
        elif p.padded:
            print(
                f"instrec predict: {p.path}: {p.duration_s} s long, padded to 1 s", file=sys.stderr
            )
        if p.error is None and args.timeline:
            _write_timeline(p, tagger, threshold, plots[p.path])
    if args.format == "json":
        text = format_json(predictions, timeline=args.timeline is not None)
    elif args.format == "csv":
        text = format_csv(predictions, tagger.classes)
    else:
        text = format_table(predictions, threshold)
    if args.output is None:
        sys.stdout.write(text)
    else:
        with atomic_path(args.output) as temp:
            temp.write_text(text, encoding="utf-8")
    skipped = sum(p.error is not None for p in predictions)
    if skipped:
        print(f"instrec predict: skipped {skipped} of {len(predictions)} inputs", file=sys.stderr)
        return SKIPPED_EXIT_CODE
    return 0


def _progress(predictions: Iterator[Prediction]) -> Iterator[Prediction]:
    from tqdm import tqdm

    return iter(tqdm(predictions, desc="tagging", unit="file", disable=None, leave=False))


def _timeline_paths(
    paths: Sequence[Path], folder: Path, overwrite: bool
) -> dict[str, tuple[Path, Path]]:
    """A distinct (DIR/<stem>.csv, DIR/<stem>.png) per audio file (song, song-2, ...);
    refuses to overwrite."""
    stems: dict[str, tuple[Path, Path]] = {}
    taken: set[str] = set()
    for path, problem in find_audio(paths):
        if problem is not None:
            continue
        stem, n = path.stem, 1
        while stem in taken:
            n += 1
            stem = f"{path.stem}-{n}"
        taken.add(stem)
        stems[str(path)] = (folder / f"{stem}.csv", folder / f"{stem}.png")
        for existing in stems[str(path)]:
            refuse_to_overwrite(existing, overwrite)
    return stems


def _write_timeline(
    prediction: Prediction, tagger: Tagger, threshold: float, paths: tuple[Path, Path]
) -> None:
    from instrec.timeline import timeline_figure

    table, plot = paths
    with atomic_path(table) as temp:
        temp.write_text(timeline_csv(prediction, tagger.classes), encoding="utf-8")
    figure = timeline_figure(prediction, tagger.classes, threshold)
    with atomic_path(plot) as temp:
        figure.savefig(temp, format="png", dpi=120, bbox_inches="tight")
