"""What machine a measured figure comes from: the CPU's model name and the instruction-set
flags that move training and tagging speed (int8, bf16, AMX), recorded beside the figure."""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

# the flags that change CPU throughput figures here (vector width, bf16 and int8 units)
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")


def cpu_description(flags: Sequence[str] = SPEED_FLAGS) -> tuple[str, dict[str, bool]]:
    """(model name, which of `flags` it has), from lscpu or else /proc/cpuinfo."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = dict(
        (key.strip().lower(), value.strip())
        for key, sep, value in (line.partition(":") for line in text.splitlines())
        if sep
    )
    name = fields.get("model name") or platform.processor() or platform.machine()
    present = set(fields.get("flags", "").split())
    return name, {flag: flag in present for flag in flags}
