"""Training speed options: benchmarks/train_throughput.py reports what it measured, and the
trainer's channels_last / compile / bf16-mixed settings reach the model and the Trainer.

The benchmark's --quick run is a smoke run (tiny sizes, no torch.compile): its numbers are
noise, so the test checks the report's structure and that every ratio and share is
computed from the numbers printed beside it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from instrec.errors import InstrecError
from instrec.train.config import load_config
from instrec.train.fit import pretrain

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"[-\d.]+"


# ---- the benchmark ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(stdout, --out file) of one quick run with the accuracy check, on one thread: two
    threads on cores that other jobs share wait on each other at every operation (measured
    here: 30 x slower on these tiny sizes)."""
    out = tmp_path_factory.mktemp("bench") / "report.txt"
    command = [sys.executable, "benchmarks/train_throughput.py", "--quick", "--accuracy",
               "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, out.read_text()


def section(report: str, title: str) -> list[str]:
    """The lines of the report section whose heading starts with `title`."""
    parts = re.split(r"\n(?=## )", report)
    (found,) = [p for p in parts if p.startswith(f"## {title}")]
    return found.splitlines()


def matching(lines: list[str], pattern: str) -> list[re.Match[str]]:
    return [m for line in lines if (m := re.fullmatch(pattern, line))]


def within_rounding(printed: float, numerator: float, denominator: float, decimals: int) -> bool:
    """Whether `printed` (rounded to `decimals`) can be numerator / denominator, each of
    those printed to one decimal."""
    low = (numerator - 0.05) / (denominator + 0.05)
    high = (numerator + 0.05) / max(denominator - 0.05, 1e-9)
    slack = 0.5 * 10**-decimals
    return low - slack <= printed <= high + slack


def test_a_full_run_times_each_option_alone_and_together_threads_and_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import train_throughput as bench

    arms = bench.step_arms(bench.parse_args([]), threads=2)
    assert [(arm.name, arm.batch, arm.threads) for arm in arms] == [
        ("fp32", 64, 2), ("channels_last", 64, 2), ("compile", 64, 2),
        ("channels_last+compile", 64, 2), ("bf16", 64, 2), ("bf16+channels_last", 64, 2),
        ("bf16+channels_last+compile", 64, 2), ("threads=1", 64, 1),
        ("batch=32", 32, 2), ("batch=128", 128, 2), ("batch=256", 256, 2),
    ]  # fmt: skip
    for arm in arms:
        options = {"bf16": arm.bf16, "channels_last": arm.channels_last, "compile": arm.compile}
        assert {name for name, on in options.items() if on} == set(arm.name.split("+")) - {
            "fp32",
            "threads=1",
            "batch=32",
            "batch=128",
            "batch=256",
        }
    plain = bench.step_arms(bench.parse_args(["--no-compile"]), threads=1)
    assert [arm.name for arm in plain] == ["fp32", "channels_last", "bf16", "bf16+channels_last",
                                           "batch=32", "batch=128", "batch=256"]  # fmt: skip
    fits = dict(bench.fit_arms(bench.parse_args([])))
    assert fits["workers=1"] == ["trainer.num_workers=1"]
    assert fits["workers=2+bf16+channels_last+compile"] == [
        "trainer.num_workers=2", "trainer.precision=bf16-mixed", "trainer.channels_last=true",
        "trainer.compile=true",
    ]  # fmt: skip
    assert list(fits)[:3] == ["workers=0", "workers=1", "workers=2"] and len(fits) == 5


def test_the_quick_run_prints_and_writes_one_report_with_every_part(
    quick_report: tuple[str, str],
) -> None:
    stdout, written = quick_report
    assert written.strip() and written.strip() in stdout
    flags = re.search(r"^# cpu flags: (.*)$", written, re.M)
    assert flags is not None
    names = [item.split()[0] for item in flags.group(1).split(", ")]
    assert names == ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni"]
    assert re.search(rf"^# torch {re.escape(torch.__version__)}, 1 threads", written, re.M)
    assert re.search(rf"^# matmul: fp32 {NUMBER} GFLOP/s .*; bf16 {NUMBER} GFLOP/s", written, re.M)
    for title in ("training step", "end to end", "bf16 accuracy"):
        assert section(written, title)
    assert "# torch.compile arms: skipped (--quick or --no-compile)" in written


def test_step_ratios_and_matmul_shares_come_from_the_printed_rates(
    quick_report: tuple[str, str],
) -> None:
    _, report = quick_report
    peak = float(re.search(rf"# matmul: fp32 ({NUMBER}) GFLOP/s", report).group(1))  # type: ignore[union-attr]
    lines = section(report, "training step")
    macs = float(re.search(rf"({NUMBER}) GMAC forward per clip", report).group(1))  # type: ignore[union-attr]
    rows = matching(
        lines,
        rf"(\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})-({NUMBER})"
        rf"\s+({NUMBER})%",
    )
    arms = [row.group(2) for row in rows]
    # the baseline first; no compile arm in a quick run, no threads arm on one thread
    assert arms == ["fp32", "channels_last", "bf16", "bf16+channels_last", "batch=2"]
    baseline = float(rows[0].group(5))
    assert rows[0].group(6) == "1.00" and rows[0].group(7) == rows[0].group(8) == "1.00"
    for row in rows:
        rate, ratio, low, high = (float(row.group(k)) for k in (5, 6, 7, 8))
        assert within_rounding(ratio, rate, baseline, 2), row.group(0)
        assert low <= high
        share = float(row.group(9))
        assert share == pytest.approx(100 * rate * 6 * macs / peak, rel=0.02, abs=0.2), row.group(0)
    assert {row.group(3) for row in rows[:-1]} == {"4"} and rows[-1].group(3) == "2"
    assert "20 of 20 after model.to(memory_format=channels_last)" in report


def test_end_to_end_rows_run_instrecs_own_loop_with_the_trainer_options(
    quick_report: tuple[str, str],
) -> None:
    _, report = quick_report
    baseline = float(re.search(rf"step baseline above \(({NUMBER}) clips/s", report).group(1))  # type: ignore[union-attr]
    rows = matching(
        section(report, "end to end"),
        rf"(\S+)\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})%\s+({NUMBER})\s+(\S+)",
    )
    assert [(r.group(1), r.group(6)) for r in rows] == [
        ("workers=0", "32-true"),
        ("workers=0+bf16+channels_last", "bf16-mixed"),
    ]
    for row in rows:
        assert within_rounding(float(row.group(3)), float(row.group(2)), baseline, 2)
        assert 0 <= float(row.group(4)) <= 100


def test_the_accuracy_check_trains_each_precision_and_looks_at_the_front_end(
    quick_report: tuple[str, str],
) -> None:
    _, report = quick_report
    lines = section(report, "bf16 accuracy")
    rows = matching(lines, rf"(.+?)\s+(\d+)\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})")
    assert [r.group(1) for r in rows] == ["fp32", "bf16", "bf16+fp32 front end"]
    assert all(0 <= float(r.group(5)) <= 1 for r in rows)
    assert any("sinc kernels built in float32, output bfloat16" in line for line in lines)
    # the oneDNN fault is reported where it is, and the model itself is clear of it
    assert "# sharesnet18/16: bf16 body convolutions ok" in report
    assert re.search(
        r"# sharesnet18/8: bf16 body convolutions (ok: worst error|WRONG from)", report
    )


# ---- the trainer options -----------------------------------------------------------------


@pytest.fixture(scope="module")
def note_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """20 synthetic notes of 4 instruments: 16 to train on (two steps of batch 8), 4 to
    validate on."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "benchmarks"))
        from loader_throughput import write_note_store

        yield write_note_store(tmp_path_factory.mktemp("store") / "notes", 20, 4, valid_every=5)


class Seen(L.Callback):
    """What the first training step ran with: the Trainer's precision, the body's weight
    layout, and the layout and dtype of a body convolution's output."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        conv = module.model.body.get_submodule("stages.1.0.conv1")  # type: ignore[union-attr]
        assert isinstance(conv, torch.nn.Conv2d) and conv.in_channels > 1
        self.seen["precision"] = trainer.precision
        self.seen["weights_channels_last"] = conv.weight.is_contiguous(
            memory_format=torch.channels_last
        )
        self.hook = conv.register_forward_hook(lambda _m, _i, out: self._output(out))

    def _output(self, out: torch.Tensor) -> None:
        self.seen["output_dtype"] = out.dtype
        self.seen["output_channels_last"] = out.is_contiguous(memory_format=torch.channels_last)
        self.hook.remove()


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What torch.compile was given: replaced by a spy that returns it as it is (a real
    compile takes minutes on a CPU)."""
    calls: list[Any] = []

    def spy(fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", spy)
    return calls


def tiny_fit(store: Path, out: Path, *overrides: str) -> dict[str, Any]:
    seen = Seen()
    settings = ["trainer.batch_size=8", "trainer.epochs=1", "trainer.num_workers=0", *overrides]
    pretrain(load_config("tiny_pretrain", settings), store, out, callbacks=[seen])
    return seen.seen


@pytest.mark.usefixtures("one_torch_thread")
def test_speed_options_are_off_by_default_and_cpu_trains_in_fp32(
    note_store: Path, tmp_path: Path, compiled: list[Any]
) -> None:
    seen = tiny_fit(note_store, tmp_path / "run", "trainer.accelerator=cpu")
    assert seen == {"precision": "32-true", "weights_channels_last": False,
                    "output_dtype": torch.float32, "output_channels_last": False}  # fmt: skip
    assert compiled == []


@pytest.mark.usefixtures("one_torch_thread")
def test_channels_last_compile_and_bf16_mixed_reach_the_model_and_the_trainer(
    note_store: Path, tmp_path: Path, compiled: list[Any]
) -> None:
    """The model's own call is what gets compiled; the model file holds weights in the
    plain layout whatever layout training used."""
    options = ("trainer.channels_last=true", "trainer.compile=true",
               "trainer.precision=bf16-mixed", "trainer.accelerator=cpu")  # fmt: skip
    seen = tiny_fit(note_store, tmp_path / "run", *options)
    assert seen == {"precision": "bf16-mixed", "weights_channels_last": True,
                    "output_dtype": torch.bfloat16, "output_channels_last": True}  # fmt: skip
    assert [type(fn.__self__).__name__ for fn in compiled] == ["Recognizer"]
    weights = torch.load(tmp_path / "run/model.pt", weights_only=True)["state_dict"]
    assert all(w.is_contiguous() for w in weights.values())
    assert any(w.dim() == 4 and w.shape[1] > 1 for w in weights.values())  # the check can fail


@pytest.mark.fault
@pytest.mark.parametrize("precision", ["bf17", "fp16", "bf16-true", "64-true"])
def test_an_unknown_precision_is_refused_in_one_line_naming_the_setting(precision: str) -> None:
    with pytest.raises(InstrecError) as refused:
        load_config("tiny_pretrain", [f"trainer.precision={precision}"])
    message = str(refused.value)
    assert "\n" not in message
    assert f"--set 'trainer.precision={precision}'" in message
    assert f"trainer.precision must be one of auto, 32-true, bf16-mixed, 16-mixed, not " \
        f"'{precision}'" in message  # fmt: skip


@pytest.mark.fault
def test_an_unknown_precision_in_a_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fast.yaml"
    path.write_text("base: tiny_pretrain\ntrainer:\n  precision: fp8\n")
    with pytest.raises(InstrecError, match=rf"^{re.escape(str(path.resolve()))}: .*not 'fp8'$"):
        load_config(path)
