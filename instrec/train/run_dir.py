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
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from instrec.atomic import write_text_atomic
from instrec.audio import input_problem
from instrec.errors import InstrecError
from instrec.model.io import ContentError, first_line, load_torch_file

CONFIG = "config.yaml"
RUN_INFO = "run.json"
LOGS = "logs"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = f"{CHECKPOINTS}/last.ckpt"
MODEL = "model.pt"
CHECKPOINT_PARTS = ("state_dict", "optimizer_states", "loops", "global_step", "epoch")  # resumed
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
    saved = _with_defaults(_read_record(out / CONFIG, yaml.safe_load), out / CONFIG)
    difference = _first_difference(saved, _with_defaults(yaml.safe_load(config_text), out))
    if difference:
        raise InstrecError(f"{out / CONFIG}: resuming needs the run's own config, but {difference}")
    info = _read_record(out / RUN_INFO, json.loads)
    checkpoint = out / LAST_CHECKPOINT
    resumable = _check_checkpoint(checkpoint)
    info.setdefault("resumed", []).append({"at": _now(), "versions": package_versions()})
    write_text_atomic(out / RUN_INFO, json.dumps(info, indent=2) + "\n")
    return checkpoint if resumable else None


def _with_defaults(saved: dict[str, Any], path: Path) -> dict[str, Any]:
    """The saved config with the fields added to instrec since the run began at their
    defaults, so a newer instrec resumes an older run."""
    from instrec.train.config import config_from_dict, config_to_dict

    return config_to_dict(config_from_dict(saved, str(path)))


def _read_record(path: Path, parse: Callable[[str], Any]) -> dict[str, Any]:
    """A run's config or run.json as a mapping; a missing or damaged one is named."""
    try:
        record = parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InstrecError(f"{path}: missing, so the run cannot be resumed") from None
    except (OSError, ValueError, yaml.YAMLError) as error:  # UnicodeError is a ValueError
        raise InstrecError(f"{path}: damaged ({first_line(error)}); restore it") from None
    if not isinstance(record, dict):
        raise InstrecError(f"{path}: damaged (not a mapping); restore it")
    return record


def _check_checkpoint(path: Path) -> bool:
    """Whether there is a checkpoint to resume from, after checking, before Lightning reads
    it, that it is whole: a readable torch archive (weights_only: nothing unpickled) with
    the parts Lightning restores and finite weights."""
    import torch

    if not os.path.lexists(path):
        return False
    try:
        problem = input_problem(path)
        if problem is not None:
            raise ContentError(problem)
        checkpoint = load_torch_file(path)
        if not isinstance(checkpoint, dict):
            raise ContentError("not a Lightning checkpoint")
        lacking = [key for key in CHECKPOINT_PARTS if key not in checkpoint]
        if lacking:
            raise ContentError(f"lacks {', '.join(lacking)}")
        weights = checkpoint["state_dict"]
        if not isinstance(weights, dict) or not all(
            isinstance(v, torch.Tensor) and (not v.is_floating_point() or bool(v.isfinite().all()))
            for v in weights.values()
        ):
            raise ContentError("its state_dict holds something other than finite tensors")
    except ContentError as error:
        raise InstrecError(
            f"{path}: damaged checkpoint ({error}); remove it to start again, or restore it"
        ) from None
    return True


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
