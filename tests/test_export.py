"""`instrec export`: the ONNX graph matches PyTorch, carries its classes and threshold, and
`instrec predict model.onnx` runs on onnxruntime with torch impossible to import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from instrec.audio import SAMPLE_RATE
from instrec.cli import main
from instrec.errors import InstrecError
from instrec.export.onnx_graph import TOLERANCE, export_onnx
from instrec.model.io import save_model_file
from instrec.model.zoo import build_model
from instrec.tagging import load_model
from instrec.tagging.onnx_engine import OnnxEngine

CLASSES = ("low", "mid", "high")


FRONT_ENDS = {  # the zoo's default sinc front end (wide receptive field: windows run alone)
    "wide": {},  # and Shi et al.'s (narrow: windows pooled from frames shared over chunks)
    "narrow": {"sinc_kernel": 50, "sinc_stride": 12},
}


@pytest.fixture(scope="module", params=sorted(FRONT_ENDS))
def exported(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path]:
    """(model.pt, model.onnx, song.wav): a slim 3-class model, exported with a 6.3 s song."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("export")
    model = build_model(
        "sharesnet18", num_classes=3, width_multiplier=0.25, sinc_filters=32,
        **FRONT_ENDS[request.param],
    )  # fmt: skip
    save_model_file(root / "model.pt", model, CLASSES, threshold=0.3, meta={"note": "test"})
    t = np.arange(round(6.3 * 44_100)) / 44_100
    song = np.stack([np.sin(2 * np.pi * 330 * t), np.sign(np.sin(2 * np.pi * 110 * t))], 1) * 0.2
    soundfile.write(root / "song.wav", song, 44_100)
    report = export_onnx(root / "model.pt", root / "model.onnx", [root / "song.wav"])
    assert set(report.differences) == {"random", str(root / "song.wav")}
    assert max(report.differences.values()) < TOLERANCE
    return root / "model.pt", root / "model.onnx", root / "song.wav"


def test_onnx_tags_like_pytorch_and_keeps_the_labels(exported: tuple[Path, Path, Path]) -> None:
    model_path, onnx_path, song = exported
    torch_result = load_model(model_path).predict(song)
    onnx_tagger = load_model(onnx_path)
    assert isinstance(onnx_tagger.engine, OnnxEngine)
    assert onnx_tagger.classes == CLASSES and onnx_tagger.threshold == pytest.approx(0.3)
    onnx_result = onnx_tagger.predict(song)
    assert onnx_result.instruments == torch_result.instruments
    assert onnx_result.probabilities == pytest.approx(torch_result.probabilities, abs=1e-5)
    assert onnx_result.window_probabilities is not None
    assert torch_result.window_probabilities is not None
    np.testing.assert_allclose(
        onnx_result.window_probabilities, torch_result.window_probabilities, atol=1e-5
    )


def test_onnx_handles_long_files_in_chunks_and_short_ones_padded(
    exported: tuple[Path, Path, Path],
) -> None:
    model_path, onnx_path, _ = exported
    rng = np.random.default_rng(0)
    long = rng.standard_normal(25 * SAMPLE_RATE).astype(np.float32) * 0.1  # 3 chunks of 10 s
    short = long[: SAMPLE_RATE // 3]
    for x in (long, short):
        a, b = load_model(model_path).predict(x), load_model(onnx_path).predict(x)
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
    assert load_model(onnx_path).predict(short).padded


def test_predict_on_onnx_runs_without_torch(exported: tuple[Path, Path, Path]) -> None:
    _, onnx_path, song = exported
    script = f"""
import json, sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "lightning"):
            raise ModuleNotFoundError("blocked: " + name)
sys.meta_path.insert(0, NoTorch())
from instrec.cli import main
code = main(["predict", {str(onnx_path)!r}, {str(song)!r}, "--format", "json"])
assert code == 0 and "torch" not in sys.modules
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)
    assert entry["error"] is None and set(entry["probabilities"]) == set(CLASSES)


def test_export_refuses_to_overwrite_and_names_bad_files(
    exported: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_path, onnx_path, _ = exported
    assert main(["export", str(model_path), "--onnx", str(onnx_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    (tmp_path / "bad.onnx").write_bytes(b"not a graph")
    with pytest.raises(InstrecError, match=r"bad\.onnx"):
        load_model(tmp_path / "bad.onnx")
    assert main(["export", str(tmp_path / "missing.pt"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists() and list(tmp_path.iterdir()) == [
        tmp_path / "bad.onnx"
    ]
