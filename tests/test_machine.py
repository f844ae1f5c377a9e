"""The machine a figure was measured on: CPU model and speed flags, read from lscpu."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from instrec import machine

LSCPU = """Architecture:            x86_64
Model name:              Example Xeon 9000
Flags:                   fpu sse avx2 avx512f avx512_vnni
"""


def test_the_model_name_and_which_speed_flags_are_present(monkeypatch: pytest.MonkeyPatch) -> None:
    def lscpu(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 0, stdout=LSCPU)

    monkeypatch.setattr(machine.subprocess, "run", lscpu)
    name, flags = machine.cpu_description()
    assert name == "Example Xeon 9000"
    assert [f for f, present in flags.items() if present] == ["avx2", "avx512f", "avx512_vnni"]
    assert list(flags) == list(machine.SPEED_FLAGS)
    assert machine.cpu_description(("sse", "amx_tile"))[1] == {"sse": True, "amx_tile": False}
