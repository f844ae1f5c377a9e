"""Model files: weights + architecture config + class list + threshold + meta, in one file.

Like whisper's checkpoints, a file carries everything needed to rebuild and use the model,
so `evaluate` and `predict` take nothing else. Written with torch.save (atomically: temp
file + rename) and read with `weights_only=True`, so loading never runs pickled code.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from instrec.atomic import atomic_path
from instrec.errors import InstrecError
from instrec.model.zoo import ModelConfig, Recognizer

FORMAT = "instrec-model"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelFile:
    """A loaded model file; `model` is in eval mode."""

    model: Recognizer
    classes: tuple[str, ...]
    threshold: float  # decision threshold on sigmoid probabilities, chosen on validation
    meta: dict[str, Any]


def save_model_file(
    path: str | Path,
    model: Recognizer,
    classes: Sequence[str],
    threshold: float,
    meta: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `model` with its classes, threshold and JSON-able `meta` to `path` atomically.

    An existing file is only replaced with `overwrite=True`.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InstrecError(f"{path}: already exists (refusing to overwrite a model file)")
    if len(classes) != model.config.num_classes:
        raise InstrecError(
            f"{path}: {len(classes)} class names for a model with "
            f"{model.config.num_classes} outputs"
        )
    try:  # plain JSON types only, so weights_only loading accepts them
        plain_meta = json.loads(json.dumps(meta or {}))
    except (TypeError, ValueError) as error:
        raise InstrecError(f"{path}: meta is not JSON-serialisable ({error})") from None
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": dataclasses.asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "classes": [str(c) for c in classes],
        "threshold": float(threshold),
        "meta": plain_meta,
    }
    with atomic_path(path) as temp:
        torch.save(payload, temp)
    return path


def load_model_file(path: str | Path, map_location: str | torch.device = "cpu") -> ModelFile:
    """Read a file written by `save_model_file`; anything else raises InstrecError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InstrecError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or foreign files
        raise InstrecError(f"{path}: not a readable model file ({_first_line(error)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InstrecError(f"{path}: not an instrec model file")
    if payload.get("version") != FORMAT_VERSION:
        raise InstrecError(
            f"{path}: model file version {payload.get('version')} is not supported "
            f"(this instrec reads version {FORMAT_VERSION})"
        )
    try:
        model = Recognizer(ModelConfig(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
        classes = tuple(str(c) for c in payload["classes"])
        threshold = float(payload["threshold"])
        meta = dict(payload["meta"])
    except InstrecError as error:
        raise InstrecError(f"{path}: {error}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise InstrecError(f"{path}: damaged model file ({_first_line(error)})") from None
    if len(classes) != model.config.num_classes:
        raise InstrecError(f"{path}: {len(classes)} classes for {model.config.num_classes} outputs")
    model.to(map_location)
    model.eval()
    return ModelFile(model=model, classes=classes, threshold=threshold, meta=meta)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
