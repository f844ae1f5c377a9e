"""Augmentation throughput (clips/s) and its share of a training step, on CPU and GPU.

    python benchmarks/augment_throughput.py [--batch 128] [--repeats 5] [--threads 1]
        [--step-repeats 2] [--cpu-only]

Times the full BatchAugmenter with the pretrain config's settings (effects then
LUFS-matched mixup), each part alone on every clip of the batch, and note concatenation
(numpy, per clip). Then one training step of the pretrain config's model (resnet34 with
NSynth's 1,006-instrument head) at the same batch size and thread count, as instrec.train.fit
runs it (forward, soft-target cross-entropy with label smoothing, backward, Adam), and
prints the augmentation's cost as a share of that step: on CPU (fp32; slow, so
--step-repeats timed steps after one warm-up) and, when CUDA is available, on GPU (fp32
and bf16 autocast; the issue's target is under 15 % there).
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
import torch.nn.functional as F

from instrec.model.zoo import build_model
from instrec.train.augment import ALL_EFFECTS, AugmentConfig, BatchAugmenter, concatenate_notes
from instrec.train.config import Config, load_config

SR = 16_000
NSYNTH_INSTRUMENTS = 1006  # the pre-training head: one class per NSynth instrument id
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


def augmenters(paper: AugmentConfig) -> dict[str, AugmentConfig]:
    """The pretrain config's settings (concatenation is the dataset's, not timed here),
    then each part alone on every clip."""
    label = f"pretrain (mixup {paper.mixup_p}, effects {paper.effects_ratio})"
    rows = {label: paper}
    rows["mixup on every clip"] = dataclasses.replace(OFF, mixup_p=1.0)
    for name in ALL_EFFECTS:
        rows[f"{name} on every clip"] = dataclasses.replace(OFF, effects_ratio=1.0, effects=(name,))
    return rows


def benchmark_batch(
    device: torch.device, batch: int, repeats: int, paper: AugmentConfig
) -> dict[str, float]:
    """Seconds per batch of each augmenter row on `device`."""
    generator = torch.Generator(device=device).manual_seed(0)
    waves = 0.1 * torch.randn(batch, SR, device=device, generator=generator)
    targets = torch.eye(batch, device=device)
    results = {}
    for label, config in augmenters(paper).items():
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


def training_step_seconds(
    config: Config, device: torch.device, batch: int, repeats: int, bf16: bool
) -> float:
    """Seconds per training step of config's model with NSynth's head, as instrec.train.fit
    runs it: forward (bf16 autocast if asked), CE against (batch, classes) targets with the
    config's label smoothing, backward, Adam with its weight decay."""
    model = build_model(config.model.name, NSYNTH_INSTRUMENTS, **config.model.options)
    model = model.to(device).train()
    optim = config.optim
    optimiser = torch.optim.Adam(
        model.parameters(), lr=optim.peak_lr, weight_decay=optim.weight_decay
    )
    waves = 0.1 * torch.randn(batch, SR, device=device)
    labels = torch.randint(0, NSYNTH_INSTRUMENTS, (batch,), device=device)
    targets = F.one_hot(labels, NSYNTH_INSTRUMENTS).float()  # (batch, classes), as mixup gives

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(waves)  # (batch, classes)
            loss = F.cross_entropy(logits, targets, label_smoothing=optim.label_smoothing)
        loss.backward()
        optimiser.step()

    return seconds_per_call(step, device, repeats)


def print_ratio(augment: float, step: float, label: str, repeats: int, target: str) -> None:
    """One line: the step's time and the augmentation's share of it."""
    print(
        f"{label}: training step {1000 * step:.1f} ms (median of {repeats}); "
        f"augmentation {1000 * augment:.1f} ms = {100 * augment / step:.1f} % of a step{target}"
    )


def report(device: torch.device, batch: int, repeats: int, paper: AugmentConfig) -> float:
    """Print one device's table; return seconds per batch of the pretrain settings."""
    cpu = f"{platform.machine()}, {os.cpu_count()} cores"
    name = torch.cuda.get_device_name() if device.type == "cuda" else cpu
    print(f"\n{device.type.upper()} ({name}), batch {batch} x {SR} samples")
    print(f"{'augmentation':<34} {'ms/batch':>10} {'clips/s':>10}")
    results = benchmark_batch(device, batch, repeats, paper)
    for label, seconds in results.items():
        print(f"{label:<34} {1000 * seconds:>10.1f} {batch / seconds:>10.0f}")
    return next(iter(results.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128, help="clips per batch (paper: 128)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (median)")
    parser.add_argument(
        "--step-repeats",
        type=int,
        default=2,
        help="timed CPU training steps after one warm-up (median); 0 skips the CPU step",
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--cpu-only", action="store_true", help="skip the GPU part")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config("pretrain")
    print(
        f"torch {torch.__version__}, {args.threads} CPU thread(s), median of {args.repeats}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )

    concat = benchmark_concatenation(200)
    print(
        f"\nconcatenate_notes (numpy, per note): {1000 * concat:.3f} ms, {1 / concat:.0f} notes/s"
    )
    augment = report(torch.device("cpu"), args.batch, args.repeats, config.augment)
    if args.step_repeats > 0:
        cpu = torch.device("cpu")
        step = training_step_seconds(config, cpu, args.batch, args.step_repeats, bf16=False)
        target = " (the < 15 % target is for GPU)"
        print_ratio(
            augment,
            step,
            f"CPU fp32 {config.model.name}, {args.threads} thread(s)",
            args.step_repeats,
            target,
        )
    if args.cpu_only or not torch.cuda.is_available():
        print("\nCUDA: not available here (or --cpu-only): GPU rows and step ratio not measured")
    else:
        report_gpu(config, args.batch, args.repeats)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


def report_gpu(config: Config, batch: int, repeats: int) -> None:
    """The GPU table, then the augmentation's share of an fp32 and a bf16 training step."""
    cuda = torch.device("cuda")
    augment = report(cuda, batch, repeats, config.augment)
    for bf16 in (False, True):
        step = training_step_seconds(config, cuda, batch, repeats, bf16)
        label = f"GPU {'bf16 autocast' if bf16 else 'fp32'} {config.model.name}"
        print_ratio(augment, step, label, repeats, " (target < 15 %)")


if __name__ == "__main__":
    main()
