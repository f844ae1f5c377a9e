"""int8 ONNX graphs: `instrec export MODEL --onnx OUT --int8 AUDIO...`.

The residual body's convolutions (nearly all of the compute) run in int8: weights per
output channel, activations scaled from their distribution on calibration windows. What
stays fp32, and why:
  - the sinc convolution (its kernels are computed from the band edges at run time) and
    any convolution with one input channel (the stem, which sees the raw filterbank's wide
    range and costs little),
  - LDE pooling and the head (int8 distances to the codewords moved file probabilities
    by up to 0.9 on a trained model, in a trial that was not kept).
Weights use 7 of their 8 bits: x86 CPUs without VNNI multiply u8 x s8 pairs into int16
sums that saturate at full range. Activation ranges are the 0.01-99.99 percentiles of the
calibration activations, not their extremes: on the small preset's random-init model that
cut the mean change of file probabilities 3x against 99.999 %
(benchmarks/results/fast_predict_accuracy.txt) and about 2x against min-max calibration
on the pre-trained one (a trial that was not kept).

int8 changes the output, so the export reports how much: the largest and mean change of
file probabilities against the fp32 graph, and the share of file x class decisions that
flip at the model's threshold.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from instrec.atomic import atomic_path, refuse_to_overwrite, writing
from instrec.audio import load_normalized, windows
from instrec.errors import AudioError, InstrecError
from instrec.export.onnx_graph import export_onnx
from instrec.tagging.onnx_engine import OnnxEngine
from instrec.tagging.tagger import Tagger, find_audio

CALIBRATION_FILES = 64  # at most, drawn at random from the calibration audio
CALIBRATION_WINDOWS = 256  # 1 s windows at most
BATCH_WINDOWS = 32
QUANTIZED_OPS = ["Conv"]
PERCENTILE = 99.99  # chosen among 99.9-99.999 on the small preset's two models


@dataclasses.dataclass(frozen=True)
class Int8Report:
    """What an int8 export did and how far it moved the output from the fp32 graph."""

    path: Path
    calibration_windows: int
    measured_on: tuple[Path, ...]  # files the change was measured on
    max_change: float  # largest |p_int8 - p_fp32| over files x classes
    mean_change: float
    flipped: float  # share of file x class decisions that differ at the threshold


def export_int8(
    model_path: str | Path,
    onnx_path: str | Path,
    calibration: Sequence[Path],
    audio: Sequence[Path] = (),
    overwrite: bool = False,
    seed: int = 0,
) -> Int8Report:
    """Export a model file to an int8 ONNX graph calibrated on `calibration` (files or
    folders), and measure its change against fp32 on `audio` (or, without any, on the
    calibration files: in-sample, so an optimistic figure). Written atomically."""
    onnx_path = Path(onnx_path)
    refuse_to_overwrite(onnx_path, overwrite)
    chosen = calibration_files(calibration, seed)
    with tempfile.TemporaryDirectory(prefix="instrec-int8-") as folder:
        fp32_path = Path(folder) / "fp32.onnx"
        export_onnx(model_path, fp32_path, list(audio))
        engine = OnnxEngine.from_file(fp32_path)
        fp32 = Tagger(engine)
        batches = calibration_windows(chosen, seed)
        with writing(onnx_path), atomic_path(onnx_path, suffix=".onnx") as temp:
            quantize_onnx(fp32_path, temp, _Windows(batches, engine))
            measured = tuple(audio) or tuple(chosen)
            change = probability_change(fp32, Tagger(OnnxEngine.from_file(temp)), measured)
    return Int8Report(onnx_path, sum(len(b) for b in batches), measured, *change)


def calibration_files(paths: Sequence[Path], seed: int = 0) -> list[Path]:
    """Up to CALIBRATION_FILES usable audio files under `paths`, drawn at random; a path
    that cannot be used is named on stderr and skipped."""
    found = []
    for path, reason in find_audio(paths):
        if reason is None:
            found.append(path)
        else:
            print(f"skipped {path}: {reason}", file=sys.stderr)
    if not found:
        raise InstrecError(f"no calibration audio in {', '.join(map(str, paths)) or '(none)'}")
    rng = np.random.default_rng(seed)
    keep = rng.choice(len(found), min(len(found), CALIBRATION_FILES), replace=False)
    return [found[i] for i in sorted(keep)]


def calibration_windows(files: Sequence[Path], seed: int = 0) -> list[np.ndarray]:
    """Equal batches of 1 s windows at the models' level, as evaluation cuts them: up to
    CALIBRATION_WINDOWS drawn at random from the files' windows (a whole number of
    BATCH_WINDOWS when there are more). Unreadable or silent files are named on stderr
    and skipped."""
    cut = []
    for path in files:
        try:
            cut.append(windows(load_normalized(path)))  # (windows, samples)
        except AudioError as error:
            print(f"skipped {error}", file=sys.stderr)
    if not cut:
        raise InstrecError("none of the calibration files could be read (see above)")
    every = np.concatenate(cut)
    count = min(len(every), CALIBRATION_WINDOWS)
    if count > BATCH_WINDOWS:  # whole batches: the percentile calibrator stacks them
        count -= count % BATCH_WINDOWS
    rng = np.random.default_rng(seed)
    picked = every[np.sort(rng.choice(len(every), count, replace=False))]
    return [picked[i : i + BATCH_WINDOWS] for i in range(0, count, BATCH_WINDOWS)]


def quantize_onnx(fp32_path: Path, int8_path: Path, calibration: _Windows) -> None:
    """Write `fp32_path`'s graph with its body convolutions in int8 (see the module's
    docstring for what is left in fp32), keeping instrec's metadata."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = onnx.load(str(fp32_path))
    prepared = int8_path.with_name(int8_path.name + ".prepared.onnx")
    try:
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        with contextlib.redirect_stdout(io.StringIO()):  # calibration progress chatter
            quantize_static(
                str(prepared),
                str(int8_path),
                calibration,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=QUANTIZED_OPS,
                nodes_to_exclude=_kept_in_fp32(source),
                per_channel=True,
                reduce_range=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={"CalibPercentile": PERCENTILE},
            )
    finally:
        prepared.unlink(missing_ok=True)
    quantized = onnx.load(str(int8_path))
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(source.metadata_props)
    onnx.save(quantized, str(int8_path))


def _kept_in_fp32(graph: Any) -> list[str]:
    """Convolutions whose kernels are computed at run time, or that have one input channel."""
    weights = {w.name: tuple(w.dims) for w in graph.graph.initializer}
    return [
        node.name
        for node in graph.graph.node
        if node.op_type == "Conv"
        and (node.input[1] not in weights or weights[node.input[1]][1] == 1)
    ]


class _Windows:
    """Calibration feeds: each batch of windows run alone, as evaluation runs them."""

    def __init__(self, batches: Sequence[np.ndarray], engine: OnnxEngine) -> None:
        self.batches = iter(batches)  # (windows, samples) each
        self.window_frames = engine.geometry.window_frames
        self.frame_dim = engine.frame_dim

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        if batch is None:
            return None
        index = np.arange(len(batch) * self.window_frames).reshape(len(batch), -1)
        carry = np.zeros((0, self.frame_dim), np.float32)  # no frames carried in
        return {"wave": batch, "carry": carry, "index": index}


def probability_change(
    reference: Tagger, candidate: Tagger, files: Sequence[Path]
) -> tuple[float, float, float]:
    """(max, mean) |file probability difference| and the share of decisions flipped at
    the reference's threshold, over the files the reference can tag."""
    rows = []
    for path in files:
        try:
            a, b = reference.predict(path), candidate.predict(path)
        except AudioError as error:
            print(f"skipped {error}", file=sys.stderr)
            continue
        rows.append([(a.probabilities[c], b.probabilities[c]) for c in reference.classes])
    if not rows:
        raise InstrecError("no file to measure the int8 change on (see above)")
    pairs = np.array(rows)  # (files, classes, 2)
    moved = np.abs(pairs[..., 1] - pairs[..., 0])
    flipped = (pairs[..., 0] >= reference.threshold) != (pairs[..., 1] >= reference.threshold)
    return float(moved.max()), float(moved.mean()), float(flipped.mean())
