"""GPU check: what the paper's run needs from a GPU, measured in one go and written down.

Parts, each with its own time budget (a part over budget is cut short and marked so; what
it measured until then is kept):
  tests         the CUDA-only tests (pytest -m cuda), output captured
  throughput    training steps (forward, loss, backward, Adam) of resnet34 and sharesnet18
                at the paper's batch sizes (128 pre-training, 64 fine-tuning), bf16
                autocast and fp32: clips/s and % of a large matmul's rate in the same dtype
  augmentation  the batch augmentation's share of a pre-training step
  training      a few hundred steps of the pre-training preset through instrec's own
                Lightning run on a synthetic note store: the share of step time spent
                waiting for the next batch
  evaluation    instrec.evaluate on the GPU and on the CPU: speed and agreement of the
                probabilities; predict (instrec.tagging) speed, and whether it can use a GPU
  memory        peak GPU memory of every part (torch.cuda.max_memory_allocated)
Everything lands in one folder as summary.md and results.json, rewritten after each part,
so a run stopped from outside keeps what it finished. `--cpu` runs the same parts with tiny
sizes on the CPU (for CI: tests/test_gpu_check.py).

    bash benchmarks/gpu_check.sh [--cpu] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import augment_throughput
import lightning as L
import numpy as np
import torch
from loader_throughput import write_note_store
from model_throughput import counted_flops, median_seconds

from instrec.atomic import write_text_atomic
from instrec.data.store import ClipStore
from instrec.errors import InstrecError
from instrec.evaluate import evaluate_model
from instrec.model.io import load_model_file, save_model_file
from instrec.model.zoo import build_model, count_macs
from instrec.tagging import load_model
from instrec.tagging.tagger import Tagger
from instrec.tagging.torch_engine import TorchEngine
from instrec.train.config import Config, load_config
from instrec.train.fit import pretrain

ROOT = Path(__file__).resolve().parent.parent
SR = 16_000
NSYNTH_CLASSES = augment_throughput.NSYNTH_INSTRUMENTS  # the pre-training head
PROBABILITY_TOLERANCE = 0.01  # largest |p_gpu - p_cpu| accepted (cuDNN runs fp32 as TF32)
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass(frozen=True)
class Sizes:
    """What one mode runs: the paper's sizes on a GPU, tiny ones on the CPU (for CI)."""

    base_config: str  # the built-in config every part starts from
    batches: tuple[int, ...]  # pre-training, fine-tuning
    repeats: int  # timed steps per throughput row (after one warm-up)
    matmul_size: int  # n of the n x n x n reference matmul
    train_steps: int
    notes: int  # in the synthetic store
    instruments: int
    overrides: tuple[str, ...]  # config changes of the training part
    predict_seconds: float  # length of each array predict tags
    predict_arrays: int
    budgets: dict[str, float]  # part -> seconds
    grace_s: float  # a part is stopped outright this long after its budget
    threads: int | None  # torch CPU threads (None: torch's default)
    models: tuple[str, ...] = ("resnet34", "sharesnet18")


GPU = Sizes(
    base_config="pretrain",
    batches=(128, 64),
    repeats=20,
    matmul_size=8192,
    train_steps=300,
    notes=4096,
    instruments=64,
    overrides=("trainer.devices=1",),  # more would make Lightning start this script again per GPU
    predict_seconds=30.0,
    predict_arrays=4,
    budgets={
        "tests": 50,
        "throughput": 75,
        "augmentation": 20,
        "training": 110,
        "evaluation": 45,
        "memory": 5,
    },
    grace_s=8,
    threads=None,
)
CPU = Sizes(
    base_config="tiny_pretrain",
    batches=(4, 2),
    repeats=1,
    matmul_size=256,
    train_steps=6,
    notes=48,
    instruments=4,
    overrides=(
        "trainer.batch_size=8",
        "trainer.num_workers=0",
        "trainer.accelerator=cpu",
        "trainer.log_every_steps=1",
    ),
    predict_seconds=3.0,
    predict_arrays=2,
    budgets={
        "tests": 40,
        "throughput": 30,
        "augmentation": 20,
        "training": 40,
        "evaluation": 30,
        "memory": 5,
    },
    grace_s=5,
    threads=1,  # tiny tensors: one thread is fastest, and immune to other jobs' load
)


class OverBudget(Exception):
    """Raised inside a part when its hard limit (budget + grace) passes."""


@contextlib.contextmanager
def hard_limit(seconds: float) -> Iterator[None]:
    """Raise OverBudget in this (main) thread after `seconds`, whatever the part is doing."""

    def expire(signum: int, frame: object) -> None:
        raise OverBudget

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Check:
    """One run: its device, sizes, scratch folder, output folder and results so far."""

    device: torch.device
    sizes: Sizes
    out: Path
    scratch: Path
    results: dict[str, Any]
    step_cache: dict[tuple[str, int, str], float] = field(default_factory=dict)
    model_file: Path | None = None  # written by the training part

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    def config(self, *overrides: str) -> Config:
        return load_config(self.sizes.base_config, list(overrides))

    def step_seconds(self, model: str, batch: int, dtype: str) -> float:
        """Seconds of one training step of `model` (its config's options, NSynth's head);
        measured once per (model, batch, dtype) and shared by the parts."""
        key = (model, batch, dtype)
        if key not in self.step_cache:
            config = self.config(f"model.name={model}")
            self.step_cache[key] = augment_throughput.training_step_seconds(
                config, self.device, batch, self.sizes.repeats, bf16=dtype == "bf16"
            )
        return self.step_cache[key]

    def note_store(self) -> Path:
        """The synthetic note store of the training and evaluation parts (written once)."""
        path = self.scratch / "notes"
        if not path.exists():
            write_note_store(path, self.sizes.notes, self.sizes.instruments, valid_every=20)
        return path

    def write(self) -> None:
        """results.json and summary.md as they stand (after every part)."""
        write_text_atomic(self.out / "results.json", json.dumps(self.results, indent=2) + "\n")
        write_text_atomic(self.out / "summary.md", summary(self.results))


# ---- the parts --------------------------------------------------------------------------


def run_tests(check: Check, record: dict[str, Any], deadline: float) -> None:
    """pytest -m cuda over the test files that carry the marker, output captured."""
    files = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").glob("test_*.py")
        if "mark.cuda" in path.read_text(encoding="utf-8")
    )
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"]
    record["command"] = " ".join(["python", *command[1:], *files])
    try:
        done = subprocess.run(
            [*command, *files],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=max(1.0, deadline - time.perf_counter()),
        )
    except subprocess.TimeoutExpired as expired:
        record["status"] = "cut short"
        record["output"] = _text(expired.stdout)[-6000:]
        return
    record["returncode"] = done.returncode
    record["output"] = (done.stdout + done.stderr)[-6000:]
    lines = done.stdout.strip().splitlines()
    record["result"] = lines[-1] if lines else ""
    if done.returncode != 0:
        record["status"] = "failed"


def run_throughput(check: Check, record: dict[str, Any], deadline: float) -> None:
    """Training-step clips/s per (model, batch, dtype), against the matmul rate."""
    n = check.sizes.matmul_size
    record["matmul"] = {name: matmul_rate(check.device, dtype, n) for name, dtype in DTYPES.items()}
    record["rows"] = rows = []
    for name in check.sizes.models:
        config = check.config(f"model.name={name}")
        model = build_model(name, NSYNTH_CLASSES, **config.model.options)
        macs = count_macs(model)
        flops = counted_flops(model, 2, SR, backward=True) / 2  # forward + backward, a clip
        for batch in check.sizes.batches:
            for dtype in DTYPES:
                if time.perf_counter() > deadline:
                    record["status"] = "cut short"
                    return
                reset_peak_memory(check)
                seconds = check.step_seconds(name, batch, dtype)
                rate = batch / seconds
                matmul = record["matmul"][dtype]["flops_per_s"]
                rows.append(
                    {
                        "model": name,
                        "batch": batch,
                        "dtype": dtype,
                        "step_ms": 1000 * seconds,
                        "clips_per_s": rate,
                        "macs_per_clip": macs,
                        "train_flops_per_clip": flops,
                        "percent_of_matmul": 100 * rate * flops / matmul,
                        "peak_gpu_memory_bytes": peak_memory(check),
                    }
                )


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int) -> dict[str, Any]:
    """FLOP/s of an n x n x n matmul in `dtype`: this device's practical rate for it."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = median_seconds(lambda: a @ b, device, warmup=2, repeats=5)
    return {"flops_per_s": 2 * n**3 / seconds, "how": f"{n}x{n} {dtype} matmul"}


def run_augmentation(check: Check, record: dict[str, Any], deadline: float) -> None:
    """BatchAugmenter at the preset's settings against a pre-training step of its model."""
    config = check.config()
    batch = check.sizes.batches[0]
    timed = augment_throughput.benchmark_batch(
        check.device, batch, check.sizes.repeats, config.augment
    )
    label, seconds = next(iter(timed.items()))
    record.update(batch=batch, setting=label, ms_per_batch={k: 1000 * v for k, v in timed.items()})
    record["share_of_step"] = {}
    for dtype in DTYPES:
        if time.perf_counter() > deadline:
            record["status"] = "cut short"
            return
        step = check.step_seconds(config.model.name, batch, dtype)
        record["share_of_step"][dtype] = seconds / step
    record["concatenation_ms_per_note"] = 1000 * augment_throughput.benchmark_concatenation(50)


class DataWait(L.Callback):
    """Times each training step and the part of it spent waiting for data: from the end of
    one step (on_train_batch_end) to the start of the next (on_train_batch_start, once the
    batch has arrived and moved to the device). Stops the run after `steps` steps or at
    `deadline`. An epoch's first wait (worker start-up) is kept apart."""

    def __init__(self, steps: int, deadline: float) -> None:
        self.steps, self.deadline = steps, deadline
        self.waits: list[float] = []  # s, steady state
        self.intervals: list[float] = []  # s, start of a step to the start of the next
        self.epoch_waits: list[float] = []  # s, epoch start to its first batch
        self.losses: list[float] = []
        self.cut_short = False
        self.setup: dict[str, Any] = {}
        self._epoch_start = self._start = self._end = 0.0

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.setup = {
            "precision": str(trainer.precision),
            "strategy": type(trainer.strategy).__name__,
            "devices": trainer.num_devices,
            "sync_batchnorm_layers": sum(
                isinstance(m, torch.nn.SyncBatchNorm) for m in module.modules()
            ),
        }

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._epoch_start, self._end = time.perf_counter(), 0.0

    def on_train_batch_start(self, trainer: L.Trainer, *_: Any) -> None:
        now = time.perf_counter()
        if self._end:
            self.waits.append(now - self._end)
            self.intervals.append(now - self._start)
        else:
            self.epoch_waits.append(now - self._epoch_start)
        self._start = now

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, outputs: Any, *_: Any) -> None:
        self.losses.append(float(outputs["loss"]))
        self._end = time.perf_counter()
        if time.perf_counter() > self.deadline:
            self.cut_short = trainer.should_stop = True
        if trainer.global_step >= self.steps:
            trainer.should_stop = True

    def summary(self, batch: int) -> dict[str, Any]:
        busy = sum(self.intervals)
        n = max(1, len(self.losses) // 5)
        first, last = self.losses[:n], self.losses[-n:]
        return {
            **self.setup,
            "steps": len(self.losses),
            "clips_per_s": batch * len(self.intervals) / busy if busy else None,
            "data_wait_fraction": sum(self.waits) / busy if busy else None,
            "median_step_ms": 1000 * statistics.median(self.intervals) if self.intervals else None,
            "median_wait_ms": 1000 * statistics.median(self.waits) if self.waits else None,
            "epoch_start_waits_s": self.epoch_waits,
            "loss_first_fifth": statistics.mean(first) if first else None,
            "loss_last_fifth": statistics.mean(last) if last else None,
        }


def run_training(check: Check, record: dict[str, Any], deadline: float) -> None:
    """The preset's pre-training through instrec.train.fit.pretrain, its data wait timed."""
    store = check.note_store()
    base = check.config(*check.sizes.overrides)
    per_epoch = ClipStore.open(store).indices("train").size // base.trainer.batch_size
    epochs = max(1, math.ceil(check.sizes.train_steps / per_epoch))
    config = check.config(
        *check.sizes.overrides,
        f"trainer.epochs={epochs}",
        f"optim.warmup_epochs={min(base.optim.warmup_epochs, epochs)}",
    )
    probe = DataWait(check.sizes.train_steps, deadline)
    record.update(
        model=config.model.name,
        batch=config.trainer.batch_size,
        num_workers=config.trainer.num_workers,
        epochs_planned=epochs,
    )
    check.model_file = pretrain(config, store, check.scratch / "run", callbacks=[probe])
    record.update(probe.summary(config.trainer.batch_size))
    if probe.cut_short:
        record["status"] = "cut short"


def run_evaluation(check: Check, record: dict[str, Any], deadline: float) -> None:
    """evaluate_model on each device, probabilities compared; then predict's speed."""
    model_file = check.model_file or fresh_model_file(check)
    record["model"] = "trained by the training part" if check.model_file else "untrained"
    store = check.note_store()
    devices = ("cuda", "cpu") if check.on_gpu else ("cpu", "cpu")
    probabilities: list[np.ndarray] = []
    record["devices"] = []
    for k, device in enumerate(devices):
        if time.perf_counter() > deadline:
            record["status"] = "cut short"
            return
        out = check.scratch / f"evaluation-{k}-{device}"
        start = time.perf_counter()
        metrics = evaluate_model(
            model_file, store, out, threshold_from=0.5, split="valid", device=device, tsne_points=0
        )
        seconds = time.perf_counter() - start
        items = int(metrics["data"]["items"])
        record["devices"].append(
            {"device": device, "items": items, "seconds": seconds, "items_per_s": items / seconds}
        )
        probabilities.append(read_probabilities(out / "predictions.csv"))
    difference = np.abs(probabilities[0] - probabilities[1])
    record["agreement"] = {
        "max_abs_difference": float(difference.max()),
        "tolerance": PROBABILITY_TOLERANCE,
        "within_tolerance": bool(difference.max() <= PROBABILITY_TOLERANCE),
        "decisions_differing_at_0.5": int(
            ((probabilities[0] > 0.5) != (probabilities[1] > 0.5)).sum()
        ),
    }
    if not record["agreement"]["within_tolerance"]:
        record["status"] = "failed"
    record["predict"] = time_predict(check, model_file, store)


def time_predict(check: Check, model_file: Path, store: Path) -> dict[str, Any]:
    """Tag arrays of predict_seconds with load_model(...).predict on the CPU; on a GPU, try
    the torch engine with its model moved there and report what happens."""
    clips = ClipStore.open(store)
    per_array = round(check.sizes.predict_seconds)
    arrays = [
        clips.batch(np.arange(k * per_array, (k + 1) * per_array)).reshape(-1)
        for k in range(check.sizes.predict_arrays)
    ]
    tagger = load_model(model_file)
    start = time.perf_counter()
    for wave in arrays:
        tagger.predict(wave, sr=SR)
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {
        "cpu": {
            "arrays": len(arrays),
            "seconds_each": check.sizes.predict_seconds,
            "audio_seconds_per_s": len(arrays) * check.sizes.predict_seconds / seconds,
        },
    }
    if check.on_gpu:
        result["gpu"] = predict_on_gpu(model_file, arrays[0])
    return result


def predict_on_gpu(model_file: Path, wave: np.ndarray) -> str:
    """Whether the torch engine runs a model that sits on the GPU (load_model has no device)."""
    loaded = load_model_file(model_file)
    engine = TorchEngine.from_model(loaded.model.to("cuda"), loaded.classes, loaded.threshold)
    try:
        Tagger(engine).predict(wave, sr=SR)
    except Exception as error:  # the finding is the error itself
        return f"not supported: {type(error).__name__}: {str(error).splitlines()[0]}"
    return "ran"


def fresh_model_file(check: Check) -> Path:
    """An untrained model of the preset, for evaluation when training did not finish."""
    config = check.config()
    classes = [f"ins{k}" for k in range(check.sizes.instruments)]
    model = build_model(config.model.name, len(classes), **config.model.options)
    return save_model_file(check.scratch / "untrained.pt", model, classes, 0.5)


def read_probabilities(path: Path) -> np.ndarray:
    """(items, classes) p_<code> columns of an evaluation's predictions.csv."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = [name for name in rows[0] if name.startswith("p_")]
    return np.array([[float(row[c]) for c in columns] for row in rows])


def run_memory(check: Check, record: dict[str, Any], deadline: float) -> None:
    """Peak GPU memory of each part and throughput row, against the device's memory."""
    if not check.on_gpu:
        record["status"] = "not applicable"
        record["note"] = "CPU run: no GPU memory to measure"
        return
    parts = check.results["parts"]
    record["by_part"] = {
        name: part.get("peak_gpu_memory_bytes") for name, part in parts.items() if name != "memory"
    }
    record["peak_bytes"] = max((v for v in record["by_part"].values() if v), default=None)
    record["device_bytes"] = torch.cuda.get_device_properties(check.device).total_memory


PARTS: dict[str, Callable[[Check, dict[str, Any], float], None]] = {
    "tests": run_tests,
    "throughput": run_throughput,
    "augmentation": run_augmentation,
    "training": run_training,
    "evaluation": run_evaluation,
    "memory": run_memory,
}


def run_part(check: Check, name: str) -> None:
    """One part under its budget; a failure is recorded and the next part still runs."""
    budget = check.sizes.budgets[name]
    record: dict[str, Any] = {"status": "ok", "budget_s": budget}
    check.results["parts"][name] = record
    reset_peak_memory(check)
    start = time.perf_counter()
    print(f"gpu_check: {name} (budget {budget:g} s)", file=sys.stderr, flush=True)
    try:
        with hard_limit(budget + check.sizes.grace_s):
            PARTS[name](check, record, start + budget)
    except OverBudget:
        record["status"] = "cut short"
        record["note"] = f"stopped at its hard limit, {check.sizes.grace_s:g} s past the budget"
    except Exception as error:
        record["status"] = "failed"
        record["error"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc()[-4000:]
    record["seconds"] = time.perf_counter() - start
    record["peak_gpu_memory_bytes"] = peak_memory(check)
    check.write()


def reset_peak_memory(check: Check) -> None:
    if check.on_gpu:
        torch.cuda.synchronize(check.device)
        torch.cuda.reset_peak_memory_stats(check.device)


def peak_memory(check: Check) -> int | None:
    return torch.cuda.max_memory_allocated(check.device) if check.on_gpu else None


# ---- the summary --------------------------------------------------------------------------


def summary(results: dict[str, Any]) -> str:
    """summary.md: a table of the parts, then each part's figures."""
    env, parts = results["environment"], results["parts"]
    lines = [
        f"# GPU check: {env['device_name']} ({results['mode']} mode)",
        "",
        f"Started {results['started']} by `{results['command']}`; torch {env['torch']}, "
        f"CUDA {env['cuda']}, cuDNN {env['cudnn']}, Lightning {env['lightning']}, "
        f"{env['cpu_count']} CPU cores. cuDNN TF32 {env['cudnn_allow_tf32']}, matmul TF32 "
        f"{env['matmul_allow_tf32']}, cudnn.benchmark {env['cudnn_benchmark']}.",
        "",
        "| part | status | seconds | budget s | peak GPU memory |",
        "|---|---|---|---|---|",
    ]
    for name, part in parts.items():
        seconds = f"{part['seconds']:.1f}" if "seconds" in part else "running"
        lines.append(
            f"| {name} | {part['status']} | {seconds} | {part['budget_s']:g} | "
            f"{_gib(part.get('peak_gpu_memory_bytes'))} |"
        )
    for name, part in parts.items():
        lines += ["", f"## {name}", ""]
        if "error" in part:
            lines.append(f"Failed: `{part['error']}`")
        lines += SECTIONS[name](part)
    return "\n".join(lines) + "\n"


def _tests_section(part: dict[str, Any]) -> list[str]:
    return [
        f"`{part.get('command', '')}`: {part.get('result', '')}",
        "",
        "```",
        part.get("output", "").strip(),
        "```",
    ]


def _throughput_section(part: dict[str, Any]) -> list[str]:
    lines = [
        f"Matmul reference: {_tflops(v['flops_per_s'])} TFLOP/s ({v['how']})"
        for v in part.get("matmul", {}).values()
    ]
    lines += [
        "",
        "| model | batch | dtype | step ms | clips/s | GMAC/clip | % of matmul | peak GPU memory |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in part.get("rows", []):
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['dtype']} | {r['step_ms']:.1f} | "
            f"{r['clips_per_s']:,.0f} | {r['macs_per_clip'] / 1e9:.2f} | "
            f"{r['percent_of_matmul']:.1f} | {_gib(r['peak_gpu_memory_bytes'])} |"
        )
    lines.append(
        "\nSteps: forward, soft-target cross-entropy, backward, Adam (as training runs "
        "them; no torch.compile, no channels_last). % of matmul: counted "
        "forward+backward FLOPs x clips/s over the matmul's FLOP/s in the same dtype "
        "(fp32 convolutions run as TF32 when cuDNN TF32 is on)."
    )
    return lines


def _augmentation_section(part: dict[str, Any]) -> list[str]:
    lines = [
        f"Batch {part.get('batch')}, {part.get('setting')}: "
        f"{next(iter(part.get('ms_per_batch', {}).values()), float('nan')):.1f} ms"
    ]
    lines += [
        f"- share of a {dtype} step: {100 * share:.1f} %"
        for dtype, share in part.get("share_of_step", {}).items()
    ]
    if "concatenation_ms_per_note" in part:
        lines.append(
            f"- note concatenation (numpy, in the loader, per note): "
            f"{part['concatenation_ms_per_note']:.3f} ms"
        )
    return lines


def _training_section(part: dict[str, Any]) -> list[str]:
    keys = (
        "model",
        "batch",
        "num_workers",
        "precision",
        "strategy",
        "devices",
        "sync_batchnorm_layers",
        "steps",
        "clips_per_s",
        "data_wait_fraction",
        "median_step_ms",
        "median_wait_ms",
        "epoch_start_waits_s",
        "loss_first_fifth",
        "loss_last_fifth",
    )
    return [f"- {key}: {_plain(part[key])}" for key in keys if key in part]


def _evaluation_section(part: dict[str, Any]) -> list[str]:
    lines = [f"Model: {part.get('model')}."]
    lines += [
        f"- evaluate on {d['device']}: {d['items']} items in {d['seconds']:.2f} s "
        f"({d['items_per_s']:,.0f} items/s)"
        for d in part.get("devices", [])
    ]
    if "agreement" in part:
        a = part["agreement"]
        lines.append(
            f"- agreement: max |dp| {a['max_abs_difference']:.2e} (tolerance "
            f"{a['tolerance']:g}), {a['decisions_differing_at_0.5']} decisions differ"
        )
    predict = part.get("predict", {})
    if "cpu" in predict:
        lines.append(
            f"- predict on the CPU: {predict['cpu']['audio_seconds_per_s']:.1f} s of "
            f"audio per second"
        )
    if "gpu" in predict:
        lines.append(f"- predict on the GPU: {predict['gpu']}")
    return lines


def _memory_section(part: dict[str, Any]) -> list[str]:
    if "by_part" not in part:
        return [part.get("note", "")]
    lines = [f"- {name}: {_gib(value)}" for name, value in part["by_part"].items()]
    lines.append(f"- peak {_gib(part['peak_bytes'])} of {_gib(part['device_bytes'])}")
    return lines


SECTIONS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "tests": _tests_section,
    "throughput": _throughput_section,
    "augmentation": _augmentation_section,
    "training": _training_section,
    "evaluation": _evaluation_section,
    "memory": _memory_section,
}


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**30:.2f} GiB"


def _tflops(value: float) -> str:
    return f"{value / 1e12:.3g}"


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else (output or "")


# ---- the run ------------------------------------------------------------------------------


def environment(device: torch.device) -> dict[str, Any]:
    on_gpu = device.type == "cuda"
    return {
        "device_name": torch.cuda.get_device_name(device)
        if on_gpu
        else f"CPU ({platform.machine()})",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if on_gpu else None,
        "lightning": L.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


def output_folder(
    given: Path | None, cpu: bool, device_name: str, started: datetime.datetime
) -> Path:
    """--out, or benchmarks/results/gpu_check/<date>-<device>/ (a GPU run) or a new temporary
    folder (--cpu); an existing non-empty folder is refused, never written over."""
    if given is None and cpu:
        return Path(tempfile.mkdtemp(prefix="gpu_check-cpu-"))
    if given is None:
        slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")
        given = ROOT / "benchmarks/results/gpu_check" / f"{started:%Y-%m-%d-%H%M}-{slug}"
    if given.exists() and (not given.is_dir() or any(given.iterdir())):
        raise InstrecError(
            f"{given}: already exists and is not an empty folder; give another --out"
        )
    try:
        given.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InstrecError(f"{given}: cannot create this folder ({error.strerror})") from None
    return given


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU (CI)")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for summary.md and results.json"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; use --cpu for the CPU run", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.cpu else "cuda")
    started = datetime.datetime.now(datetime.UTC)
    env = environment(device)
    try:
        out = output_folder(args.out, args.cpu, env["device_name"], started)
    except InstrecError as error:
        print(f"gpu_check: {error}", file=sys.stderr)
        return 2
    results = {
        "mode": "cpu" if args.cpu else "gpu",
        "started": f"{started:%Y-%m-%d %H:%M} UTC",
        "command": " ".join(
            ["benchmarks/gpu_check.sh", *(argv if argv is not None else sys.argv[1:])]
        ),
        "environment": env,
        "parts": {},
    }
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as scratch:
        sizes = CPU if args.cpu else GPU
        if sizes.threads:
            torch.set_num_threads(sizes.threads)
        check = Check(device, sizes, out, Path(scratch), results)
        for name in PARTS:
            run_part(check, name)
    failed = [name for name, part in results["parts"].items() if part["status"] == "failed"]
    print(
        f"gpu_check: wrote {out / 'summary.md'} and {out / 'results.json'}"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
