"""Training and the entry point under hostile input: a diverging run stops with one line
and no model file, a closed stdout ends a command quietly, a --set typo is blamed on the
--set argument, hostile YAML configs are refused in one line naming the file, and a
missing or unusable path the user gave is one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from test_train import write_store

from instrec.cli import main
from instrec.errors import InstrecError
from instrec.metrics import threshold_sweep
from instrec.model import zoo
from instrec.train.config import MAX_CONFIG_BYTES, load_config
from instrec.train.fit import pretrain
from instrec.train.lightning_module import SUSTAIN, Divergence, Training

pytestmark = pytest.mark.fault

TINY = ["--set", "trainer.batch_size=16", "--set", "trainer.log_every_steps=1"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four synthetic instruments, 2 training steps an epoch at batch 16."""
    root = tmp_path_factory.mktemp("stores")
    return write_store(root / "small", "nsynth", ("ins0", "ins1", "ins2", "ins3"), 12)


def error_line(capsys: pytest.CaptureFixture[str], command: str, alone: bool = True) -> str:
    """The one line a failed command wrote to stderr; with `alone`, all it wrote there
    (a training run's progress may come before it)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"instrec {command}: error:")]
    assert len(lines) == 1, err[-2000:]
    if alone:
        assert err == lines[0] + "\n"
    return lines[0]


# ---- 1. divergence with every value finite ------------------------------------------------


def test_a_run_with_a_huge_learning_rate_stops_without_a_model_file(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], one_torch_thread: None
) -> None:
    out = tmp_path / "run"
    code = main(["pretrain", "--config", "tiny_pretrain", "--data", str(store), "--out",
                 str(out), *TINY, "--set", "trainer.checkpoint_every_steps=2",
                 "--set", "optim.peak_lr=1e3"])  # fmt: skip
    line = error_line(capsys, "pretrain", alone=False)
    assert code == 2
    assert "the training loss has been over 10x its first value" in line
    assert f"for {SUSTAIN} steps" in line and "Lower optim.peak_lr (now 1000)" in line
    assert not (out / "model.pt").exists()
    checkpoint = torch.load(out / "checkpoints/last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 2  # kept: saved before the stop


class Poison(L.Callback):
    """Calls `poison(trainer, module)` after each backward pass, before the step."""

    def __init__(self, poison: Any) -> None:
        self.poison = poison

    def on_before_optimizer_step(self, trainer: Any, module: Any, optimizer: Any) -> None:
        self.poison(trainer, module)


def _explode_a_weight(trainer: Any, module: Any) -> None:
    if trainer.global_step == 3:
        head = next(p for name, p in module.model.named_parameters() if name.startswith("head"))
        with torch.no_grad():
            head.mul_(1e6)


def _blow_up_gradients(trainer: Any, module: Any) -> None:
    if trainer.global_step >= 2:  # Adam's steps barely change: only the gradient norm shows
        for parameter in module.parameters():
            if parameter.grad is not None:
                parameter.grad.mul_(1e7)


@pytest.mark.parametrize(
    ("poison", "message"),
    [
        (_explode_a_weight, r"step 3: the weights head\.\S+ reached \|w\| = "),
        (_blow_up_gradients, f"step {2 + SUSTAIN - 1}: the gradient norm has been over 1000x"),
    ],
)
def test_exploding_weights_or_gradients_stop_before_a_checkpoint_keeps_them(
    store: Path, tmp_path: Path, poison: Any, message: str, one_torch_thread: None
) -> None:
    config = load_config("tiny_pretrain", ["trainer.batch_size=16", "trainer.epochs=3",
                                           "trainer.checkpoint_every_steps=1"])  # fmt: skip
    with pytest.raises(InstrecError, match=message):
        pretrain(config, store, tmp_path / "run", callbacks=[Poison(poison)])
    assert not (tmp_path / "run/model.pt").exists()
    checkpoint = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=False)
    weights = checkpoint["state_dict"].values()
    assert all(float(w.float().abs().max()) < 1e4 for w in weights)  # nothing exploded saved


@pytest.mark.parametrize(
    ("losses", "stops_at"),
    [
        ([2.0, 1.5, 1.2, 40.0, 1.1, 1.0, 35.0, 0.9], None),  # single bad batches
        ([2.0, 1.9, 2.5, 3.8, 19.0, 4.0, 1.0], None),  # high, but not 10x for long
        ([0.3, 0.2, 9.0, 9.5, 9.9, 9.0], None),  # 30x a small start, under the 10-nat floor
        ([1.7, 3e5, 5e5, 2e6, 6e5], 3),  # optim.peak_lr=1e3
        ([1.7, 1.2, 42.0, 35.0, 32.0, 10.0], 4),  # optim.peak_lr=1 after a few steps
    ],
)
def test_the_loss_signal_needs_a_sustained_rise_far_above_the_start(
    losses: list[float], stops_at: int | None
) -> None:
    watch = Divergence()
    found = [watch.rising("training loss", value, 10.0, 10.0) for value in losses]
    fired = [step for step, problem in enumerate(found) if problem]
    assert (fired[0] if fired else None) == stops_at


@pytest.mark.parametrize(
    ("scores", "stops_at"),
    [
        ([0.45, 0.65, 0.65, 0.74], None),  # tiny fine-tuning in tests/test_train.py
        ([0.51, 0.53, 0.52, 0.40], None),  # never clearly above chance: no collapse
        ([0.65, 0.74, 0.50, 0.70], None),  # a bad epoch, still above chance
        ([0.65, 0.74, 0.41], 2),  # back to a constant model's 0.40
        ([0.80, 0.0], 1),  # every score under the lowest threshold
    ],
)
def test_a_validation_score_collapsing_to_chance_stops_fine_tuning(
    scores: list[float], stops_at: int | None
) -> None:
    watch = Divergence()
    found = [watch.collapsed("valid_f1_micro", score, 0.4) for score in scores]
    fired = [epoch for epoch, problem in enumerate(found) if problem]
    assert (fired[0] if fired else None) == stops_at
    if stops_at is not None:
        assert "a constant model's score (0.400)" in str(found[stops_at])


def test_chance_is_a_constant_models_score_and_survives_a_resume() -> None:
    """F1-micro's chance is what threshold_sweep gives a constant model; the first values
    and the best gain come back from a checkpoint."""
    model = zoo.build_model("sharesnet18", num_classes=4, width_multiplier=0.25)
    training = Training(model, load_config("tiny_finetune"))
    targets = torch.eye(4)[torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 0])]  # p = 0.25
    constant = threshold_sweep(targets.numpy(), torch.full((10, 4), 0.5).numpy())
    metrics = {"valid_f1_micro": torch.tensor(constant["best_f1_micro"])}
    name, score, chance = training._score_and_chance(metrics, targets)
    assert name == "valid_f1_micro" and score == pytest.approx(chance) == 0.4
    training.divergence.rising("training loss", 1.7, 10.0, 10.0)
    training.divergence.collapsed(name, 0.9, chance)
    saved: dict[str, Any] = {}
    training.on_save_checkpoint(saved)
    resumed = Training(model, load_config("tiny_finetune"))
    resumed.on_load_checkpoint(saved)
    assert resumed.divergence.first == {"training loss": 1.7}
    assert resumed.divergence.collapsed(name, 0.41, chance) is not None


# ---- 2. a closed stdout -----------------------------------------------------------------

PRINTER = """
import sys, types
from instrec import cli

def run(args):
    if sys.argv[1] == "worker":
        raise BrokenPipeError(32, "Broken pipe")  # e.g. a worker process's pipe
    for k in range(int(sys.argv[1])):
        print(f"line {k}")

sys.modules["printer"] = types.SimpleNamespace(add_arguments=lambda *a: None, run=run)
cli.COMMANDS["models"] = ("printer", "prints lines")
sys.exit(cli.main(["models"]))
"""


def run_into_closed_pipe(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run with stdout a pipe whose reader has already gone (`... | head -0`)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(command, stdout=write, stderr=subprocess.PIPE, text=True,
                              timeout=120, check=False)  # fmt: skip
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param([sys.executable, "-c", PRINTER, "3"], id="fails-at-the-last-flush"),
        pytest.param([sys.executable, "-c", PRINTER, "100000"], id="fails-while-printing"),
        pytest.param(
            [sys.executable, "-m", "instrec.cli", "models"], id="models", marks=pytest.mark.slow
        ),
    ],
)
def test_a_reader_that_stops_early_ends_the_command_quietly(command: list[str]) -> None:
    done = run_into_closed_pipe(command)
    assert done.returncode == 141  # as a shell reports SIGPIPE
    assert done.stderr == ""  # no BrokenPipeError, no "Exception ignored"


def test_a_broken_pipe_that_is_not_stdout_stays_visible() -> None:
    done = subprocess.run([sys.executable, "-c", PRINTER, "worker"], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 1 and "BrokenPipeError" in done.stderr


# ---- 3. --set mistakes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ("optim.peek_lr=1", "unknown key 'optim.peek_lr' (optim has: peak_lr, weight_decay, "),
        ("peek=1", "unknown key 'peek' (the config has: stage, seed, model, "),
        ("trainer.epochs=abc", "expected int, got 'abc'"),
        ("optim.peak_lr=fast", "expected float, got 'fast'"),
        ("trainer.epochs.max=2", "trainer.epochs is a value, not a section"),
        ("trainer={epochs: x}", "epochs: expected int, got 'x'"),
        ("optim.peak_lr=[1", "unreadable value (line 1, column 3: while parsing a flow"),
        ("model.options={a: &a [1], b: *a}", "aliases (*name) are not allowed"),
    ],
)
def test_a_set_mistake_names_the_set_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, reason: str
) -> None:
    out = tmp_path / "run"
    code = main(["pretrain", "--data", str(tmp_path), "--out", str(out), "--set", override])
    line = error_line(capsys, "pretrain")
    assert code == 2
    assert line.startswith(f"instrec pretrain: error: --set {override!r}: ")
    assert reason in line and ".yaml" not in line  # not blamed on the config file
    assert not out.exists()


def test_a_set_value_out_of_range_names_the_set_argument_and_the_file() -> None:
    with pytest.raises(InstrecError, match=r"pretrain\.yaml with --set 'data\.fraction=0': "):
        load_config("pretrain", ["data.fraction=0"])


# ---- 4. hostile YAML configs --------------------------------------------------------------

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + k)}: &{chr(98 + k)} [{', '.join([f'*{chr(97 + k)}'] * 9)}]\n" for k in range(8)
)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(LAUGHS, "aliases (*name) are not allowed in configs", id="billion-laughs"),
        pytest.param(
            "model: {options: {a: &a {x: 1}, b: *a}}\n", "line 1, column 36: aliases", id="alias"
        ),
        pytest.param("- stage\n- seed\n", "a config must be a mapping of sections", id="list"),
        pytest.param("just words\n", "a config must be a mapping of sections", id="scalar"),
        pytest.param("base: self.yaml\n", "'base' chain loops back to itself", id="self-base"),
        pytest.param("base: [pretrain]\n", "base must be a config name or path", id="base-list"),
        pytest.param(bytes(range(256)) * 8, "a binary file, not a YAML config", id="binary"),
        pytest.param(b"stage: pretrain\n\0\0\0", "a binary file", id="nul-bytes"),
        pytest.param(
            "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1), "over 1 MiB, too large", id="huge"
        ),
        pytest.param("a: " + "[" * 5000, "nested more than 20 levels deep", id="deep"),
        pytest.param("optim: [1, 2\n", "unreadable config (line 2, column 1: ", id="malformed"),
        pytest.param("1: a\nfoo: b\n", "unknown key 1 (known: stage, ", id="mixed-keys"),
        pytest.param("---\nstage: x\n---\nseed: 1\n", "expected a single document", id="docs"),
    ],
)
def test_a_hostile_config_file_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes, reason: str
) -> None:
    path = tmp_path / "self.yaml"
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    out = tmp_path / "run"
    started = time.perf_counter()
    code = main(["pretrain", "--config", str(path), "--data", str(tmp_path), "--out", str(out)])
    assert time.perf_counter() - started < 5  # refused, not expanded
    line = error_line(capsys, "pretrain")
    assert code == 2 and line.startswith(f"instrec pretrain: error: {path}")
    assert reason in line
    assert not out.exists()


# ---- 5. paths the user gave -----------------------------------------------------------------


def test_an_unusable_output_path_is_one_line(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "run"
    code = main(["pretrain", "--config", "tiny_pretrain", "--data", str(store), "--out", str(out)])
    line = error_line(capsys, "pretrain", alone=False)
    assert code == 2 and line.startswith(f"instrec pretrain: error: {out}")
    assert line.endswith(": Not a directory")
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (FileNotFoundError(2, "No such file", "in/a.wav"), "in/a.wav: No such file"),
        (PermissionError(13, "Permission denied", "out/x"), "out/x: Permission denied"),
        (IsADirectoryError(21, "Is a directory", "songs"), "songs: Is a directory"),
        (NotADirectoryError(20, "Not a directory", "a.txt/b"), "a.txt/b: Not a directory"),
        (FileExistsError(17, "File exists", "a", None, "b"), "a -> b: File exists"),
    ],
)
def test_a_file_error_in_a_command_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: OSError,
    message: str,
) -> None:
    def run(args: Any) -> int:
        raise error

    monkeypatch.setattr(zoo, "run", run)
    assert main(["models"]) == 2
    assert capsys.readouterr().err == f"instrec models: error: {message}\n"


@pytest.mark.parametrize(
    "error",
    [FileNotFoundError("no path given"), ValueError("a bug")],
)
def test_other_exceptions_stay_visible_as_bugs(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def run(args: Any) -> int:
        raise error

    monkeypatch.setattr(zoo, "run", run)
    with pytest.raises(type(error)):
        main(["models"])
