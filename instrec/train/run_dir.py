"""A training run's directory: what it was asked to do, on what software, and where it got.

    RUN/config.yaml          the resolved config (every field, after --set overrides)
    RUN/run.json             seed, data, initial weights, command line, package versions
    RUN/logs/metrics.csv     metrics per epoch (and train loss every few steps)
    RUN/logs/events.*        the same for TensorBoard (`tensorboard --logdir RUN/logs`)
    RUN/checkpoints/last.ckpt  the latest Lightning checkpoint, for --resume
    RUN/model.pt             the finished model file (instrec.model.io), written last

A directory that already holds a run is never reused unless the caller resumes it with
the same config; a finished run (with model.pt) cannot be resumed.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from instrec.atomic import write_text_atomic
from instrec.errors import InstrecError

CONFIG = "config.yaml"
RUN_INFO = "run.json"
LOGS = "logs"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = f"{CHECKPOINTS}/last.ckpt"
MODEL = "model.pt"
PACKAGES = ("instrec", "torch", "lightning", "numpy", "scipy", "soundfile", "scikit-learn")


def package_versions() -> dict[str, str]:
    """Python, the main packages, and the accelerator, as they are in this process."""
    import torch

    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    versions["cuda"] = torch.version.cuda or "none"
    if torch.cuda.is_available():
        versions["gpu"] = torch.cuda.get_device_name(0)
    return versions


def open_run_dir(out: Path, config_text: str, info: dict[str, Any], resume: bool) -> Path | None:
    """Create `out` for a new run, or check that it can be resumed with `config_text`.

    Returns the checkpoint to resume from (None: start from step 0). A new run refuses a
    non-empty `out`; a resumed one refuses a different config or a finished run.
    """
    if resume:
        return _check_resumable(out, config_text)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InstrecError(
            f"{out}: already exists and is not empty; use --resume to continue that run "
            "or choose another --out"
        )
    (out / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / CONFIG, config_text)
    info = {**info, "started": _now(), "versions": package_versions()}
    write_text_atomic(out / RUN_INFO, json.dumps(info, indent=2) + "\n")
    return None


def _check_resumable(out: Path, config_text: str) -> Path | None:
    if not (out / CONFIG).is_file():
        raise InstrecError(f"{out}: no {CONFIG}, so no run to resume (drop --resume)")
    if (out / MODEL).exists():
        raise InstrecError(f"{out}: the run has finished ({MODEL} exists); nothing to resume")
    saved = yaml.safe_load((out / CONFIG).read_text(encoding="utf-8"))
    difference = _first_difference(saved, yaml.safe_load(config_text))
    if difference:
        raise InstrecError(f"{out / CONFIG}: resuming needs the run's own config, but {difference}")
    info = json.loads((out / RUN_INFO).read_text(encoding="utf-8"))
    info.setdefault("resumed", []).append({"at": _now(), "versions": package_versions()})
    write_text_atomic(out / RUN_INFO, json.dumps(info, indent=2) + "\n")
    checkpoint = out / LAST_CHECKPOINT
    return checkpoint if checkpoint.is_file() else None


def _first_difference(saved: Any, new: Any, key: str = "") -> str | None:
    """'KEY is A there and B here' for the first differing dotted key, else None."""
    if isinstance(saved, dict) and isinstance(new, dict):
        for name in sorted(set(saved) | set(new)):
            found = _first_difference(saved.get(name), new.get(name), f"{key}.{name}".strip("."))
            if found:
                return found
        return None
    return None if saved == new else f"{key} is {saved!r} there and {new!r} here"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
