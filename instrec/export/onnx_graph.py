"""Export a model's tagging graph to ONNX and verify it against PyTorch.

`export_onnx` writes the WindowTagger (instrec.model.window_graph) with the class list,
threshold and frame geometry in the ONNX metadata_props, so `instrec predict out.onnx ...`
runs on onnxruntime without torch. An export that differs from PyTorch by more than
TOLERANCE in any logit is not kept.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instrec.atomic import atomic_path, refuse_to_overwrite, writing
from instrec.audio import SAMPLE_RATE, load_audio, normalize_loudness
from instrec.errors import InstrecError
from instrec.model.io import load_model_file
from instrec.tagging.onnx_engine import METADATA_PREFIX, OnnxEngine
from instrec.tagging.torch_engine import TorchEngine
from instrec.tagging.windows import window_logits

OPSET = 17
TOLERANCE = 1e-3  # max |logit difference| an export may show against PyTorch


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
    with writing(onnx_path), atomic_path(onnx_path, suffix=".onnx") as temp:
        _write_onnx(torch_engine, temp, _metadata(torch_engine, model_file.meta, model_path))
        differences = verify(torch_engine, OnnxEngine.from_file(temp), audio)
        failed = {name: d for name, d in differences.items() if not d <= TOLERANCE}  # NaN too
        if failed:
            name, worst = max(failed.items(), key=lambda item: np.nan_to_num(item[1], nan=np.inf))
            what = (
                f"differs from PyTorch by {worst:.2e} in a logit"
                if np.isfinite(worst)
                else "gives NaN or infinite logits"
            )
            raise InstrecError(
                f"{onnx_path}: export {what} on {name} (tolerance {TOLERANCE:g}); not written"
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
