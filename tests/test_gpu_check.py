"""benchmarks/gpu_check: the CPU run holds every part; a part over budget or broken is
marked so and the rest still runs; results are never written over; no GPU is said plainly.

The GPU run itself needs a GPU; `--cpu` runs the same parts with tiny sizes, which is what
CI can check.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("tests", "throughput", "augmentation", "training", "evaluation", "memory")


@pytest.fixture
def gpu_check(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gpu_check

    return gpu_check


def cpu_check(gpu_check: Any, out: Path, scratch: Path, **sizes: Any) -> Any:
    results = {
        "mode": "cpu",
        "started": "now",
        "command": "test",
        "environment": gpu_check.environment(torch.device("cpu")),
        "parts": {},
    }
    out.mkdir()
    sized = dataclasses.replace(gpu_check.CPU, **sizes)
    return gpu_check.Check(torch.device("cpu"), sized, out, scratch, results)


@pytest.mark.slow
def test_the_cpu_run_measures_every_part_into_one_folder(tmp_path: Path) -> None:
    out = tmp_path / "check"
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks/gpu_check.sh"), "--cpu", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "summary.md"]
    results = json.loads((out / "results.json").read_text())
    parts = results["parts"]
    assert tuple(parts) == PARTS and results["mode"] == "cpu"
    statuses = {name: part["status"] for name, part in parts.items()}
    assert statuses == {**dict.fromkeys(PARTS, "ok"), "memory": "not applicable"}
    assert "1 skipped" in parts["tests"]["result"]  # the CUDA test was found, and skipped
    rows = parts["throughput"]["rows"]
    assert {(r["model"], r["batch"], r["dtype"]) for r in rows} == {
        (m, b, d) for m in ("resnet34", "sharesnet18") for b in (4, 2) for d in ("bf16", "fp32")
    }
    assert all(r["clips_per_s"] > 0 and r["percent_of_matmul"] > 0 for r in rows)
    assert set(parts["augmentation"]["share_of_step"]) == {"bf16", "fp32"}
    training = parts["training"]
    assert training["steps"] == 6 and 0 <= training["data_wait_fraction"] < 1
    evaluation = parts["evaluation"]
    assert evaluation["model"] == "trained by the training part"
    assert evaluation["agreement"]["within_tolerance"]
    assert evaluation["predict"]["cpu"]["audio_seconds_per_s"] > 0
    summary = (out / "summary.md").read_text()
    assert all(f"## {name}" in summary for name in PARTS)


def test_a_part_over_budget_is_cut_short_and_a_broken_one_failed_and_both_recorded(
    gpu_check: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hangs(check: Any, record: dict[str, Any], deadline: float) -> None:
        record["measured"] = 1.0
        time.sleep(30)

    def breaks(check: Any, record: dict[str, Any], deadline: float) -> None:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setitem(gpu_check.PARTS, "tests", hangs)
    monkeypatch.setitem(gpu_check.PARTS, "throughput", breaks)
    budgets = {**gpu_check.CPU.budgets, "tests": 0.2, "throughput": 5}
    check = cpu_check(gpu_check, tmp_path / "out", tmp_path, budgets=budgets, grace_s=0.2)
    start = time.perf_counter()
    gpu_check.run_part(check, "tests")
    assert time.perf_counter() - start < 5
    gpu_check.run_part(check, "throughput")
    results = json.loads((tmp_path / "out/results.json").read_text())
    hung, broken = results["parts"]["tests"], results["parts"]["throughput"]
    assert hung["status"] == "cut short" and hung["measured"] == 1.0  # kept what it had
    assert broken["status"] == "failed" and "illegal memory access" in broken["error"]
    summary = (tmp_path / "out/summary.md").read_text()
    assert "| tests | cut short |" in summary and "| throughput | failed |" in summary


def test_training_stops_at_its_deadline_and_says_so(gpu_check: Any) -> None:
    probe = gpu_check.DataWait(steps=300, deadline=time.perf_counter() - 1)
    trainer = types.SimpleNamespace(global_step=1, should_stop=False)
    probe.on_train_epoch_start(trainer, None)
    probe.on_train_batch_start(trainer, None, None, 0)
    probe.on_train_batch_end(trainer, None, {"loss": torch.tensor(2.0)}, None, 0)
    assert trainer.should_stop and probe.cut_short
    assert probe.summary(batch=8)["loss_last_fifth"] == 2.0


def test_results_are_never_written_over(gpu_check: Any, tmp_path: Path) -> None:
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "summary.md").write_text("an earlier run\n")
    assert gpu_check.main(["--cpu", "--out", str(out)]) == 2
    assert (out / "summary.md").read_text() == "an earlier run\n"
    assert sorted(p.name for p in out.iterdir()) == ["summary.md"]


def test_without_a_gpu_the_gpu_run_says_so_in_one_line(
    gpu_check: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 2
    message = capsys.readouterr().err.strip()
    assert message == "gpu_check: no CUDA device here; use --cpu for the CPU run"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_cuda_tests_are_marked_so_the_check_can_run_exactly_them() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "cuda", "--collect-only", "-q",
         "-p", "no:cacheprovider", "tests/test_augment.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "test_augment.py::test_runs_on_the_batch_device" in done.stdout
    assert "1/" in done.stdout.splitlines()[-1]  # only it: "1/N tests collected"
