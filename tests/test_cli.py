"""The `instrec` entry point: lists commands, imports them lazily, reports errors in one line."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from instrec.cli import COMMANDS, main


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


def test_unknown_command_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fly"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_module_provides_the_cli_hooks(command: str) -> None:
    module = importlib.import_module(COMMANDS[command][0])
    assert callable(module.add_arguments) and callable(module.run)


def test_console_script_shows_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "instrec.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "predict" in result.stdout


@pytest.mark.parametrize(
    ("command", "given", "expected"),
    [
        ("finetune", None, "PASSIVE"),  # training: threads wait passively by default
        ("reproduce", None, "PASSIVE"),
        ("finetune", "ACTIVE", "ACTIVE"),  # the user's choice is kept
        ("predict", None, None),  # tagging is left as it is
    ],
)
def test_training_commands_let_openmp_threads_wait_passively(
    monkeypatch: pytest.MonkeyPatch, command: str, given: str | None, expected: str | None
) -> None:
    if given is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", given)
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert os.environ.get("OMP_WAIT_POLICY") == expected
