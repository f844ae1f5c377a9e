"""`instrec predict`: chunked tagging equals the whole-file and per-window computations,
files and folders in, the JSON contract out, bad input skipped, timelines drawn, and a
model trained here on pitch bands names the band that plays when."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch

import instrec
import instrec.tagging
from instrec.audio import SAMPLE_RATE, windows
from instrec.cli import main
from instrec.errors import AudioError
from instrec.labels import IRMAS_CLASSES
from instrec.model.io import save_model_file
from instrec.model.window_graph import receptive_radius
from instrec.model.zoo import build_model
from instrec.predict import SKIPPED_EXIT_CODE
from instrec.tagging import Tagger, load_model
from instrec.tagging import tagger as tagger_module
from instrec.tagging.torch_engine import TorchEngine
from instrec.tagging.windows import SampleReader, window_logits

# fast models for plumbing tests: SLIM has a narrow receptive field (Shi et al.'s sinc
# front end: kernel 50, stride 12 samples), so its windows are pooled from shared frames;
# WIDE keeps the zoo's default front end, whose field is too wide for that
WIDE: dict[str, Any] = {"width_multiplier": 0.25, "sinc_filters": 32}
SLIM: dict[str, Any] = {**WIDE, "sinc_kernel": 50, "sinc_stride": 12}


def tone(
    freq_hz: float, seconds: float, sr: int = SAMPLE_RATE, amplitude: float = 0.3
) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "untrained.pt"
    save_model_file(path, build_model("resnet18", **SLIM), IRMAS_CLASSES, threshold=0.5)
    return path


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """a.mp3: 3.3 s 44.1 kHz stereo; sub/b.flac: 0.4 s mono 22.05 kHz; sub/bad.wav: garbage."""
    root = tmp_path_factory.mktemp("audio")
    (root / "sub").mkdir()
    stereo = np.stack([tone(440, 3.3, 44_100), tone(660, 3.3, 44_100)], axis=1)
    soundfile.write(root / "a.mp3", stereo, 44_100)
    soundfile.write(root / "sub" / "b.flac", tone(300, 0.4, 22_050), 22_050)
    (root / "sub" / "bad.wav").write_bytes(b"RIFF but not really a wave file")
    (root / "notes.txt").write_text("not audio, not searched")
    return root


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["predict", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---- the chunked computation -----------------------------------------------------------------


def test_chunks_with_margins_equal_one_pass_over_the_whole_file(model_path: Path) -> None:
    engine = load_model(model_path).engine
    assert isinstance(engine, TorchEngine) and engine.geometry.pooled
    x = np.random.default_rng(0).standard_normal(4 * SAMPLE_RATE + 123).astype(np.float32) * 0.1
    whole, starts = window_logits(_with_chunk(engine, 10**6), x)
    chunked, _ = window_logits(_with_chunk(engine, 50), x)  # 10 chunks of 0.3 s
    assert len(starts) == 8 and starts[-1] == x.size - SAMPLE_RATE  # evaluation's window grid
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


def _with_chunk(engine: TorchEngine, frames: int) -> TorchEngine:
    geometry = dataclasses.replace(engine.geometry, chunk_frames=frames)
    return TorchEngine(engine.graph.model, engine.classes, engine.threshold, geometry)


def test_margin_covers_the_receptive_field() -> None:
    model = build_model("resnet18", **SLIM).eval()
    radius = receptive_radius(model)
    x = torch.randn(1, 64 * model.samples_per_frame)
    centre = 32 * model.samples_per_frame  # the centre sample of frame 32
    with torch.no_grad():
        base = model.frame_features(x)[0, 32]
        inside, outside = x.clone(), x.clone()
        inside[0, centre - radius] += 1.0
        outside[0, centre - radius - 1] += 1.0
        assert not torch.equal(model.frame_features(inside)[0, 32], base)
        assert torch.equal(model.frame_features(outside)[0, 32], base)


def test_a_wide_receptive_field_runs_each_window_alone_exactly_as_evaluation() -> None:
    torch.manual_seed(0)
    model = build_model("sharesnet18", **WIDE).eval()
    tagger = Tagger(TorchEngine.from_model(model, IRMAS_CLASSES, 0.5))
    assert not tagger.engine.geometry.pooled
    x = np.random.default_rng(2).standard_normal(round(4.7 * SAMPLE_RATE)).astype(np.float32)
    logits, _ = window_logits(tagger.engine, x)
    with torch.no_grad():
        alone = model(torch.from_numpy(windows(x))).numpy()  # (windows, classes)
    np.testing.assert_allclose(logits, alone, atol=1e-4)


def test_fast_pools_every_window_from_one_pass_over_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--fast on a wide receptive field: chunked, margined frames equal one pass of the body
    over the whole file, and each window is LDE-pooled from its 1 s of those frames."""
    torch.manual_seed(0)
    model = build_model("sharesnet18", **WIDE).eval()
    path = save_model_file(tmp_path / "wide.pt", model, IRMAS_CLASSES, threshold=0.5)
    assert not load_model(path).engine.geometry.pooled
    fast = load_model(path, fast=True)
    g = dataclasses.replace(fast.engine.geometry, chunk_frames=12)  # several chunks
    fast.engine.geometry = g
    x = np.random.default_rng(4).standard_normal(round(6.3 * SAMPLE_RATE)).astype(np.float32)
    logits, starts = window_logits(fast.engine, x)
    with torch.no_grad():
        frames = model.frame_features(torch.from_numpy(x)[None])  # (1, frames, dim)
        first = np.minimum(
            np.round(starts / g.samples_per_frame), frames.shape[1] - g.window_frames
        )
        pooled = torch.cat([frames[:, int(f) : int(f) + g.window_frames] for f in first])
        expected = model.head(model.pool(pooled)).numpy()  # (windows, classes)
    np.testing.assert_allclose(logits, expected, atol=1e-4)

    soundfile.write(tmp_path / "x.wav", x, SAMPLE_RATE, subtype="FLOAT")
    code, out, _ = run_cli(
        [str(path), str(tmp_path / "x.wav"), "--fast", "--format", "json"], capsys
    )
    assert code == 0
    from_cli = json.loads(out)[0]["probabilities"]
    assert from_cli == pytest.approx(fast.predict(tmp_path / "x.wav").probabilities, abs=1e-5)


def test_pooled_windows_track_the_per_window_model(model_path: Path) -> None:
    """Frames pooled per window differ from running the model on each window alone only at
    the window edges (which see real context instead of zero padding). With random weights
    the logits still move together; the trained-model test below bounds the difference."""
    tagger = load_model(model_path)
    x = np.random.default_rng(1).standard_normal(5 * SAMPLE_RATE).astype(np.float32) * 0.1
    assert isinstance(tagger.engine, TorchEngine)
    pooled, _ = window_logits(tagger.engine, x)
    model = tagger.engine.graph.model
    with torch.no_grad():
        alone = model(torch.from_numpy(windows(x))).numpy()  # (windows, classes)
    assert pooled.shape == alone.shape
    assert np.corrcoef(pooled.ravel(), alone.ravel())[0, 1] > 0.9


def test_sample_reader_serves_forward_reads_from_blocks_of_any_size() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(10_000).astype(np.float32)
    reader = SampleReader(np.split(x, np.sort(rng.integers(0, x.size, 30))), x.size, "s.mp3")
    start = 0
    for _ in range(40):
        start += int(rng.integers(0, 400))
        end = start + int(rng.integers(0, 3000))
        np.testing.assert_array_equal(reader.read(start, end), x[start : min(end, x.size)])
    with pytest.raises(ValueError, match="cannot go back"):
        reader.read(start - 1, start)
    cut_short = SampleReader([x[:500]], 1000, "s.mp3")
    with pytest.raises(AudioError, match=r"s\.mp3: ended at sample 500 of 1000"):
        cut_short.read(0, 800)


def test_a_file_too_long_to_hold_is_decoded_again_with_the_same_result(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stereo = np.stack([tone(440, 7.0, 44_100), tone(523, 7.0, 44_100, 0.2)], axis=1)
    soundfile.write(tmp_path / "long.flac", stereo, 44_100)
    tagger = load_model(model_path)
    held = tagger.predict(tmp_path / "long.flac")
    decodes, original = [], tagger_module.stream_audio

    def counted(path: Path) -> Any:
        decodes.append(path)
        return original(path)

    monkeypatch.setattr(tagger_module, "stream_audio", counted)
    monkeypatch.setattr(tagger_module, "HOLD_SECONDS", 2.0)
    streamed = tagger.predict(tmp_path / "long.flac")
    assert len(decodes) == 2  # measured, then tagged
    assert streamed.probabilities == pytest.approx(held.probabilities, abs=1e-6)
    assert streamed.duration_s == held.duration_s == 7.0


def test_memory_does_not_grow_with_the_length_of_the_file(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Peak memory of NumPy buffers (decoded audio, chunks, frames) while tagging a 30 s
    and a 150 s file, with files over 5 s decoded twice rather than held."""
    monkeypatch.setattr(tagger_module, "HOLD_SECONDS", 5.0)
    tagger = load_model(model_path)
    peaks = {}
    for seconds in (30, 150):
        path = tmp_path / f"{seconds}.wav"
        soundfile.write(path, tone(440, seconds, 44_100), 44_100)
        tracemalloc.start()
        tagger.predict(path)
        peaks[seconds] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    decoded_150 = 150 * SAMPLE_RATE * 4  # bytes of the 150 s file at 16 kHz float32
    assert peaks[150] < 1.2 * peaks[30]
    assert peaks[150] < decoded_150 / 2


# ---- Python API ------------------------------------------------------------------------------


def test_array_at_any_rate_equals_the_same_audio_from_a_file(
    model_path: Path, tmp_path: Path
) -> None:
    tagger = instrec.load_model(str(model_path))
    stereo = np.stack([tone(440, 2.5, 44_100), tone(880, 2.5, 44_100, 0.1)], axis=1)
    soundfile.write(tmp_path / "s.wav", stereo, 44_100, subtype="FLOAT")
    from_file = tagger.predict(tmp_path / "s.wav")
    from_array = tagger.predict(stereo.T, sr=44_100)  # channels-first is fine too
    assert from_file.probabilities == pytest.approx(from_array.probabilities, abs=1e-5)
    assert from_file.duration_s == 2.5 and not from_file.padded
    assert from_file.window_probabilities is not None
    assert from_file.window_probabilities.shape == (4, len(IRMAS_CLASSES))


def test_threshold_and_top_k_choose_the_instruments(model_path: Path) -> None:
    tagger = load_model(model_path)
    x = tone(440, 2.0)
    result = tagger.predict(x, threshold=0.0, top_k=3)
    ranked = sorted(result.probabilities, key=result.probabilities.__getitem__, reverse=True)
    assert result.instruments == ranked[:3]
    assert tagger.predict(x, threshold=1.0).instruments == []


# ---- the command -----------------------------------------------------------------------------


def test_json_contract_with_a_folder_a_missing_file_and_bad_audio(
    model_path: Path, audio_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        [str(model_path), str(audio_dir), str(audio_dir / "gone.wav"), "--format", "json"], capsys
    )
    assert code == SKIPPED_EXIT_CODE
    results = {Path(r["path"]).name: r for r in json.loads(out)}
    assert set(results) == {"a.mp3", "b.flac", "bad.wav", "gone.wav"}
    for name in ("a.mp3", "b.flac"):
        r = results[name]
        assert r["error"] is None and set(r["probabilities"]) == set(IRMAS_CLASSES)
        assert r["instruments"] == [c for c, p in sorted(
            r["probabilities"].items(), key=lambda item: -item[1]) if p >= 0.5]  # fmt: skip
    assert results["a.mp3"]["duration_s"] == pytest.approx(3.3, abs=0.01)
    assert results["b.flac"]["padded"] and not results["a.mp3"]["padded"]
    assert "cannot decode" in results["bad.wav"]["error"]
    assert results["gone.wav"]["error"] == "no such file or folder"
    skipped_lines = [line for line in err.splitlines() if "skipped" in line]
    assert len(skipped_lines) == 3  # one per bad input, one summary
    assert "padded to 1 s" in err


def test_silence_is_skipped_not_tagged(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scaled to -12 LUFS, silence or a -120 dBFS hiss would be tagged as something."""
    hiss = np.random.default_rng(0).standard_normal(3 * SAMPLE_RATE).astype(np.float32) * 1e-6
    soundfile.write(tmp_path / "hiss.wav", hiss, SAMPLE_RATE, subtype="FLOAT")
    soundfile.write(tmp_path / "zeros.wav", np.zeros(3 * SAMPLE_RATE), SAMPLE_RATE)
    code, out, err = run_cli([str(model_path), str(tmp_path), "--format", "json"], capsys)
    assert code == SKIPPED_EXIT_CODE
    assert [r["error"] for r in json.loads(out)] == [
        "is silent (no 400 ms block above -70 LUFS)"
    ] * 2
    assert "skipped 2 of 2 inputs" in err
    with pytest.raises(AudioError, match=r"<array>: is silent"):
        load_model(model_path).predict(np.zeros(SAMPLE_RATE))


def test_table_and_csv_outputs(
    model_path: Path, audio_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli([str(model_path), str(audio_dir / "a.mp3"), "--threshold", "0"], capsys)
    assert code == 0
    header, row = out.splitlines()
    assert "probability >= 0.00" in header and "a.mp3" in row and "3.3 s" in row
    code, out, _ = run_cli(
        [str(model_path), str(audio_dir), "--format", "csv", "--top-k", "2", "--threshold", "0"],
        capsys,
    )
    rows = list(__import__("csv").DictReader(out.splitlines()))
    assert [Path(r["path"]).name for r in rows] == ["a.mp3", "b.flac", "bad.wav"]
    assert len(rows[0]["instruments"].split()) == 2 and rows[2]["error"]
    assert rows[1]["padded"] == "1"


def test_timeline_writes_a_plot_and_per_window_table_and_never_overwrites(
    model_path: Path, audio_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(model_path), str(audio_dir / "a.mp3"), "--timeline", str(tmp_path / "tl")]
    code, out, _ = run_cli([*args, "--format", "json"], capsys)
    assert code == 0
    timeline = json.loads(out)[0]["timeline"]
    assert timeline["start_s"] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.3])
    assert (tmp_path / "tl" / "a.png").read_bytes()[:4] == b"\x89PNG"
    table = (tmp_path / "tl" / "a.csv").read_text().splitlines()
    assert table[0].split(",")[:3] == ["start_s", "end_s", "cel"] and len(table) == 7
    assert main(["predict", *args]) == 2  # exists: refused
    assert "already exists" in capsys.readouterr().err


def test_the_command_and_the_tagging_layer_import_neither_torch_nor_training() -> None:
    modules = ["instrec.predict"] + [
        f"instrec.tagging.{p.stem}" for p in Path(instrec.tagging.__file__).parent.glob("*.py")
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "assert not {'torch', 'lightning'} & set(sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_bad_model_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.pt").write_bytes(b"nope")
    code, _, err = run_cli([str(tmp_path / "m.pt"), str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "m.pt" in err


# ---- end to end: a model trained here on pitch bands ---------------------------------------


@pytest.mark.slow
def test_a_model_trained_on_pitch_bands_tags_them_over_time(tmp_path: Path) -> None:
    """Class 0 = a tone in 150-300 Hz, class 1 = a tone in 1.5-3 kHz; clips hold either or
    both. The trained model must tag a chord with both and a low tone with "low" alone, and
    the timeline of a file whose first half is low and second half high must show that."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    classes = ("low", "high")
    model = build_model("sharesnet18", num_classes=2, head="linear", **SLIM)  # trains in 60 steps
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        targets = rng.integers(0, 2, (16, 2))
        targets[targets.sum(1) == 0, rng.integers(0, 2)] = 1
        clips = [_band_clip(row, rng) for row in targets]
        logits = model(torch.from_numpy(np.stack(clips)))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, torch.from_numpy(targets).float()
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    save_model_file(tmp_path / "bands.pt", model.eval(), classes, threshold=0.5)
    song = np.concatenate([tone(200, 4.0), tone(2000, 4.0)])
    soundfile.write(tmp_path / "song.wav", song, SAMPLE_RATE)

    tagger = load_model(tmp_path / "bands.pt")
    assert tagger.engine.geometry.pooled
    assert set(tagger.predict(tone(220, 3.0) + tone(2200, 3.0)).instruments) == set(classes)
    assert tagger.predict(tone(250, 3.0)).instruments == ["low"]
    result = tagger.predict(tmp_path / "song.wav")
    assert result.window_probabilities is not None and result.window_starts_s is not None
    early = result.window_starts_s + 1 <= 3.5  # windows clear of the change at 4 s, whose
    late = result.window_starts_s >= 4.5  # click the frames near it see and may tag either way
    low, high = result.window_probabilities.T
    assert low[early].min() > 0.5 > low[late].max()
    assert high[late].min() > 0.5 > high[early].max()
    # pooling frames per window agrees with the per-window model on trained weights: file
    # probabilities within 0.05, the same decisions
    pooled, _ = window_logits(tagger.engine, song)
    with torch.no_grad():
        alone = model(torch.from_numpy(windows(song))).numpy()
    probabilities = 1 / (1 + np.exp(-np.stack([pooled.mean(0), alone.mean(0)])))
    assert np.abs(probabilities[0] - probabilities[1]).max() < 0.05  # measured: 0.03
    assert ((probabilities >= 0.5)[0] == (probabilities >= 0.5)[1]).all()


def _band_clip(active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    clip = 0.01 * rng.standard_normal(SAMPLE_RATE)
    for on, (low, high) in zip(active, ((150, 300), (1500, 3000)), strict=True):
        if on:
            clip += rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * rng.uniform(low, high) * t)
    return clip.astype(np.float32)


def test_tagger_is_engine_agnostic(model_path: Path) -> None:
    tagger = load_model(model_path)
    assert isinstance(tagger, Tagger) and tagger.classes == IRMAS_CLASSES
    assert tagger.threshold == 0.5


# ---- which model: --model NAME|PATH, the earlier positional form, the shipped default -------


def test_model_given_with_the_option_or_first_as_before_tags_alike(
    model_path: Path, audio_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    song = str(audio_dir / "a.mp3")
    option = run_cli(["--model", str(model_path), song, "--format", "json"], capsys)
    earlier = run_cli([str(model_path), song, "--format", "json"], capsys)
    assert option[0] == earlier[0] == 0
    assert json.loads(option[1]) == json.loads(earlier[1])
    assert [p["path"] for p in json.loads(option[1])] == [song]  # the model is not tagged


def test_an_unknown_model_name_is_one_line_naming_the_shipped_ones(
    audio_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["--model", "no-such-model", str(audio_dir / "a.mp3")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "no-such-model: no such model file, nor a shipped model (shipped:" in err
