"""Clips per second of every model variant, forward and forward+backward, with FLOP/s.

For each variant and batch size it times inference (eval mode, no grad) and a training
step's forward+backward (train mode, cross-entropy; no optimiser), on 1 s clips by default.
FLOPs per pass are measured with torch's FlopCounterMode (on the meta device, so counting
costs nothing), and the achieved FLOP/s is shown as a fraction of this machine's peak,
itself measured in the same run by a large matmul (fp32 on CPU, bf16 on GPU).

On CUDA the models run as they would in training: bf16 autocast, channels_last,
torch.compile. CPU figures depend on what else runs on the cores: the load average before
and after is printed with them.

    python benchmarks/model_throughput.py --quick --models sharesnet18,resnet18
    python benchmarks/model_throughput.py --device cuda --batch-sizes 1,64,256
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from instrec.model.zoo import MODEL_NAMES, build_model, count_parameters


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models", default=",".join(MODEL_NAMES), help="comma-separated variants to time"
    )
    parser.add_argument("--batch-sizes", default="1,64", help="comma-separated batch sizes")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if present"
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="clip length (s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed iterations per figure")
    parser.add_argument(
        "--quick", action="store_true", help="one warm-up and two timed iterations, small matmul"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--sinc-kernel", type=int, default=None, help="override the sinc kernel (samples)"
    )
    parser.add_argument(
        "--sinc-stride", type=int, default=None, help="override the sinc stride (samples)"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile on CUDA")
    return parser.parse_args()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(
    step: Callable[[], object], device: torch.device, warmup: int, repeats: int
) -> float:
    """Median wall time (s) of `step` after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(device: torch.device, quick: bool) -> tuple[float, str]:
    """Best FLOP/s of a large square matmul: the machine's practical peak for this dtype."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = (4096 if quick else 8192) if device.type == "cuda" else (1024 if quick else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = median_seconds(lambda: a @ b, device, warmup=2, repeats=3 if quick else 10)
    return 2 * n**3 / seconds, f"{n}x{n} {str(dtype).removeprefix('torch.')} matmul"


def counted_flops(model: nn.Module, batch: int, samples: int, backward: bool) -> int:
    """FLOPs of one forward (and backward) pass, counted on a meta-device copy."""
    shadow = copy.deepcopy(model).to("meta").train(backward)
    wave = torch.zeros(batch, samples, device="meta")
    grad_mode = contextlib.nullcontext() if backward else torch.no_grad()
    with grad_mode, FlopCounterMode(display=False) as counter:
        logits = shadow(wave)
        if backward:
            logits.sum().backward()
    return counter.get_total_flops()


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    if device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def time_passes(
    model: nn.Module,
    runner: nn.Module,
    batch: int,
    samples: int,
    device: torch.device,
    warmup: int,
    repeats: int,
) -> tuple[float, float]:
    """Median seconds of one inference pass and one forward+backward pass on a random batch."""
    wave = torch.randn(batch, samples, device=device)
    labels = torch.randint(0, 11, (batch,), device=device)

    def forward() -> object:
        with torch.inference_mode(), autocast(device):
            return runner(wave)

    def forward_backward() -> object:
        model.zero_grad(set_to_none=True)
        with autocast(device):
            loss = nn.functional.cross_entropy(runner(wave).float(), labels)
        loss.backward()
        return loss

    model.eval()
    fwd = median_seconds(forward, device, warmup, repeats)
    model.train()
    return fwd, median_seconds(forward_backward, device, warmup, repeats)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    warmup, repeats = (1, 2) if args.quick else (3 if use_cuda else 1, args.repeats)
    samples = round(args.seconds * 16_000)
    overrides = {
        key: value
        for key, value in (("sinc_kernel", args.sinc_kernel), ("sinc_stride", args.sinc_stride))
        if value is not None
    }

    name = torch.cuda.get_device_name(device) if use_cuda else platform.processor() or "cpu"
    print(f"# model_throughput  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"# torch {torch.__version__}, device {device} ({name}), "
        f"{torch.get_num_threads()} threads, os.cpu_count {os.cpu_count()}"
    )
    if use_cuda:
        print(f"# bf16 autocast, channels_last, torch.compile: {not args.no_compile}")
    print(
        f"# clip {args.seconds:g} s, overrides {overrides or 'none'}, load average before "
        f"{os.getloadavg()[0]:.1f}"
    )
    peak, how = matmul_peak(device, args.quick)
    print(f"# peak {peak / 1e9:.1f} GFLOP/s ({how})")
    print(
        f"{'model':<12} {'params':>9} {'batch':>5} {'fwd clip/s':>11} {'fwd %peak':>9} "
        f"{'f+b clip/s':>11} {'f+b %peak':>9}"
    )
    for model_name in args.models.split(","):
        model = build_model(model_name.strip(), num_classes=11, **overrides).to(device)
        params = count_parameters(model)
        if use_cuda:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        runner: nn.Module = model
        if use_cuda and not args.no_compile:
            runner = torch.compile(model)  # type: ignore[assignment]
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            fwd, fwb = time_passes(model, runner, batch, samples, device, warmup, repeats)
            fwd_flops = counted_flops(model, batch, samples, backward=False)
            fwb_flops = counted_flops(model, batch, samples, backward=True)
            print(
                f"{model_name:<12} {params:>9,} {batch:>5} {batch / fwd:>11.2f} "
                f"{100 * fwd_flops / fwd / peak:>8.1f}% {batch / fwb:>11.2f} "
                f"{100 * fwb_flops / fwb / peak:>8.1f}%",
                flush=True,
            )
    print(f"# load average after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
