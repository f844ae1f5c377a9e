"""Augmentation throughput (clips/s) on CPU and, when CUDA is available, GPU.

    python benchmarks/augment_throughput.py [--batch 128] [--repeats 5] [--threads 1]

Times the full BatchAugmenter with the paper's settings (effects then LUFS-matched mixup),
each part alone on every clip of the batch, and note concatenation (numpy, per clip). On
a GPU it also times one resnet34 training step at the same batch size (forward, backward,
Adam; fp32 and bf16 autocast) when instrec.model.zoo is there, and prints the
augmentation's cost as a share of that step (target: under 15 %).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from instrec.augment import ALL_EFFECTS, AugmentConfig, BatchAugmenter, concatenate_notes

SR = 16_000
OFF = AugmentConfig(concat_p=0.0, mixup_p=0.0, effects_ratio=0.0)


def seconds_per_call(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall time of fn over `repeats` runs after one warm-up (CUDA synchronised)."""
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def augmenters() -> dict[str, AugmentConfig]:
    """The paper's settings, then each part alone on every clip."""
    rows = {"paper (mixup 0.5, effects 0.3)": AugmentConfig(concat_p=0.0)}
    rows["mixup on every clip"] = dataclasses.replace(OFF, mixup_p=1.0)
    for name in ALL_EFFECTS:
        rows[f"{name} on every clip"] = dataclasses.replace(OFF, effects_ratio=1.0, effects=(name,))
    return rows


def benchmark_batch(device: torch.device, batch: int, repeats: int) -> dict[str, float]:
    """Seconds per batch of each augmenter row on `device`."""
    generator = torch.Generator(device=device).manual_seed(0)
    waves = 0.1 * torch.randn(batch, SR, device=device, generator=generator)
    targets = torch.eye(batch, device=device)
    results = {}
    for label, config in augmenters().items():
        call = functools.partial(BatchAugmenter(config, SR), waves, targets, generator)
        results[label] = seconds_per_call(call, device, repeats)
    return results


def benchmark_concatenation(clips: int) -> float:
    """Seconds per note of concatenate_notes (always concatenating, 4 partners)."""
    rng = np.random.default_rng(0)
    notes = [rng.normal(0, 0.1, SR).astype(np.float32) for _ in range(5)]
    start = time.perf_counter()
    for _ in range(clips):
        concatenate_notes(notes[0], notes[1:], rng, length=SR, sr=SR)
    return (time.perf_counter() - start) / clips


def training_step_seconds(batch: int, repeats: int, bf16: bool) -> float | None:
    """Seconds per resnet34 training step on CUDA (1,006 NSynth classes); None without a zoo."""
    try:
        from instrec.model.zoo import build_model
    except ImportError:
        return None
    device = torch.device("cuda")
    model = build_model("resnet34", num_classes=1006).to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    waves = 0.1 * torch.randn(batch, SR, device=device)
    labels = torch.randint(0, 1006, (batch,), device=device)

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(waves), labels, label_smoothing=0.05)
        loss.backward()
        optimiser.step()

    return seconds_per_call(step, device, repeats)


def report(device: torch.device, batch: int, repeats: int) -> float:
    """Print one device's table; return seconds per batch of the paper's settings."""
    cpu = f"{platform.machine()}, {os.cpu_count()} cores"
    name = torch.cuda.get_device_name() if device.type == "cuda" else cpu
    print(f"\n{device.type.upper()} ({name}), batch {batch} x {SR} samples")
    print(f"{'augmentation':<34} {'ms/batch':>10} {'clips/s':>10}")
    results = benchmark_batch(device, batch, repeats)
    for label, seconds in results.items():
        print(f"{label:<34} {1000 * seconds:>10.1f} {batch / seconds:>10.0f}")
    return next(iter(results.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128, help="clips per batch (paper: 128)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (median)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--cpu-only", action="store_true", help="skip the GPU part")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s), median of {args.repeats}")

    concat = benchmark_concatenation(200)
    print(
        f"\nconcatenate_notes (numpy, per note): {1000 * concat:.3f} ms, {1 / concat:.0f} notes/s"
    )
    report(torch.device("cpu"), args.batch, args.repeats)
    if args.cpu_only or not torch.cuda.is_available():
        print("\nCUDA: not available here (or --cpu-only): GPU rows and step ratio not measured")
        return
    augment = report(torch.device("cuda"), args.batch, args.repeats)
    for bf16 in (False, True):
        step = training_step_seconds(args.batch, args.repeats, bf16)
        precision = "bf16 autocast" if bf16 else "fp32"
        if step is None:
            print("\nresnet34 step: instrec.model.zoo not importable, ratio not measured")
            return
        print(
            f"resnet34 training step ({precision}): {1000 * step:.1f} ms; augmentation / step = "
            f"{100 * augment / step:.1f} % (target < 15 %)"
        )


if __name__ == "__main__":
    main()
