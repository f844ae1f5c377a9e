"""Hostile inputs: model files, ONNX metadata, audio files and paths, and training checkpoints
that are damaged, edited or not what they claim are refused with one line naming the file
and the reason (never a traceback, never torch's advice to unpickle), and a batch goes on
past a bad file. Every input is built here; commands are driven through `instrec.cli.main`.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch
from dataset_trees import tone, write_folder_tree, write_wav

from instrec.audio import load_audio
from instrec.cli import main
from instrec.errors import AudioError, InstrecError
from instrec.export import onnx_graph
from instrec.model.io import save_model_file
from instrec.model.zoo import build_model
from instrec.predict import SKIPPED_EXIT_CODE
from instrec.tagging import Tagger
from instrec.tagging import tagger as tagger_module
from instrec.tagging.formats import format_json
from instrec.tagging.geometry import Geometry
from instrec.tagging.tagger import Prediction
from instrec.train.run_dir import LAST_CHECKPOINT, RUN_INFO, open_run_dir

pytestmark = pytest.mark.fault

SR = 16_000
CLASSES = ("a", "b", "c")
SPF, DIM = 160, 4  # the stand-in ONNX graph: samples per frame, features per frame
METADATA = {
    "classes": list(CLASSES),
    "threshold": 0.5,
    "geometry": {"samples_per_frame": SPF, "margin_frames": 2, "chunk_frames": 100, "pooled": True},
    "frame_dim": DIM,
}


# ---- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model("sharesnet18", num_classes=3, width_multiplier=0.25, sinc_filters=16,
                        sinc_kernel=50, sinc_stride=12, lde_components=2)  # fmt: skip
    return save_model_file(tmp_path_factory.mktemp("model") / "model.pt", model, CLASSES, 0.5)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "tagger.onnx"
    path.write_bytes(stand_in_graph(encoded(METADATA)))
    return path


@pytest.fixture(scope="module")
def good_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wav(tmp_path_factory.mktemp("good") / "good.wav", tone(220, 1.5, SR), SR)


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Fails a test that blocks (on a FIFO opened for reading) instead of hanging the run."""

    def give_up(*_: Any) -> None:
        raise TimeoutError("blocked for 30 s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def encoded(metadata: dict[str, Any]) -> dict[str, str]:
    return {f"instrec.{key}": json.dumps(value) for key, value in metadata.items()}


def stand_in_graph(metadata: dict[str, str], weight: float = 0.01) -> bytes:
    """An ONNX graph with the exported WindowTagger's inputs and outputs, built in
    milliseconds: a frame is SPF samples times a matrix, a window's logits the mean of
    its frames times another."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    constants = {
        "w1": rng.standard_normal((SPF, DIM)).astype(np.float32) * weight,
        "w2": rng.standard_normal((DIM, len(CLASSES))).astype(np.float32),
        "spf": np.array([SPF], np.int64),
        "one": np.array([1], np.int64),
        "zeros": np.zeros(3, np.int64),
        "rows": np.array([-1, SPF], np.int64),
    }
    node = helper.make_node
    nodes = [
        node("Shape", ["wave"], ["shape"]),
        node("Gather", ["shape", "one"], ["samples"]),
        node("Mod", ["samples", "spf"], ["rest"]),
        node("Sub", ["spf", "rest"], ["short"]),
        node("Mod", ["short", "spf"], ["pad"]),  # samples to the next whole frame
        node("Concat", ["zeros", "pad"], ["pads"], axis=0),
        node("Pad", ["wave", "pads"], ["padded"]),
        node("Reshape", ["padded", "rows"], ["slices"]),
        node("MatMul", ["slices", "w1"], ["frames"]),
        node("Concat", ["carry", "frames"], ["pool"], axis=0),
        node("Gather", ["pool", "index"], ["picked"], axis=0),
        node("ReduceMean", ["picked"], ["mean"], axes=[1], keepdims=0),
        node("MatMul", ["mean", "w2"], ["logits"]),
    ]
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes,
        "stand-in",
        [value("wave", TensorProto.FLOAT, ["batch", "samples"]),
         value("carry", TensorProto.FLOAT, ["carried", DIM]),
         value("index", TensorProto.INT64, ["windows", "window_frames"])],
        [value("logits", TensorProto.FLOAT, ["windows", len(CLASSES)]),
         value("frames", TensorProto.FLOAT, ["frames", DIM])],
        initializer=[numpy_helper.from_array(v, k) for k, v in constants.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, text in metadata.items():
        model.metadata_props.add(key=key, value=text)
    return model.SerializeToString()


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def strict_json(text: str) -> Any:
    """JSON as the standard has it: NaN and Infinity are not values."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def one_error_line(err: str, command: str, path: Path, *messages: str) -> None:
    """`err` is one line naming `path`, then `messages` in order; never unpickling advice."""
    assert err.count("\n") == 1, err
    assert err.startswith(f"instrec {command}: error: {path}: "), err
    at = 0
    for message in messages:
        at = err.find(message, at)
        assert at >= 0, (message, err)
    assert "weights_only" not in err and "weights only" not in err.lower(), err


# ---- model files: contents checked as strictly as a command line -----------------------------


def _first_float_weight(payload: dict[str, Any]) -> str:
    return next(k for k, v in payload["state_dict"].items() if v.is_floating_point())


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(payload: dict[str, Any]) -> None:
        target = payload
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def _poison_weight(value: float) -> Callable[[dict[str, Any]], None]:
    def change(payload: dict[str, Any]) -> None:
        payload["state_dict"][_first_float_weight(payload)].view(-1)[0] = value

    return change


def _widen_weight(payload: dict[str, Any]) -> None:
    key = _first_float_weight(payload)
    payload["state_dict"][key] = payload["state_dict"][key].double()


MODEL_CONTENTS = {
    "nan threshold": (_set("threshold", value=float("nan")), "threshold must be a number within"),
    "threshold above 1": (_set("threshold", value=1.5), "threshold must be a number within 0..1"),
    "threshold a string": (_set("threshold", value="0.5"), "threshold must be a number"),
    "no classes": (_set("classes", value=[]), "classes must be a non-empty list"),
    "classes a string": (_set("classes", value="abc"), "classes must be a non-empty list"),
    "repeated class": (_set("classes", value=["a", "b", "a"]), "class 'a' is listed twice"),
    "class not a string": (_set("classes", value=["a", "b", 3]), "class name 3 is not"),
    "class with a newline": (
        _set("classes", value=["a", "b\nc", "d"]),
        "class name 'b\\nc' is not",
    ),
    "fewer classes than outputs": (_set("classes", value=["a", "b"]), "2 class names for 3"),
    "nan weight": (_poison_weight(float("nan")), "holds NaN or infinite values"),
    "infinite weight": (_poison_weight(float("inf")), "holds NaN or infinite values"),
    "weight of another dtype": (_widen_weight, "is torch.float64"),
    "unknown architecture": (_set("config", "arch", value="resnet99"), "config arch 'resnet99'"),
    "count of the wrong type": (_set("config", "num_classes", value="3"), "config num_classes"),
    "unknown config field": (_set("config", "dropout", value=0.1), "unknown fields: dropout"),
    "zero stride": (_set("config", "sinc_stride", value=0), "config sinc_stride must be a whole"),
    "huge kernel": (_set("config", "sinc_kernel", value=20_000), "is over 16000 samples (1 s)"),
    "huge class count": (_set("config", "num_classes", value=10**12), "is over 65536"),
    "nan multiplier": (_set("config", "width_multiplier", value=float("nan")), "must be float"),
    "blocks not numbers": (_set("config", "blocks", value=["2", 2]), "config blocks must be"),
    "other sample rate": (_set("config", "sample_rate", value=8000), "sample_rate must be 16000"),
    "meta a list": (_set("meta", value=[1, 2]), "meta must be a mapping"),
}


@pytest.mark.parametrize("case", sorted(MODEL_CONTENTS))
def test_model_file_contents_are_checked_like_command_line_values(
    case: str, model_path: Path, good_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change, message = MODEL_CONTENTS[case]
    payload = copy.deepcopy(torch.load(model_path, weights_only=True))
    change(payload)
    edited = tmp_path / "edited.pt"
    torch.save(payload, edited)
    code, out, err = run_cli(["predict", str(edited), str(good_wav)], capsys)
    assert code == 2 and out == ""
    one_error_line(err, "predict", edited, "not a usable instrec model: ", message)


def _corrupt_member(path: Path) -> bytes:
    """The file with bytes flipped inside its largest stored tensor."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)
    start = member.header_offset + 30 + len(member.filename.encode()) + len(member.extra)
    data[start + member.file_size // 2 : start + member.file_size // 2 + 8] = b"\x7f" * 8
    return bytes(data)


def _wrong_zip() -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "a zip, but no model")
    return buffer.getvalue()


def _pickled_object(tmp_path: Path) -> bytes:
    torch.save({"format": "instrec-model", "version": 1, "hook": Path("x")}, tmp_path / "o.pt")
    return (tmp_path / "o.pt").read_bytes()


UNREADABLE_MODELS = {
    "empty file": (lambda m, t: b"", "not a readable instrec model file (not a PyTorch archive"),
    "garbage": (lambda m, t: b"\x00junk" * 50, "not a readable instrec model file (not a PyTorch"),
    "truncated": (lambda m, t: m.read_bytes()[: m.stat().st_size // 2], "empty, truncated"),
    "zip of something else": (lambda m, t: _wrong_zip(), "not one written by torch.save"),
    "flipped bytes": (lambda m, t: _corrupt_member(m), "fails its CRC check"),
    "pickled object": (lambda m, t: _pickled_object(t), "holds pickled Python objects (pathlib"),
}


@pytest.mark.parametrize("case", sorted(UNREADABLE_MODELS))
def test_damaged_model_files_are_unreadable_without_unpickling_advice(
    case: str, model_path: Path, good_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, message = UNREADABLE_MODELS[case]
    bad = tmp_path / "bad.pt"
    bad.write_bytes(make(model_path, tmp_path))
    code, _, err = run_cli(["predict", str(bad), str(good_wav)], capsys)
    assert code == 2
    one_error_line(err, "predict", bad, message)


@pytest.mark.parametrize("name", ["model.pt", "model.onnx"])
@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_model_path_that_is_no_file_is_named_for_what_it_is(
    kind: str,
    name: str,
    good_wav: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_hang: None,
) -> None:
    path = tmp_path / name
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    message = "is a folder, not a file" if kind == "folder" else "not a regular file (a FIFO)"
    code, _, err = run_cli(["predict", "--model", str(path), str(good_wav)], capsys)
    assert code == 2
    one_error_line(err, "predict", path, message)


def test_export_refuses_a_model_with_nan_weights_and_writes_nothing(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = torch.load(model_path, weights_only=True)
    _poison_weight(float("nan"))(payload)
    torch.save(payload, tmp_path / "nan.pt")
    code, _, err = run_cli(["export", str(tmp_path / "nan.pt"), "--onnx", "out.onnx"], capsys)
    assert code == 2
    one_error_line(err, "export", tmp_path / "nan.pt", "holds NaN or infinite values")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.pt"]


def test_export_keeps_no_graph_whose_difference_is_nan(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """NaN compares false with the tolerance; a NaN beside a finite difference is not hidden
    by max() either."""
    monkeypatch.setattr(  # the stand-in graph: no tracing, so the test stays fast
        onnx_graph,
        "_write_onnx",
        lambda *args: args[1].write_bytes(stand_in_graph(encoded(METADATA))),
    )
    monkeypatch.setattr(onnx_graph, "verify", lambda *args: {"random": 1e-5, "chord": np.nan})
    out = tmp_path / "out.onnx"
    code, _, err = run_cli(["export", str(model_path), "--onnx", str(out)], capsys)
    assert code == 2
    one_error_line(err, "export", out, "export gives NaN or infinite logits on chord")
    assert list(tmp_path.iterdir()) == []


# ---- ONNX metadata -----------------------------------------------------------------------------


def _metadata(**changes: Any) -> dict[str, str]:
    values = encoded({**METADATA, **changes})
    return {k: v for k, v in values.items() if v != json.dumps(None)}  # None: left out


ONNX_CASES = {
    "no instrec metadata": ({"producer": "another tool"}, "no instrec metadata"),
    "nan threshold": ({**encoded(METADATA), "instrec.threshold": "NaN"}, "NaN is not a JSON"),
    "threshold above 1": (_metadata(threshold=2.0), "threshold must be a number within 0..1"),
    "classes not json": ({**encoded(METADATA), "instrec.classes": '["a"'}, "is not JSON"),
    "classes a mapping": (_metadata(classes={"a": 1}), "classes must be a non-empty list"),
    "repeated class": (_metadata(classes=["a", "a", "b"]), "class 'a' is listed twice"),
    "fewer classes than outputs": (_metadata(classes=["a", "b"]), "gives 3 outputs for 2 classes"),
    "no threshold": (_metadata(threshold=None), "metadata lacks instrec.threshold"),
    "zero frame size": (
        _metadata(geometry={**METADATA["geometry"], "samples_per_frame": 0}),
        "geometry samples_per_frame must be a whole number >= 1",
    ),
    "frame size a string": (
        _metadata(geometry={**METADATA["geometry"], "chunk_frames": "100"}),
        "geometry chunk_frames must be a whole number",
    ),
    "wrong frame size": (
        _metadata(geometry={**METADATA["geometry"], "samples_per_frame": 2 * SPF}),
        "the graph makes frames of shape (9, 4) from 1281 samples, but its geometry",
    ),
    "wrong frame_dim": (_metadata(frame_dim=7), "the graph fails on a probe"),
    "frame_dim negative": (_metadata(frame_dim=-4), "frame_dim must be a whole number >= 1"),
}


@pytest.mark.parametrize("case", sorted(ONNX_CASES))
def test_onnx_metadata_is_checked_like_a_model_file(
    case: str, good_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metadata, message = ONNX_CASES[case]
    path = tmp_path / "edited.onnx"
    path.write_bytes(stand_in_graph(metadata))
    code, _, err = run_cli(["predict", str(path), str(good_wav)], capsys)
    assert code == 2
    if metadata.keys() & encoded(METADATA).keys():
        one_error_line(err, "predict", path, "not a usable instrec model: ", message)
    else:  # a foreign graph
        one_error_line(err, "predict", path, "not an ONNX file written by instrec export", message)


def test_an_onnx_graph_with_nan_weights_is_refused_when_loaded(
    onnx_path: Path, good_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nan.onnx"
    path.write_bytes(stand_in_graph(encoded(METADATA), weight=float("nan")))
    code, _, err = run_cli(["predict", str(path), str(good_wav)], capsys)
    assert code == 2
    one_error_line(err, "predict", path, "gives non-finite (NaN or infinite) outputs")
    code, out, _ = run_cli(["predict", str(onnx_path), str(good_wav), "--format", "json"], capsys)
    assert code == 0 and strict_json(out)[0]["error"] is None  # the intact stand-in tags


# ---- audio files and paths: skipped with their reason, the batch goes on ----------------------


def _truncated_wav(root: Path) -> tuple[str, str, str]:
    path = write_wav(root / "cut.wav", tone(330, 2.0, SR), SR)
    path.write_bytes(path.read_bytes()[: 44 + SR * 2])  # header + 1 s of 16-bit samples
    return str(path), str(path), "truncated: header promises 32000 samples, file holds 16000"


def _truncated_mp3(root: Path) -> tuple[str, str, str]:
    path = root / "cut.mp3"
    soundfile.write(path, tone(330, 3.0, 44_100), 44_100)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return str(path), str(path), "truncated: header promises 132300 samples, file holds"


def _link(root: Path, name: str, target: str) -> Path:
    (root / name).symlink_to(root / target)
    return root / name


def _broken_link_in_folder(root: Path) -> tuple[str, str, str]:
    return str(root), str(_link(root, "gone.wav", "deleted.wav")), "broken symbolic link"


def _fifo(root: Path) -> Path:
    os.mkfifo(root / "pipe.wav")
    return root / "pipe.wav"


def _fifo_named(root: Path) -> tuple[str, str, str]:
    return str(_fifo(root)), str(root / "pipe.wav"), "not a regular file (a FIFO)"


def _fifo_in_folder(root: Path) -> tuple[str, str, str]:
    return str(root), str(_fifo(root)), "not a regular file (a FIFO)"


def _device(root: Path) -> tuple[str, str, str]:
    return os.devnull, os.devnull, "not a regular file (a device)"


def _link_loop(root: Path) -> tuple[str, str, str]:
    _link(root, "b.wav", "a.wav")
    path = _link(root, "a.wav", "b.wav")
    return str(path), str(path), "too many levels of symbolic links"


def _rate(rate: int, frames: int) -> Callable[[Path], tuple[str, str, str]]:
    def make(root: Path) -> tuple[str, str, str]:
        path = root / f"rate{rate}.wav"
        soundfile.write(path, np.full(frames, 0.5, np.float32), rate, subtype="FLOAT")
        return str(path), str(path), f"sample rate {rate} Hz is outside 4000..768000 Hz"

    return make


def _one_frame(root: Path) -> tuple[str, str, str]:
    path = root / "blip.wav"
    soundfile.write(path, np.full(1, 0.5, np.float32), 48_000, subtype="FLOAT")
    return str(path), str(path), "too short to make one sample at 16000 Hz (1 at 48000 Hz)"


def _long_name(root: Path) -> tuple[str, str, str]:
    path = root / ("n" * 300 + ".wav")
    return str(path), str(path), "file name too long"


def _long_path(root: Path) -> tuple[str, str, str]:
    path = root.joinpath(*["d" * 200] * 25, "x.wav")  # over PATH_MAX (4096)
    return str(path), str(path), "file name too long"


AUDIO_CASES = {
    "truncated wav": _truncated_wav,
    "truncated mp3": _truncated_mp3,
    "broken link in a folder": _broken_link_in_folder,
    "fifo named": _fifo_named,
    "fifo in a folder": _fifo_in_folder,
    "device named": _device,
    "loop of links": _link_loop,
    "1 Hz": _rate(1, 100),
    "2**31 Hz": _rate(2**31 - 1, 10),
    "one frame": _one_frame,
    "name of 304 bytes": _long_name,
    "path of 5000 characters": _long_path,
}


@pytest.mark.parametrize("case", sorted(AUDIO_CASES))
def test_a_bad_input_is_skipped_with_its_reason_and_the_batch_goes_on(
    case: str,
    onnx_path: Path,
    good_wav: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_hang: None,
) -> None:
    argument, reported, reason = AUDIO_CASES[case](tmp_path)
    args = ["predict", str(onnx_path), str(good_wav), argument, "--format", "json"]
    code, out, err = run_cli(args, capsys)
    assert code == SKIPPED_EXIT_CODE
    results = {r["path"]: r for r in strict_json(out)}
    assert results.pop(str(good_wav))["error"] is None
    assert results[reported]["error"].startswith(reason), results[reported]["error"]
    assert f"skipped {reported}: {reason}" in err


def test_a_file_that_changes_while_it_is_read_is_skipped(
    onnx_path: Path, good_wav: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    growing = write_wav(tmp_path / "growing.wav", tone(440, 2.0, SR), SR)
    original = tagger_module.stream_audio

    def then_appended(path: Path) -> Iterator[np.ndarray]:
        yield from original(path)
        if path == growing:  # a download or recording still being written
            with open(path, "ab") as handle:
                handle.write(b"\x01\x00" * 800)

    monkeypatch.setattr(tagger_module, "stream_audio", then_appended)
    args = ["predict", str(onnx_path), str(good_wav), str(growing), "--format", "json"]
    code, out, err = run_cli(args, capsys)
    assert code == SKIPPED_EXIT_CODE
    assert f"skipped {growing}: changed while being read" in err
    results = strict_json(out)
    assert results[0]["error"] is None
    assert results[1]["error"].startswith("changed while being read")


def test_truncated_audio_is_skipped_by_prepare_with_the_same_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = write_folder_tree(tmp_path / "data", {"whole.wav": ["a"], "cut.wav": ["b"]})
    cut = tmp_path / "data" / "cut.wav"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    args = ["prepare", "folder", str(tmp_path / "data"), "--csv", str(csv_path), "--out",
            str(tmp_path / "store"), "--workers", "1"]  # fmt: skip
    code, out, err = run_cli(args, capsys)
    assert code == 0
    assert f"skipped {cut}: truncated: header promises 55125 samples, file holds" in out + err


def test_model_outputs_that_are_not_finite_skip_the_file_and_json_stays_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """A model that breaks down on noise (non-finite logits) but not on a tone."""

    class BreaksOnNoise:
        classes, threshold, frame_dim = CLASSES, 0.5, DIM
        geometry = Geometry(samples_per_frame=SPF, margin_frames=2, chunk_frames=100, pooled=False)

        def run(self, wave: np.ndarray, carry: np.ndarray, index: np.ndarray) -> Any:
            crossings = np.mean(np.diff(np.sign(wave), axis=1) != 0, axis=1)  # (batch,)
            logits = np.where(crossings[:, None] > 0.3, np.nan, 0.0) * np.ones(len(CLASSES))
            return logits.astype(np.float32), np.zeros((0, DIM), np.float32)

    monkeypatch.setattr("instrec.predict.load_model", lambda *args: Tagger(BreaksOnNoise()))
    noise = np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32) * 0.1
    write_wav(tmp_path / "noise.wav", noise, SR)
    write_wav(tmp_path / "tone.wav", tone(220, 2.0, SR), SR)
    for fmt in ("json", "table", "csv"):
        code, out, err = run_cli(["predict", "stub", str(tmp_path), "--format", fmt], capsys)
        assert code == SKIPPED_EXIT_CODE
        assert "nan" not in out.lower().replace("non-finite (nan", "")
        assert "noise.wav: the model gives non-finite (NaN or infinite) outputs" in err
    results = {Path(r["path"]).name: r for r in strict_json(run_cli(
        ["predict", "stub", str(tmp_path), "--format", "json"], capsys)[1])}  # fmt: skip
    assert results["tone.wav"]["probabilities"] == {c: 0.5 for c in CLASSES}
    assert results["noise.wav"]["probabilities"] == {}


def test_json_output_never_holds_nan() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        format_json([Prediction(path="x.wav", probabilities={"a": float("nan")})])


def test_names_that_are_not_text_print_as_escapes(
    onnx_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file name holding bytes that are not UTF-8, or a newline, is one line of the
    table, whatever the terminal's encoding."""
    folder = tmp_path / "names"
    for name in (b"caf\xe9.wav", b"two\nlines.wav"):
        written = write_wav(folder / "plain.wav", tone(220, 1.5, SR), SR)
        written.rename(folder / os.fsdecode(name))
    for fmt in ("table", "csv"):
        code, out, _ = run_cli(["predict", str(onnx_path), str(folder), "--format", fmt], capsys)
        assert code == 0
        assert len(out.splitlines()) == 3  # the header and one line per file
        assert "caf\\xe9.wav" in out and "two\\nlines.wav" in out


def test_many_channels_are_decoded_in_bounded_memory(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((2_000, 1_000)).astype(np.float32) * 0.1
    soundfile.write(tmp_path / "wide.wav", x, SR, subtype="FLOAT")  # 8 MB of samples
    tracemalloc.start()
    mono = load_audio(tmp_path / "wide.wav")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(mono, x.mean(axis=1), atol=1e-6)
    assert peak < 2_000_000  # bytes: blocks of ~0.5 MB, not the whole file per read


def test_the_python_api_says_the_same(tmp_path: Path) -> None:
    argument, _, reason = _rate(2**31 - 1, 10)(tmp_path)
    with pytest.raises(AudioError, match=f"rate{2**31 - 1}.wav: {reason}"):
        load_audio(argument)


# ---- training checkpoints on --resume ---------------------------------------------------------


CONFIG_TEXT = "seed: 0\nmodel:\n  name: sharesnet18\n"


def _checkpoint(**changes: Any) -> dict[str, Any]:
    checkpoint: dict[str, Any] = {
        "epoch": 1, "global_step": 6, "pytorch-lightning_version": "2.6.0", "loops": {},
        "optimizer_states": [], "lr_schedulers": [], "callbacks": {},
        "state_dict": {"model.head.weight": torch.ones(3, 4), "model.steps": torch.tensor(6)},
    }  # fmt: skip
    checkpoint.update(changes)
    return {k: v for k, v in checkpoint.items() if v is not None}


def _saved(checkpoint: dict[str, Any], path: Path) -> bytes:
    torch.save(checkpoint, path)
    return path.read_bytes()


CHECKPOINTS = {
    "empty": (lambda p: b"", "not a PyTorch archive: empty, truncated or another format"),
    "garbage": (lambda p: b"PK\x03\x04 and then nothing", "not a PyTorch archive"),
    "truncated": (lambda p: _saved(_checkpoint(), p)[:300], "not a PyTorch archive"),
    "flipped bytes": (
        lambda p: (_saved(_checkpoint(), p), _corrupt_member(p))[1],
        "fails its CRC check",
    ),
    "pickled object": (
        lambda p: _saved(_checkpoint(hyper_parameters=Path("x")), p),
        "holds pickled Python objects (pathlib.PosixPath), which are never loaded",
    ),
    "no loops": (lambda p: _saved(_checkpoint(loops=None), p), "lacks loops"),
    "nan weights": (
        lambda p: _saved(_checkpoint(state_dict={"w": torch.full((2,), float("nan"))}), p),
        "its state_dict holds something other than finite tensors",
    ),
}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "config.yaml").write_text(CONFIG_TEXT)
    (out / RUN_INFO).write_text('{"seed": 0}\n')
    return out


@pytest.mark.parametrize("case", sorted(CHECKPOINTS))
def test_a_damaged_checkpoint_is_refused_before_training_resumes(case: str, run_dir: Path) -> None:
    make, reason = CHECKPOINTS[case]
    checkpoint = run_dir / LAST_CHECKPOINT
    checkpoint.write_bytes(make(checkpoint))
    with pytest.raises(InstrecError) as raised:
        open_run_dir(run_dir, CONFIG_TEXT, {}, resume=True)
    message = str(raised.value)
    assert message.startswith(f"{checkpoint}: damaged checkpoint (") and reason in message
    assert message.endswith("; remove it to start again, or restore it")
    assert "\n" not in message and "weights_only" not in message
    assert (run_dir / RUN_INFO).read_text() == '{"seed": 0}\n'  # no resume recorded
    torch.save(_checkpoint(), checkpoint)  # restored: the run resumes from it
    assert open_run_dir(run_dir, CONFIG_TEXT, {}, resume=True) == checkpoint
    assert len(json.loads((run_dir / RUN_INFO).read_text())["resumed"]) == 1


def test_a_checkpoint_that_is_a_folder_is_refused(run_dir: Path) -> None:
    (run_dir / LAST_CHECKPOINT).mkdir()
    with pytest.raises(InstrecError, match=r"last\.ckpt: damaged checkpoint \(is a folder"):
        open_run_dir(run_dir, CONFIG_TEXT, {}, resume=True)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("config.yaml", "seed: [0\n", r"config\.yaml: damaged \(while parsing"),
        ("config.yaml", "", r"config\.yaml: damaged \(not a mapping\); restore it"),
        (RUN_INFO, '{"seed": 0', r"run\.json: damaged \(Expecting"),
        (RUN_INFO, None, r"run\.json: missing, so the run cannot be resumed"),
    ],
)
def test_damaged_run_records_are_named_on_resume(
    run_dir: Path, name: str, text: str | None, message: str
) -> None:
    if text is None:
        (run_dir / name).unlink()
    else:
        (run_dir / name).write_text(text)
    with pytest.raises(InstrecError, match=message):
        open_run_dir(run_dir, CONFIG_TEXT, {}, resume=True)


# --- a store whose files disagree with its header -------------------------------------


def _small_store(path: Path) -> Path:
    from instrec.data.store import Entry, StoreWriter

    with StoreWriter(path, "nsynth", ("a", "b")) as writer:
        for k in range(4):
            entry = Entry(Path(f"{k}.wav"), f"{k}.wav", (k % 2,), "train", k)
            writer.add(entry, [np.full(1000 + k, 0.1, dtype=np.float32)], [{}])
        writer.finish(16_000, {})
    return path


def _cut_audio(store: Path) -> None:
    data = (store / "audio.i16").read_bytes()
    (store / "audio.i16").write_bytes(data[:-100])


def _grow_audio(store: Path) -> None:
    with open(store / "audio.i16", "ab") as handle:
        handle.write(b"\0" * 64)


def _save(name: str, make: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def damage(store: Path) -> None:
        np.save(store / name, make(np.load(store / name)))

    return damage


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_cut_audio, "damaged store"),
        (_grow_audio, r"audio\.i16 holds 4038 samples, the header 4006"),
        (_save("offsets.npy", lambda a: a[:-1]), "offsets.npy lists 3 items"),
        (_save("offsets.npy", lambda a: a[::-1].copy()), "offsets.npy does not span"),
        (_save("scales.npy", lambda a: a[:-1]), "scales.npy has 3 scales, not 4"),
        (_save("scales.npy", lambda a: np.full_like(a, np.nan)), "non-finite"),
        (_save("targets.npy", lambda a: a[:, :1].copy()), r"targets.npy is \(4, 1\), not \(4, 2\)"),
    ],
    ids=["audio-cut", "audio-grown", "offsets-short", "offsets-reversed", "scales-short",
         "scales-nan", "targets-narrow"],
)  # fmt: skip
def test_a_store_whose_files_disagree_with_its_header_is_refused(
    tmp_path: Path, damage: Callable[[Path], None], reason: str
) -> None:
    from instrec.data.store import ClipStore

    store = _small_store(tmp_path / "s")
    damage(store)
    with pytest.raises(InstrecError, match=reason):
        ClipStore.open(store)


def test_a_run_started_before_a_setting_existed_still_resumes(run_dir: Path) -> None:
    """A newer instrec adds trainer fields (at their defaults): the older run's config,
    which lacks them, is still its own config; a real change is still refused."""
    checkpoint = run_dir / LAST_CHECKPOINT
    torch.save(_checkpoint(), checkpoint)
    newer = CONFIG_TEXT + "trainer:\n  channels_last: false\n  compile: false\n"
    assert open_run_dir(run_dir, newer, {}, resume=True) == checkpoint
    with pytest.raises(InstrecError, match="resuming needs the run's own config"):
        open_run_dir(run_dir, CONFIG_TEXT + "trainer:\n  compile: true\n", {}, resume=True)
