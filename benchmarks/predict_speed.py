"""How fast `instrec predict` tags a song on CPU, against the compute floor.

For each model: write a stereo 44.1 kHz MP3 (soundfile), then time tagging it end to end
(decode, resample, -12 LUFS, network; loading the model is not timed) five ways, after
timing the audio path alone:
  decode      the audio path alone, no network: the part a faster network cannot remove
  per-window  the plain loop: model(windows) in batches of 16, every frame computed twice
  torch       instrec's Tagger: the body once over 10 s chunks and LDE pooled per window
              where the receptive field allows (Geometry.pooled), else lone windows
              batched (channels-last convolutions)
  onnx        the same graph exported and run on onnxruntime
  onnx-fast   onnx as `instrec predict --fast`: the body once over the file and every
              window pooled from its frames, even where the receptive field is too wide for
              that to equal evaluation (benchmarks/fast_predict_accuracy.py measures the change)
  onnx-int8   `instrec export --int8`: the body's convolutions in int8 (instrec.export.int8),
              calibrated on another song
  int8-fast   onnx-int8 run as `--fast`
and print seconds (the best of --repeats runs), real-time factor (audio seconds per second of
compute) and the ratio to the floor: (multiply-accumulates of the audio, each frame once,
plus pooling per window)
x 2 / FLOP/s of a large fp32 matmul measured in this process just before and after each
run (averaged: the machine may be shared, so the rate is taken when the run happens).
`max dp` is the largest file-level probability difference from the torch row (the effect
of pooling frames instead of padding each window, or of int8). Zoo names get untrained
weights (speed does not depend on them); pass a trained model file (.pt) in --models to see
the difference on real weights.

    python benchmarks/predict_speed.py [--seconds 180] [--threads 2] [--repeats 3] [--models ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile
import torch
from torch.utils.flop_counter import FlopCounterMode

from instrec.audio import SAMPLE_RATE, load_audio, normalize_loudness, windows
from instrec.export.int8 import export_int8
from instrec.export.onnx_graph import export_onnx
from instrec.labels import IRMAS_CLASSES
from instrec.model.io import load_model_file, save_model_file
from instrec.model.zoo import Recognizer, build_model
from instrec.tagging import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="song length (s)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every engine")
    parser.add_argument("--repeats", type=int, default=3, help="runs per method; the best counts")
    parser.add_argument(
        "--models", nargs="+", default=["sharesnet18", "resnet34"], help="zoo names or .pt files"
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["torch", "decode", "per-window", "onnx", "onnx-fast", "onnx-int8", "int8-fast"],
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} threads")
    with tempfile.TemporaryDirectory() as tmp:
        song = Path(tmp) / "song.mp3"
        write_song(song, args.seconds)
        print(
            f"song: {args.seconds:.0f} s, 44.1 kHz stereo MP3, {song.stat().st_size / 1e6:.1f} MB"
        )
        for name in args.models:
            bench_model(name, song, args.seconds, Path(tmp), args)


def bench_model(name: str, song: Path, seconds: float, tmp: Path, args: argparse.Namespace) -> None:
    """Time every method on one model: a zoo name (untrained weights) or a model file."""
    if name.endswith(".pt"):
        model_path, model = Path(name), load_model_file(name).model
        name = model_path.name
    else:
        torch.manual_seed(0)
        model = build_model(name).eval()
        for norm in model.modules():  # trained-like batch-norm statistics, so that no two
            if isinstance(norm, torch.nn.BatchNorm2d):  # folded convolutions are equal
                torch.nn.init.uniform_(norm.running_var, 0.5, 2.0)
        model_path = save_model_file(tmp / f"{name}.pt", model, IRMAS_CLASSES, threshold=0.5)
    flop = 2 * audio_macs(model, seconds)
    print(f"\n{name}: {flop / seconds / 1e9:.1f} GFLOP per second of audio")
    print(
        f"  {'method':<11} {'seconds':>8} {'RTF':>7} {'matmul':>12} {'floor s':>8} "
        f"{'x floor':>8} {'max dp':>8}"
    )
    torch_tagger = load_model(model_path)  # loading (and the receptive-field probe) untimed
    runs: dict[str, Callable[[], dict[str, float]]] = {
        "decode": lambda: decode_only(song),
        "per-window": lambda: per_window(model, song),
        "torch": lambda: torch_tagger.predict(song).probabilities,
    }
    if {"onnx", "onnx-fast"} & set(args.methods):
        onnx_path = export_onnx(model_path, tmp / f"{name}.onnx").path
        onnx_tagger = load_model(onnx_path, args.threads)
        fast_tagger = load_model(onnx_path, args.threads, fast=True)
        runs["onnx"] = lambda: onnx_tagger.predict(song).probabilities
        runs["onnx-fast"] = lambda: fast_tagger.predict(song).probabilities
    if {"onnx-int8", "int8-fast"} & set(args.methods):
        calibration = tmp / "calibration.mp3"
        write_song(calibration, 40.0, seed=1)
        int8_path = export_int8(model_path, tmp / f"{name}.int8.onnx", [calibration]).path
        int8_tagger = load_model(int8_path, args.threads)
        int8_fast_tagger = load_model(int8_path, args.threads, fast=True)
        runs["onnx-int8"] = lambda: int8_tagger.predict(song).probabilities
        runs["int8-fast"] = lambda: int8_fast_tagger.predict(song).probabilities
    reference: dict[str, float] | None = None
    for method in args.methods:
        before = matmul_flops()  # the machine is shared: measure the rate around each run
        elapsed = float("inf")
        for _ in range(args.repeats):  # the best run: the least disturbed by neighbours
            start = time.perf_counter()
            result = runs[method]()
            elapsed = min(elapsed, time.perf_counter() - start)
        rate = (before + matmul_flops()) / 2
        if method == "torch":
            reference = result
        drift = max((abs(result[c] - reference[c]) for c in result if reference), default=0.0)
        print(
            f"  {method:<11} {elapsed:>8.1f} {seconds / elapsed:>7.2f} "
            f"{rate / 1e9:>6.1f} GFLOP/s {flop / rate:>8.1f} {elapsed * rate / flop:>8.2f} "
            f"{drift:>8.1e}",
            flush=True,
        )


def per_window(model: Recognizer, song: Path, batch: int = 16) -> dict[str, float]:
    """The plain way: every 1 s window (hop 0.5 s) through the whole model, logits averaged."""
    x = windows(normalize_loudness(load_audio(song)))  # (windows, 16000)
    with torch.inference_mode():
        logits = torch.cat(
            [model(torch.from_numpy(x[i : i + batch])) for i in range(0, len(x), batch)]
        )
    mean = torch.sigmoid(logits.mean(0)).numpy()
    return {c: float(p) for c, p in zip(IRMAS_CLASSES, mean, strict=True)}


def decode_only(song: Path) -> dict[str, float]:
    """The audio path alone (decode, resample, -12 LUFS): the part no network speed-up touches."""
    normalize_loudness(load_audio(song))
    return {}


def audio_macs(model: Recognizer, seconds: float) -> float:
    """Multiply-accumulates to tag `seconds` of audio: each frame once, plus LDE and head
    per 1 s window at 0.5 s hop. Counted on the meta device (no arithmetic is done)."""
    meta = Recognizer(model.config).to("meta").eval()
    probe = 10 * SAMPLE_RATE
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        frames = meta.frame_features(torch.zeros(1, probe, device="meta"))
    per_frame = counter.get_total_flops() / 2 / frames.shape[1]
    window_frames = -(-SAMPLE_RATE // model.samples_per_frame)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta.head(meta.pool(torch.zeros(1, window_frames, frames.shape[2], device="meta")))
    n_windows = max(1, int(np.ceil((seconds - 1.0) / 0.5)) + 1)
    total_frames = seconds * SAMPLE_RATE / model.samples_per_frame
    return per_frame * total_frames + n_windows * counter.get_total_flops() / 2


def matmul_flops(size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a large fp32 matmul on the current threads: the best of `repeats`."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def write_song(path: Path, seconds: float, sr: int = 44_100, seed: int = 0) -> None:
    """A music-like stereo signal: decaying harmonic notes on a melody plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    pitches = 220.0 * 2 ** (rng.integers(0, 12, int(seconds * 2) + 1) / 12)
    f0 = pitches[(t * 2).astype(int)]  # a new note every 0.5 s
    envelope = np.exp(-3 * (t % 0.5))
    voice = sum(np.sin(2 * np.pi * h * np.cumsum(f0) / sr) / h for h in range(1, 6))
    left = 0.3 * envelope * voice + 0.01 * rng.standard_normal(t.size)
    right = 0.8 * left + 0.05 * np.sin(2 * np.pi * 110 * t)
    soundfile.write(path, np.stack([left, right], axis=1).astype(np.float32), sr, format="MP3")


if __name__ == "__main__":
    main()
