"""Models shipped inside the package, found by name (whisper's registry, without a download).

`instrec/weights/models.json` lists each shipped model: its files (an ONNX graph for
tagging without torch, the .pt model file for fine-tuning), their sha256, and what its
card says (architecture, parameters, training data, measured scores). `resolve` turns
what a user typed (nothing, a name, or a path) into a file; a damaged install (a file
whose digest differs from the manifest) is refused, never run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from instrec.errors import InstrecError

MANIFEST = "models.json"
FORMATS = ("onnx", "pt")  # onnx tags without torch; pt is the model file training reads


@dataclass(frozen=True)
class ShippedModel:
    """One entry of the manifest."""

    name: str
    files: dict[str, str]  # format -> file name inside instrec/weights
    sha256: dict[str, str]  # format -> hex digest
    card: dict[str, Any] = field(default_factory=dict)  # architecture, scores, ... (docs)


def weights_folder() -> Path:
    """Where the shipped files are installed."""
    return Path(str(resources.files("instrec.weights")))


def read_manifest(folder: Path | None = None) -> tuple[str | None, dict[str, ShippedModel]]:
    """(the default model's name, name -> ShippedModel) from the manifest in `folder`."""
    path = (folder or weights_folder()) / MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        models = {
            name: ShippedModel(name, dict(entry["files"]), dict(entry["sha256"]), entry["card"])
            for name, entry in raw["models"].items()
        }
        default = raw["default"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise InstrecError(f"{path}: damaged model manifest ({error}); reinstall instrec") from None
    if default is not None and default not in models:
        raise InstrecError(f"{path}: the default model {default!r} is not listed")
    return default, models


def resolve(
    name_or_path: str | Path | None = None, fmt: str = "onnx", folder: Path | None = None
) -> Path:
    """The model file meant by `name_or_path`: a path as it is (anything that exists, has
    a model suffix or a folder in it: its loader says what is wrong with it); a shipped
    model's file in format `fmt` (checked against its sha256); None: the default one."""
    if name_or_path is not None and _is_path(str(name_or_path)):
        return Path(name_or_path)
    default, models = read_manifest(folder)
    name = default if name_or_path is None else str(name_or_path)
    if name is None:
        raise InstrecError("this install ships no model: give a model file with --model PATH")
    if name not in models:
        shipped = ", ".join(models) or "none"
        raise InstrecError(f"{name}: no such model file, nor a shipped model (shipped: {shipped})")
    model = models[name]
    if fmt not in model.files:
        raise InstrecError(f"{name}: shipped without a {fmt} file (has {', '.join(model.files)})")
    path = (folder or weights_folder()) / model.files[fmt]
    if not path.is_file() or _sha256(path) != model.sha256[fmt]:
        damaged = f"missing or damaged (its sha256 differs from {MANIFEST})"
        raise InstrecError(f"{path}: {damaged}; reinstall instrec")
    return path


def _is_path(text: str) -> bool:
    path = Path(text)
    return path.exists() or path.is_symlink() or path.suffix in (".pt", ".onnx") or "/" in text


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
