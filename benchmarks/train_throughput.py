"""Training throughput on CPU: which options make a training step faster, side by side.

Step arms, per model: forward + cross-entropy + backward + AdamW step on random 1 s clips,
as fp32 (the baseline), channels_last, torch.compile, bf16 autocast and their combinations,
on 1 thread, and at other batch sizes. The arms are timed in interleaved rounds
(A B C A B C ...), each arm stepping for at least --seconds-per-arm per round, so that a
process starting or stopping on a shared machine slows every arm alike; each arm's clips/s
is its median over the rounds, its ratio that median over the fp32 baseline's, and
"rounds" the range of the per-round ratios (how much to trust it). "% mm" is the achieved
FLOP/s (6 x forward MACs per clip: forward, and a backward of twice its cost) over an fp32
matmul's rate, measured in the same run as benchmarks/model_throughput.py does.

End-to-end arms: the real Lightning loop (instrec.train.fit.pretrain, the --fit-config
preset with its augmentations) on a synthetic note store for --fit-steps steps, with 0, 1
and 2 loader workers and with the trainer's fastest options, timed as benchmarks/gpu_check
does: clips/s in the steady state and the share of it spent between steps (loading).

--accuracy adds the bf16 check: the same model trained from the same seed on the same
learnable synthetic notes (class = instrument timbre, random pitch), fp32 against bf16
autocast, and bf16 with the sinc front end kept in fp32; final losses and validation
accuracy, and how closely the front end's output under autocast matches fp32.

On cores that other jobs share, OpenMP's busy waiting makes torch's threads wait on each
other at every operation (measured beside other jobs on the 2-core machine: a sharesnet18
step 11x slower on 2 threads than on 1); OMP_WAIT_POLICY=PASSIVE, set before the start,
avoided it there. The header prints both settings.

    python benchmarks/train_throughput.py --accuracy \
        --out benchmarks/results/train_throughput_cpu.txt
    python benchmarks/train_throughput.py --quick
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import io
import logging
import math
import os
import statistics
import tempfile
import time
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from loader_throughput import write_note_store
from model_throughput import matmul_peak, median_seconds
from torch import nn

from instrec.data.store import ClipStore
from instrec.machine import cpu_description
from instrec.model.sincnet import SincConv
from instrec.model.zoo import Recognizer, build_model, count_macs

SR = 16_000
CLASSES = 11  # the fine-tuning head's IRMAS classes; the head's size hardly matters here
OPENMP_SETTINGS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")
INSTRUMENTS = 16  # classes of the synthetic note stores
WRONG = 0.05  # a bf16 convolution's error over its largest output; rounding gives ~0.004
WIDTH_ONE = "sharesnet18/8"  # 8 bands: the last stage's stride-2 convolution is 1 column wide
FULL = {"models": "sharesnet18/64,resnet34", "batch": 64, "batch_sizes": "32,64,128,256",
        "repeats": 5, "seconds_per_arm": 3.0, "fit_steps": 30, "fit_repeats": 3,
        "workers": "0,1,2", "accuracy_steps": 300, "accuracy_seeds": "0,1",
        "accuracy_notes": 40}  # fmt: skip
QUICK = {"models": "sharesnet18/16", "batch": 4, "batch_sizes": "2,4", "repeats": 2,
         "seconds_per_arm": 0.0, "fit_steps": 3, "fit_repeats": 1, "workers": "0",
         "accuracy_steps": 3, "accuracy_seeds": "0", "accuracy_notes": 2}  # fmt: skip


@dataclass(frozen=True)
class Arm:
    """One way of running a training step."""

    name: str
    batch: int
    threads: int
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False


@dataclass
class Timed:
    """An arm's clips/s, one per round, and the seconds its first (compiling) step took."""

    arm: Arm
    rates: list[float]
    first_step_s: float


class Report:
    """Lines printed as they come and kept for --out."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


# ---- the machine ------------------------------------------------------------------------


def bf16_matmul_rate(quick: bool) -> float:
    """FLOP/s of a square bf16 matmul (AMX where the CPU has it), timed as matmul_peak."""
    n = 1024 if quick else 2048
    a, b = (torch.randn(n, n, dtype=torch.bfloat16) for _ in range(2))
    seconds = median_seconds(lambda: a @ b, torch.device("cpu"), 2, 3 if quick else 10)
    return 2 * n**3 / seconds


def header(report: Report, args: argparse.Namespace) -> float:
    """The machine, torch and the matmul rates; returns the fp32 matmul FLOP/s."""
    name, flags = cpu_description()
    report(f"# train_throughput  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    report(f"# cpu: {name}; os.cpu_count {os.cpu_count()}")
    report("# cpu flags: " + ", ".join(f"{f} {'yes' if on else 'no'}" for f, on in flags.items()))
    report(
        f"# torch {torch.__version__}, {torch.get_num_threads()} threads (interop "
        f"{torch.get_num_interop_threads()}), mkldnn {torch.backends.mkldnn.is_available()}"
    )
    openmp = ", ".join(f"{key}={os.environ.get(key, 'unset')}" for key in OPENMP_SETTINGS)
    report(f"# {openmp} (set before start: a busy-waiting OpenMP on shared cores is slow)")
    peak, how = matmul_peak(torch.device("cpu"), args.quick)
    report(
        f"# matmul: fp32 {peak / 1e9:.1f} GFLOP/s ({how}); "
        f"bf16 {bf16_matmul_rate(args.quick) / 1e9:.1f} GFLOP/s (same size)"
    )
    report(f"# load average before {os.getloadavg()[0]:.1f}")
    return peak


# ---- models and steps ---------------------------------------------------------------------


def parse_model(spec: str) -> tuple[str, dict[str, Any]]:
    """MODEL[/SINC_FILTERS] -> (MODEL, overrides); without filters, the model's defaults."""
    name, _, filters = spec.strip().partition("/")
    return name, ({"sinc_filters": int(filters)} if filters else {})


def make_model(spec: str) -> Recognizer:
    name, overrides = parse_model(spec)
    torch.manual_seed(0)
    return build_model(name, CLASSES, **overrides)


def step_arms(args: argparse.Namespace, threads: int) -> list[Arm]:
    """The baseline first, then one option at a time, the options together, threads, batches."""
    base = Arm("fp32", args.batch, threads)
    arms = [
        base,
        replace(base, name="channels_last", channels_last=True),
        replace(base, name="compile", compile=True),
        replace(base, name="channels_last+compile", channels_last=True, compile=True),
        replace(base, name="bf16", bf16=True),
        replace(base, name="bf16+channels_last", bf16=True, channels_last=True),
        replace(base, name="bf16+channels_last+compile", bf16=True, channels_last=True,
                compile=True),
    ]  # fmt: skip
    if threads > 1:
        arms.append(replace(base, name="threads=1", threads=1))
    sizes = (int(b) for b in args.batch_sizes.split(","))
    arms += [replace(base, name=f"batch={b}", batch=b) for b in sizes if b != args.batch]
    return [arm for arm in arms if not (arm.compile and not args.compile)]


def make_step(model: Recognizer, arm: Arm) -> Callable[[], None]:
    """One training step of an arm's own copy of `model` on a fixed random batch."""
    model = copy.deepcopy(model).train()
    if arm.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    runner: Callable[[torch.Tensor], torch.Tensor] = model
    if arm.compile:
        runner = torch.compile(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(arm.batch)
    waves = 0.1 * torch.randn(arm.batch, SR, generator=generator)  # (batch, samples)
    labels = torch.randint(0, CLASSES, (arm.batch,), generator=generator)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=arm.bf16):
            loss = F.cross_entropy(runner(waves).float(), labels)
        loss.backward()
        optimizer.step()

    return step


def one_line(error: Exception) -> str:
    """An exception as one line of at most 300 characters (compile errors run to pages)."""
    return " ".join(f"{type(error).__name__}: {error}".split())[:300]


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def clips_per_second(step: Callable[[], None], batch: int, seconds: float) -> float:
    """Steps for at least `seconds` (at least one step); clips/s over them."""
    steps, start = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps * batch / elapsed


def time_arms(
    model: Recognizer, arms: Sequence[Arm], args: argparse.Namespace
) -> tuple[list[Timed], list[str]]:
    """Every arm's warm-up step (compile arms compile here), then interleaved rounds; and a
    line for each arm whose warm-up failed (torch.compile on an unsupported CPU), left out."""
    steps: list[tuple[Timed, Callable[[], None]]] = []
    failures = []
    for arm in arms:
        try:
            with threads(arm.threads):
                step = make_step(model, arm)
                start = time.perf_counter()
                step()
                first = time.perf_counter() - start
        except Exception as error:  # e.g. torch.compile on an unsupported CPU
            failures.append(f"# {arm.name}: failed, left out: {one_line(error)}")
            continue
        steps.append((Timed(arm, [], first), step))
    for _ in range(args.repeats):
        for timed, step in steps:
            with threads(timed.arm.threads):
                timed.rates.append(clips_per_second(step, timed.arm.batch, args.seconds_per_arm))
    return [timed for timed, _ in steps], failures


def conv_outputs(model: Recognizer, batch: int) -> list[torch.Tensor]:
    """The outputs of every 2-D convolution of the body in one forward pass."""
    outputs: list[torch.Tensor] = []
    convs = [m for m in model.body.modules() if isinstance(m, nn.Conv2d)]
    hooks = [c.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for c in convs]
    with torch.no_grad():
        model.eval()(torch.randn(batch, SR))
    for hook in hooks:
        hook.remove()
    return outputs


def layout_check(model: Recognizer) -> str:
    """How many of the body's convolution outputs are channels_last, as built and converted."""
    built = conv_outputs(copy.deepcopy(model), 2)
    converted = copy.deepcopy(model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    counts = [
        f"{sum(o.is_contiguous(memory_format=torch.channels_last) for o in outs)} of {len(outs)}"
        for outs in (built, conv_outputs(converted, 2))
    ]
    return (
        f"body conv outputs in channels_last: {counts[0]} as built, {counts[1]} after "
        f"model.to(memory_format=channels_last) (image {tuple(built[0].shape[2:])} frames x "
        "bands per channel)"
    )


def step_section(report: Report, args: argparse.Namespace, peak: float) -> dict[str, float]:
    """The step arms of every model; returns each model's fp32 baseline clips/s."""
    all_threads = torch.get_num_threads()
    report(
        f"\n## training step (forward, cross-entropy, backward, AdamW) on random 1 s clips: "
        f"{args.repeats} interleaved rounds, >= {args.seconds_per_arm:g} s per arm per round"
    )
    report(
        f"{'model':<16} {'arm':<27} {'batch':>5} {'thr':>3} {'clips/s':>8} {'ratio':>6} "
        f"{'rounds':>11} {'% mm':>6}"
    )
    baselines: dict[str, float] = {}
    notes: list[str] = []
    for spec in args.models.split(","):
        model = make_model(spec)
        macs = count_macs(model)  # per 1 s clip, forward
        flops_per_clip = 6 * macs
        results, failures = time_arms(model, step_arms(args, all_threads), args)
        notes += [f"# {spec}{failure[1:]}" for failure in failures]
        base = results[0]
        baselines[spec] = statistics.median(base.rates)
        for timed in results:
            rate = statistics.median(timed.rates)
            ratios = [r / b for r, b in zip(timed.rates, base.rates, strict=True)]
            share = 100 * rate * flops_per_clip / peak
            report(
                f"{spec:<16} {timed.arm.name:<27} {timed.arm.batch:>5} {timed.arm.threads:>3} "
                f"{rate:>8.1f} {rate / baselines[spec]:>6.2f} "
                f"{min(ratios):>5.2f}-{max(ratios):<5.2f} {share:>5.1f}%"
            )
        step = statistics.median(args.batch / r for r in base.rates)
        notes.append(f"# {spec}: {macs / 1e9:.3f} GMAC forward per clip; {layout_check(model)}")
        notes += [
            f"# {spec} {t.arm.name}: first step {t.first_step_s:.1f} s (compiling), "
            f"a baseline step {step:.2f} s"
            for t in results
            if t.arm.compile
        ]
    notes.append(
        "# % mm: clips/s x 6 x forward MACs per clip over the fp32 matmul rate above (on all "
        "threads, for the threads=1 arm too); rounds: the range of the per-round ratios"
    )
    if not args.compile:
        notes.append("# torch.compile arms: skipped (--quick or --no-compile)")
    for note in notes:
        report(note)
    return baselines


# ---- the Lightning loop -------------------------------------------------------------------


def fit_arms(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(name, config overrides): loader workers, then the trainer's options with the most."""
    workers = [int(w) for w in args.workers.split(",")]
    most = max(workers)
    arms = [(f"workers={w}", [f"trainer.num_workers={w}"]) for w in workers]
    fast = [f"trainer.num_workers={most}", "trainer.precision=bf16-mixed",
            "trainer.channels_last=true"]  # fmt: skip
    arms.append((f"workers={most}+bf16+channels_last", fast))
    if args.compile:
        arms.append((f"workers={most}+bf16+channels_last+compile", [*fast, "trainer.compile=true"]))
    return arms


def fit_once(config_name: str, overrides: list[str], store: Path, steps: int) -> dict[str, Any]:
    """One instrec pre-training run stopped after `steps` steps; gpu_check's timing of it."""
    from gpu_check import DataWait  # here: spawned loader workers need not import it

    from instrec.train.config import load_config
    from instrec.train.fit import pretrain

    config = load_config(config_name, overrides)
    probe = DataWait(steps, deadline=math.inf)
    with tempfile.TemporaryDirectory() as scratch, silenced():
        pretrain(config, store, Path(scratch) / "run", callbacks=[probe])
    # the first interval holds the first step (compiling, oneDNN's first calls): left out
    intervals, waits = probe.intervals[1:] or probe.intervals, probe.waits[1:] or probe.waits
    return {
        "clips_per_s": config.trainer.batch_size * len(intervals) / sum(intervals),
        "data_wait_fraction": sum(waits) / sum(intervals),
        "first_step_s": probe.epoch_waits[0],
        "precision": probe.setup["precision"],
    }


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """No progress bar, banner or Lightning info line in the report."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def fit_section(report: Report, args: argparse.Namespace, baseline: float) -> None:
    spec = args.models.split(",")[0]
    name, options = parse_model(spec)
    common = [f"model.name={name}", *(f"model.options.{k}={v}" for k, v in options.items()),
              f"trainer.batch_size={args.batch}", "trainer.accelerator=cpu", "trainer.devices=1",
              "trainer.epochs=1", "optim.warmup_epochs=1", "trainer.checkpoint_every_steps=100000",
              f"trainer.log_every_steps={max(1, args.fit_steps // 3)}"]  # fmt: skip
    arms = fit_arms(args)
    report(
        f"\n## end to end: instrec pretrain (config {args.fit_config}, its augmentations), {spec}, "
        f"batch {args.batch}, {args.fit_steps} steps, {args.fit_repeats} interleaved rounds"
    )
    with tempfile.TemporaryDirectory() as scratch:
        count = (args.fit_steps + 1) * args.batch  # notes: one epoch holds every step
        store = write_note_store(Path(scratch) / "notes", count, INSTRUMENTS)
        runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm, _ in arms}
        failures: list[str] = []
        for _ in range(args.fit_repeats):
            for arm, overrides in arms:
                if arm not in runs:
                    continue
                try:
                    settings = [*common, *overrides]
                    runs[arm].append(fit_once(args.fit_config, settings, store, args.fit_steps))
                except Exception as error:  # e.g. torch.compile on an unsupported CPU
                    failures.append(f"# {arm}: failed, left out: {one_line(error)}")
                    del runs[arm]
    report(
        f"{'arm':<32} {'clips/s':>8} {'vs step':>7} {'between steps':>13} {'first step s':>12} "
        f"{'precision':>10}"
    )
    for arm, summaries in runs.items():
        rate = statistics.median(s["clips_per_s"] for s in summaries)
        wait = statistics.median(s["data_wait_fraction"] for s in summaries)
        first = statistics.median(s["first_step_s"] for s in summaries)
        report(
            f"{arm:<32} {rate:>8.1f} {rate / baseline:>7.2f} {100 * wait:>12.1f}% {first:>12.1f} "
            f"{summaries[0]['precision']:>10}"
        )
    report(
        f"# clips/s from the second step on; vs step: over this model's fp32 step baseline "
        f"above ({baseline:.1f} clips/s, without augmentation or Lightning, AdamW where the run "
        "has Adam); between steps: share of that time from one step's end to the next's start "
        "(waiting for the loader, logging); first step s: from the epoch's start to its first "
        "batch (worker start-up)"
    )
    for failure in failures:
        report(failure)


# ---- bf16 accuracy ------------------------------------------------------------------------


@contextlib.contextmanager
def front_end_in_fp32(model: Recognizer) -> Iterator[None]:
    """Run `model`'s front end with autocast off (what the model would do if bf16 hurt it)."""
    frontend = model.frontend

    def forward(self: nn.Module, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            return type(self).forward(self, wave.float())

    frontend.forward = types.MethodType(forward, frontend)  # type: ignore[method-assign]
    try:
        yield
    finally:
        del frontend.forward


def conv_check(spec: str, waves: torch.Tensor) -> str:
    """The worst bf16 2-D convolution of `spec`'s body under autocast, against fp32 on the
    same bf16-rounded inputs and weights: its largest error over its output's largest
    value (oneDNN in torch 2.13 gets a stride-2 convolution with a one-column output
    wrong, which 8 or fewer sinc filters give)."""
    model = make_model(spec).train()
    errors: list[tuple[float, str]] = []

    def compare(name: str, conv: nn.Conv2d, inputs: tuple[torch.Tensor], out: torch.Tensor):
        x, w = inputs[0].bfloat16().float(), conv.weight.bfloat16().float()
        with torch.autocast("cpu", enabled=False):
            ref = F.conv2d(x, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)
        error = float((out.float() - ref).abs().max() / ref.abs().max().clamp(min=1e-30))
        errors.append((error if math.isfinite(error) else math.inf, f"{name} {tuple(out.shape)}"))

    for name, conv in model.body.named_modules():
        if isinstance(conv, nn.Conv2d):
            conv.register_forward_hook(lambda c, i, o, name=name: compare(name, c, i, o))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(waves)
    wrong = [(error, where) for error, where in errors if not error < WRONG]
    if wrong:  # the first in call order: what follows it starts from its wrong output
        return f"# {spec}: bf16 body convolutions WRONG from {wrong[0][1]}: error {wrong[0][0]:.3g}"
    error, where = max(errors)
    return f"# {spec}: bf16 body convolutions ok: worst error {error:.3g} ({where})"


def front_end_check(model: Recognizer, waves: torch.Tensor) -> str:
    """What autocast makes of the front end: its output dtype and its SNR against fp32."""
    frontend = model.frontend
    with torch.no_grad():
        reference = frontend(waves)  # (batch, filters, frames)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under = frontend(waves)
            kernels = frontend.kernels() if isinstance(frontend, SincConv) else None
    error = (under.float() - reference).pow(2).sum(dim=(0, 2))
    snr = 10 * torch.log10(reference.pow(2).sum(dim=(0, 2)) / error.clamp(min=1e-30))  # dB
    built = f"sinc kernels built in {dtype_name(kernels)}, " if kernels is not None else ""
    return (
        f"# front end under bf16 autocast: {built}output {dtype_name(under)}; output SNR "
        f"against fp32 per filter: median {snr.median():.1f} dB, worst {snr.min():.1f} dB"
    )


def dtype_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def train_accuracy(
    spec: str, mode: str, seed: int, data: tuple[torch.Tensor, ...], steps: int, batch: int
) -> dict[str, float]:
    """Train a fresh `spec` model for `steps` AdamW steps in `mode` (fp32, bf16,
    bf16+fp32 front end); the last tenth's mean training loss and fp32 validation scores."""
    train_x, train_y, valid_x, valid_y = data
    name, options = parse_model(spec)
    torch.manual_seed(seed)
    model = build_model(name, INSTRUMENTS, **options).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(seed)
    losses = []
    keep = front_end_in_fp32(model) if mode == "bf16+fp32 front end" else contextlib.nullcontext()
    with keep:
        for _ in range(steps):
            pick = torch.randint(0, len(train_x), (batch,), generator=order)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "fp32"):
                loss = F.cross_entropy(model(train_x[pick]).float(), train_y[pick])
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(chunk) for chunk in valid_x.split(64)])
    return {
        "train_loss": statistics.mean(losses[-max(1, steps // 10) :]),
        "valid_loss": float(F.cross_entropy(logits, valid_y)),
        "valid_acc": float((logits.argmax(1) == valid_y).float().mean()),
    }


def accuracy_section(report: Report, args: argparse.Namespace) -> None:
    spec = args.models.split(",")[0]
    batch = min(args.batch, 32)
    with tempfile.TemporaryDirectory() as scratch:
        count = INSTRUMENTS * args.accuracy_notes  # every 5th note validates
        store = ClipStore.open(
            write_note_store(Path(scratch) / "notes", count, INSTRUMENTS, valid_every=5)
        )
        data = []
        for split in ("train", "valid"):
            items = store.indices(split)
            data += [torch.from_numpy(store.batch(items)), torch.from_numpy(store.labels[items])]
    report(
        f"\n## bf16 accuracy: {spec} trained {args.accuracy_steps} AdamW steps (lr 1e-3, batch "
        f"{batch}) on {len(data[0])} synthetic notes of {INSTRUMENTS} instruments (class = "
        f"timbre, pitch random), validated in fp32 on {len(data[2])} others"
    )
    report(front_end_check(make_model(spec), data[2][:16]))
    for checked in dict.fromkeys([*args.models.split(","), WIDTH_ONE]):
        report(conv_check(checked, data[2][:4]))
    report(f"{'mode':<22} {'seed':>4} {'train loss':>10} {'valid loss':>10} {'valid acc':>9}")
    for seed in (int(s) for s in args.accuracy_seeds.split(",")):
        for mode in ("fp32", "bf16", "bf16+fp32 front end"):
            scores = train_accuracy(spec, mode, seed, tuple(data), args.accuracy_steps, batch)
            report(
                f"{mode:<22} {seed:>4} {scores['train_loss']:>10.4f} {scores['valid_loss']:>10.4f} "
                f"{scores['valid_acc']:>9.3f}"
            )
    report(f"# chance: valid acc {1 / INSTRUMENTS:.3f}, loss {math.log(INSTRUMENTS):.3f}")


# ---- the run ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", help=f"MODEL[/SINC_FILTERS],... (default {FULL['models']})")
    parser.add_argument("--batch", type=int, help=f"clips per step (default {FULL['batch']})")
    parser.add_argument("--batch-sizes", help=f"batch arms (default {FULL['batch_sizes']})")
    parser.add_argument("--repeats", type=int, help=f"interleaved rounds ({FULL['repeats']})")
    parser.add_argument(
        "--seconds-per-arm", type=float, help=f"per arm and round ({FULL['seconds_per_arm']})"
    )
    parser.add_argument(
        "--fit-config", default="small_pretrain", help="end-to-end run: a pre-training config"
    )
    parser.add_argument("--fit-steps", type=int, help=f"per Lightning run ({FULL['fit_steps']})")
    parser.add_argument("--fit-repeats", type=int, help=f"rounds of them ({FULL['fit_repeats']})")
    parser.add_argument("--workers", help=f"loader workers to run ({FULL['workers']})")
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile arms")
    parser.add_argument("--accuracy", action="store_true", help="add the fp32/bf16 training check")
    parser.add_argument(
        "--accuracy-steps", type=int, help=f"steps per training ({FULL['accuracy_steps']})"
    )
    parser.add_argument("--accuracy-seeds", help=f"seeds to train ({FULL['accuracy_seeds']})")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no compile (CI smoke)")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key, None) is None:  # accuracy_notes has no option
            setattr(args, key, value)
    args.compile = not (args.quick or args.no_compile)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    report = Report()
    started = time.perf_counter()
    peak = header(report, args)
    baselines = step_section(report, args, peak)
    fit_section(report, args, baselines[args.models.split(",")[0]])
    if args.accuracy:
        accuracy_section(report, args)
    report(
        f"\n# load average after {os.getloadavg()[0]:.1f}; "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    if args.out:
        args.out.write_text(report.text())


if __name__ == "__main__":
    main()
