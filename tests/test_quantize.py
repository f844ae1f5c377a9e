"""`instrec export --int8`: which layers go int8, how far the output moves, bad calibration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile
import torch

from instrec.audio import load_normalized, windows
from instrec.cli import main
from instrec.errors import InstrecError
from instrec.export.int8 import (
    BATCH_WINDOWS,
    Int8Report,
    calibration_windows,
    export_int8,
    probability_change,
)
from instrec.export.onnx_graph import export_onnx
from instrec.model.io import save_model_file
from instrec.model.zoo import build_model
from instrec.tagging import load_model

CLASSES = ("low", "mid", "high")
SR = 22_050


def _tones(path: Path, f0: float, seconds: float) -> Path:
    """Decaying harmonic notes on f0 and a fifth above, stereo at 22.05 kHz."""
    t = np.arange(round(seconds * SR)) / SR
    voice = sum(np.sin(2 * np.pi * h * f0 * (1 + 0.5 * (t % 1 > 0.5)) * t) / h for h in range(1, 5))
    left = 0.3 * np.exp(-2 * (t % 0.5)) * voice
    soundfile.write(path, np.stack([left, 0.7 * left], 1), SR)
    return path


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Int8Report, Path]:
    """(fp32 model.pt, the int8 export's report, a held-out song)."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("int8")
    model = build_model("sharesnet18", num_classes=3, width_multiplier=0.25, sinc_filters=32)
    for norm in model.modules():  # trained-like statistics: every folded convolution differs
        if isinstance(norm, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(norm.running_var, 0.5, 2.0)
            torch.nn.init.uniform_(norm.weight, 0.5, 1.5)
    save_model_file(root / "model.pt", model, CLASSES, threshold=0.3)
    calibration = root / "calibration"
    calibration.mkdir()
    for f0 in (110.0, 196.0, 330.0):
        _tones(calibration / f"tones{f0:.0f}.wav", f0, 4.0)
    soundfile.write(calibration / "silent.wav", np.zeros(SR), SR)
    (calibration / "notes.txt").write_text("not audio")
    song = _tones(root / "song.wav", 147.0, 6.0)
    report = export_int8(root / "model.pt", root / "model.int8.onnx", [calibration], [song])
    return root / "model.pt", report, song


def test_body_convolutions_run_in_int8_the_rest_in_fp32(
    int8_export: tuple[Path, Int8Report, Path],
) -> None:
    _, report, _ = int8_export
    graph = onnx.load(str(report.path)).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}

    def quantized_input(node: onnx.NodeProto, i: int) -> bool:
        return producer.get(node.input[i]) == "DequantizeLinear"

    convs = [n for n in graph.node if n.op_type == "Conv"]
    in_int8 = [n.name for n in convs if quantized_input(n, 0) and quantized_input(n, 1)]
    fp32 = [n.name for n in convs if not quantized_input(n, 1)]
    assert len(in_int8) == 19  # the 16 block convolutions and 3 shortcuts
    assert sorted(fp32) == ["/body/stem/stem.0/Conv", "/sinc/Conv"]
    for node in graph.node:
        if node.op_type in ("MatMul", "Gemm"):  # LDE and the head stay fp32
            assert not any(quantized_input(node, i) for i in range(len(node.input)))
    tagger = load_model(report.path)
    assert tagger.classes == CLASSES and tagger.threshold == pytest.approx(0.3)


def test_reported_change_is_the_measured_change_and_small(
    int8_export: tuple[Path, Int8Report, Path], tmp_path: Path
) -> None:
    model_path, report, song = int8_export
    export_onnx(model_path, tmp_path / "fp32.onnx")
    fp32 = load_model(tmp_path / "fp32.onnx").predict(song).probabilities
    int8 = load_model(report.path).predict(song).probabilities
    moved = np.abs([int8[c] - fp32[c] for c in CLASSES])
    assert report.measured_on == (song,) and report.calibration_windows == 3 * 7
    assert report.max_change == pytest.approx(moved.max(), abs=1e-6)
    assert report.mean_change == pytest.approx(moved.mean(), abs=1e-6)
    assert 0 < report.mean_change < 0.02  # int8 did change the output, a little


def test_calibration_batches_are_whole_and_drawn_from_the_windows(tmp_path: Path) -> None:
    song = _tones(tmp_path / "long.wav", 220.0, 25.0)  # 49 windows: one whole batch of 32
    (batch,) = calibration_windows([song])
    assert batch.shape == (BATCH_WINDOWS, 16_000)
    every = windows(load_normalized(song))  # (49, 16000)
    rows = [int(np.flatnonzero((every == row).all(axis=1))[0]) for row in batch]
    assert len(set(rows)) == BATCH_WINDOWS and rows == sorted(rows)  # distinct, in order


@dataclasses.dataclass
class _Fixed:
    """A stand-in Tagger that gives the same probabilities for every file."""

    probabilities: dict[str, float]
    classes: tuple[str, ...] = ("a", "b")
    threshold: float = 0.3

    def predict(self, path: Path) -> _Fixed:
        return self


def test_probability_change_counts_flipped_decisions() -> None:
    reference, candidate = _Fixed({"a": 0.2, "b": 0.6}), _Fixed({"a": 0.35, "b": 0.55})
    largest, mean, flipped = probability_change(reference, candidate, [Path("x"), Path("y")])  # type: ignore[arg-type]
    assert (largest, mean, flipped) == pytest.approx((0.15, 0.1, 0.5))


def test_unusable_calibration_audio_is_named_and_none_refused(
    int8_export: tuple[Path, Int8Report, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model_path, _, _ = int8_export
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InstrecError, match="no calibration audio"):
        export_int8(model_path, tmp_path / "x.onnx", [empty])
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(SR), SR)
    with pytest.raises(InstrecError, match="none of the calibration files could be read"):
        export_int8(model_path, tmp_path / "x.onnx", [silent])
    assert "is silent" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".x.onnx")]


def test_cli_writes_int8_and_says_how_far_it_moved(
    int8_export: tuple[Path, Int8Report, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model_path, _, song = int8_export
    out = tmp_path / "cli.onnx"
    args = ["export", str(model_path), "--onnx", str(out), "--int8", str(song)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == f"wrote {out}\n"  # calibration chatter kept off stdout
    assert "int8 against fp32 on 1 calibration (in-sample" in captured.err
    assert "of decisions flip (11 calibration windows)" in captured.err
    assert load_model(out).predict(song).probabilities.keys() == set(CLASSES)
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
