"""The tagging graph in PyTorch: run it for `instrec predict`, export it to ONNX, verify it.

`WindowTagger` is what both engines run on each chunk of audio: the convolutional body
over the chunk, then LDE pooling and the head on the frames of every 1 s window (some
frames carried over from the previous chunk). `instrec export MODEL --onnx out.onnx`
writes that graph with the class list, threshold and frame geometry in the ONNX
metadata_props, so `instrec predict out.onnx ...` runs on onnxruntime without torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from instrec.atomic import atomic_path, refuse_to_overwrite
from instrec.audio import SAMPLE_RATE, load_audio, normalize_loudness
from instrec.errors import InstrecError
from instrec.model.io import load_model_file
from instrec.model.zoo import Recognizer
from instrec.predict import (
    CHUNK_SECONDS,
    METADATA_PREFIX,
    POOLING_MAX_RADIUS,
    Geometry,
    OnnxEngine,
    window_logits,
)

OPSET = 17
TOLERANCE = 1e-3  # max |logit difference| an export may show against PyTorch
MARGIN_SHARE = 0.05  # most the two margins of a chunk may add to the frames it computes


class WindowTagger(nn.Module):
    """(wave, carried frames, window index) -> (window logits, frames of the wave).

    wave (batch, samples) at 16 kHz: one chunk, or a batch of lone windows; carry
    (carried, 128) frames from earlier chunks; index (windows, window_frames) rows into
    concat(carry, frames of every wave row). Returns logits (windows, classes) and the
    frames (batch * ceil(samples / samples_per_frame), 128).
    """

    def __init__(self, model: Recognizer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, wave: torch.Tensor, carry: torch.Tensor, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self.model.frame_features(wave).flatten(0, 1)  # (batch * frames, dim)
        available = torch.cat([carry, frames])  # (carried + frames, dim)
        windows = available[index]  # (windows, window_frames, dim)
        return self.model.head(self.model.pool(windows)), frames


class TorchEngine:
    """Runs a WindowTagger in PyTorch (eval mode, no autograd) on NumPy chunks."""

    def __init__(
        self, model: Recognizer, classes: tuple[str, ...], threshold: float, geometry: Geometry
    ) -> None:
        # channels-last convolutions run ~1.6x faster on CPU (oneDNN); results are unchanged
        self.graph = WindowTagger(model.to(memory_format=torch.channels_last)).eval()  # type: ignore[call-overload]
        self.classes = classes
        self.threshold = threshold
        self.geometry = geometry
        self.frame_dim = model.body.out_channels

    @classmethod
    def from_model(
        cls, model: Recognizer, classes: tuple[str, ...], threshold: float
    ) -> TorchEngine:
        return cls(model.eval(), classes, threshold, geometry_of(model))

    @classmethod
    def from_file(cls, path: str | Path, threads: int | None = None) -> TorchEngine:
        if threads:
            torch.set_num_threads(threads)
        model_file = load_model_file(path)
        return cls.from_model(model_file.model, model_file.classes, model_file.threshold)

    def run(
        self, wave: np.ndarray, carry: np.ndarray, index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            logits, frames = self.graph(
                torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(carry, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(index, dtype=np.int64)),
            )
        return logits.numpy(), frames.numpy()


def geometry_of(model: Recognizer, chunk_seconds: float = CHUNK_SECONDS) -> Geometry:
    """Frame geometry of `model`: its frame size, a chunk margin wider than its receptive
    field (so chunked frames equal whole-file frames), `chunk_seconds` per pass or more
    where the margins would otherwise add over MARGIN_SHARE to the work, and whether its
    field is narrow enough to pool windows from shared frames by default."""
    spf, radius = model.samples_per_frame, receptive_radius(model)
    margin = math.ceil(radius / spf) + 2
    return Geometry(
        samples_per_frame=spf,
        margin_frames=margin,
        chunk_frames=max(
            math.ceil(chunk_seconds * SAMPLE_RATE / spf), round(2 * margin / MARGIN_SHARE)
        ),
        pooled=radius <= POOLING_MAX_RADIUS,
    )


def receptive_radius(model: Recognizer) -> int:
    """Samples either side of a frame's centre that can change it, measured.

    The gradient of one frame's features with respect to the input is non-zero exactly on
    the samples it sees. Measured on a slim copy (quarter width, 16 sinc filters) with random
    weights: the receptive field in time depends on kernels and strides only.
    """
    slim = Recognizer(
        dataclasses.replace(
            model.config, width_multiplier=model.config.width_multiplier / 4, sinc_filters=16
        )
    ).eval()
    spf = model.samples_per_frame
    frames = 32
    generator = torch.Generator().manual_seed(0)
    while True:
        wave = torch.randn(1, frames * spf, generator=generator, requires_grad=True)
        slim.frame_features(wave)[0, frames // 2].sum().backward()
        assert wave.grad is not None
        seen = torch.nonzero(wave.grad[0]).flatten()
        centre = (frames // 2) * spf
        radius = int(max(centre - seen.min(), seen.max() - centre))
        if seen.min() > 0 and seen.max() < wave.shape[1] - 1:
            return radius
        frames *= 2  # the field reached an end of the probe: it may be wider


# ---- export ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """Max |ONNX - PyTorch| logit difference per verification input (name -> value)."""

    path: Path
    differences: dict[str, float]


def export_onnx(
    model_path: str | Path,
    onnx_path: str | Path,
    audio: list[Path] | tuple[Path, ...] = (),
    overwrite: bool = False,
) -> ExportReport:
    """Export a model file's tagging graph to ONNX and verify it against PyTorch.

    Verified on random input (noise, random carried frames and windows) and on `audio`
    files (or, without any, a synthetic chord) through the whole chunked predict path.
    The file is written atomically; an export that differs by more than TOLERANCE in any
    logit is not kept.
    """
    onnx_path = Path(onnx_path)
    refuse_to_overwrite(onnx_path, overwrite)
    model_file = load_model_file(model_path)
    torch_engine = TorchEngine.from_model(
        model_file.model, model_file.classes, model_file.threshold
    )
    with atomic_path(onnx_path, suffix=".onnx") as temp:
        _write_onnx(torch_engine, temp, _metadata(torch_engine, model_file.meta, model_path))
        differences = verify(torch_engine, OnnxEngine.from_file(temp), audio)
        worst = max(differences.values())
        if worst > TOLERANCE:
            raise InstrecError(
                f"{onnx_path}: export differs from PyTorch by {worst:.2e} in a logit "
                f"(tolerance {TOLERANCE:g}); not written"
            )
    return ExportReport(onnx_path, differences)


def _write_onnx(engine: TorchEngine, path: Path, metadata: dict[str, str]) -> None:
    """Trace the WindowTagger with dynamic lengths, then store `metadata` in metadata_props."""
    import onnx

    g = engine.geometry
    example = (
        torch.zeros(2, 4 * SAMPLE_RATE),
        torch.zeros(3, engine.frame_dim),
        torch.zeros(2, g.window_frames, dtype=torch.int64),
    )
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no
        warnings.simplefilter("ignore", DeprecationWarning)  # onnxscript (not a dependency)
        torch.onnx.export(
            engine.graph,
            example,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["wave", "carry", "index"],
            output_names=["logits", "frames"],
            dynamic_axes={
                "wave": {0: "batch", 1: "samples"},
                "carry": {0: "carried"},
                "index": {0: "windows"},
                "logits": {0: "windows"},
                "frames": {0: "frames"},
            },
        )
    graph = onnx.load(str(path))
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))


def _metadata(engine: TorchEngine, meta: dict[str, Any], source: str | Path) -> dict[str, str]:
    """What OnnxEngine needs to tag without the model file, as metadata_props strings."""
    model = engine.graph.model
    values: dict[str, Any] = {
        "classes": list(engine.classes),
        "threshold": engine.threshold,
        "geometry": dataclasses.asdict(engine.geometry),
        "frame_dim": engine.frame_dim,
        "sample_rate": SAMPLE_RATE,
        "config": dataclasses.asdict(model.config),
        "meta": meta,
        "source": Path(source).name,
    }
    return {f"{METADATA_PREFIX}{key}": json.dumps(value) for key, value in values.items()}


def verify(torch_engine: TorchEngine, onnx_engine: OnnxEngine, audio: Any = ()) -> dict[str, float]:
    """Max |ONNX - PyTorch| over logits (and frames, for the random input), per input."""
    rng = np.random.default_rng(0)
    g = torch_engine.geometry
    wave = rng.standard_normal((2, 3 * SAMPLE_RATE)).astype(np.float32) * 0.1  # 2 chunks
    carry = rng.standard_normal((5, torch_engine.frame_dim)).astype(np.float32)
    index = rng.integers(0, 5 + 2 * g.frames_for(wave.shape[1]), (4, g.window_frames))
    expected, onnx_result = (
        torch_engine.run(wave, carry, index),
        onnx_engine.run(wave, carry, index),
    )
    differences = {
        "random": max(
            float(np.abs(a - b).max()) for a, b in zip(expected, onnx_result, strict=True)
        )
    }
    signals = {str(p): normalize_loudness(load_audio(p)) for p in audio} or {"chord": _chord()}
    for name, x in signals.items():
        x = np.pad(x, (0, max(0, SAMPLE_RATE - x.size)))
        reference, _ = window_logits(torch_engine, x)
        exported, _ = window_logits(onnx_engine, x)
        differences[name] = float(np.abs(reference - exported).max())
    return differences


def _chord(seconds: float = 12.0) -> np.ndarray:
    """A -12 LUFS A-major chord of decaying harmonic tones (Hz: 220, 277, 330), 16 kHz."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tones = [
        np.exp(-2 * (t % 1.0)) * np.sin(2 * np.pi * h * f0 * t) / h
        for f0 in (220.0, 277.18, 329.63)
        for h in range(1, 6)
    ]
    return normalize_loudness(np.sum(tones, axis=0).astype(np.float32))


# ---- `instrec export` --------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("model", type=Path, help="model file (.pt) written by training")
    parser.add_argument(
        "--onnx", type=Path, required=True, help="where to write the ONNX graph (.onnx)"
    )
    parser.add_argument(
        "--audio",
        type=Path,
        nargs="*",
        default=[],
        help="audio files to verify the export on; none: a synthetic chord",
    )
    parser.add_argument(
        "--int8",
        type=Path,
        nargs="+",
        metavar="AUDIO",
        help="write an int8 graph instead, calibrated on these audio files or folders (a "
        "few minutes of music like the music to tag); prints how far it moves file "
        "probabilities from fp32, measured on --audio (or on the calibration files)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --onnx file")


def run(args: argparse.Namespace) -> int:
    if args.int8:
        from instrec.quantize import export_int8

        int8 = export_int8(args.model, args.onnx, args.int8, args.audio, args.overwrite)
        where = "held-out" if args.audio else "calibration (in-sample: pass --audio for held-out)"
        print(
            f"int8 against fp32 on {len(int8.measured_on)} {where} files: file probabilities "
            f"move {int8.mean_change:.4f} on average, {int8.max_change:.3f} at most; "
            f"{int8.flipped:.1%} of decisions flip ({int8.calibration_windows} calibration "
            "windows)",
            file=sys.stderr,
        )
        print(f"wrote {int8.path}")
        return 0
    report = export_onnx(args.model, args.onnx, args.audio, args.overwrite)
    for name, difference in report.differences.items():
        print(f"max |onnx - torch| logit, {name}: {difference:.2e}", file=sys.stderr)
    print(f"wrote {report.path}")
    return 0
