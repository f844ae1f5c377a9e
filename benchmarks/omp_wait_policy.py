"""Does OpenMP's wait policy matter for training on a small CPU?

PyTorch's OpenMP threads spin while they wait for work (OMP_WAIT_POLICY=ACTIVE, the
runtime's habit); the data-loader workers of a fine-tuning then fight them for the same
cores. This runs the same one-epoch fine-tuning (the small preset's ShaResNet18, its
loader workers) in fresh processes under each policy, interleaved (A B A B ...), and
prints wall times and their ratio. The policy must be set before the OpenMP runtime
starts, hence a process per run.

    python benchmarks/omp_wait_policy.py STORE --out benchmarks/results/omp_wait_policy.txt
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from instrec.machine import cpu_description

POLICIES = ("ACTIVE", "PASSIVE")


def cpu_line() -> str:
    """The CPU model and the flags that matter for these numbers."""
    name, flags = cpu_description()
    present = " ".join(flag for flag, has in flags.items() if has)
    return f"{name}, {os.cpu_count()} CPUs, flags: {present}"


def one_epoch(store: Path, policy: str, epochs: int) -> float:
    """Seconds for `instrec finetune` (small_scratch, from random weights) under `policy`."""
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            sys.executable, "-m", "instrec.cli", "finetune", "--config", "small_scratch",
            "--init", "scratch", "--data", str(store), "--out", f"{scratch}/run",
            "--set", f"trainer.epochs={epochs}", "--set", "optim.warmup_epochs=0",
        ]  # fmt: skip
        environment = {**os.environ, "OMP_WAIT_POLICY": policy}
        started = time.perf_counter()
        subprocess.run(command, env=environment, check=True, capture_output=True)
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", type=Path, help="a music clip store (instrec prepare)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    times: dict[str, list[float]] = {policy: [] for policy in POLICIES}
    for _ in range(args.rounds):
        for policy in POLICIES:
            times[policy].append(one_epoch(args.store, policy, args.epochs))
            print(f"{policy}: {times[policy][-1]:.1f} s", file=sys.stderr, flush=True)
    active, passive = (statistics.median(times[p]) for p in POLICIES)
    lines = [
        f"# OMP_WAIT_POLICY, `instrec finetune --config small_scratch` for {args.epochs} "
        f"epoch(s) on {args.store}, {args.rounds} interleaved rounds",
        f"# {cpu_line()}",
        *(
            f"{policy:<8} median {statistics.median(t):6.1f} s  runs "
            + " ".join(f"{x:.1f}" for x in t)
            for policy, t in times.items()
        ),
        f"ACTIVE / PASSIVE: {active / passive:.2f}",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
