"""Model files: weights + architecture config + class list + threshold + meta, in one file.

Like whisper's checkpoints, a file carries everything needed to rebuild and use the model,
so `evaluate` and `predict` take nothing else. Written with torch.save (atomically: temp
file + rename) and read with `weights_only=True`, so loading never runs pickled code.
Everything read is checked as strictly as the same values given on a command line, and
torch is imported only when a file is read or written, so the torch-free ONNX tagger
checks an exported model's classes and threshold with the same functions.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instrec.atomic import atomic_path
from instrec.audio import SAMPLE_RATE, input_problem
from instrec.errors import InstrecError

if TYPE_CHECKING:
    import torch

    from instrec.model.zoo import ModelConfig, Recognizer

FORMAT = "instrec-model"
FORMAT_VERSION = 1
MAX_TAPS = SAMPLE_RATE  # samples: sinc kernels and strides longer than 1 s are no model's
MAX_COUNT = 1 << 16  # the largest count a model's config may hold (classes, filters, widths)


class ContentError(ValueError):
    """What is wrong with what a file holds, in one line without the file's name (the
    caller adds it, and says whether the file is unreadable or its contents unusable)."""


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
    import torch

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
    """Read a file written by `save_model_file`; anything else raises InstrecError naming it:
    'not a readable instrec model file' (damaged or foreign bytes) or 'not a usable instrec
    model' (contents that fail the checks a command line's values would)."""
    path = Path(path)
    problem = input_problem(path, missing="no such model file")
    if problem is not None:
        raise InstrecError(f"{path}: {problem}")
    try:
        payload = load_torch_file(path)
    except ContentError as error:
        raise InstrecError(f"{path}: not a readable instrec model file ({error})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InstrecError(f"{path}: not an instrec model file")
    version = payload.get("version")
    if version != FORMAT_VERSION or not isinstance(version, int) or isinstance(version, bool):
        raise InstrecError(
            f"{path}: model file version {version!r} is not supported "
            f"(this instrec reads version {FORMAT_VERSION})"
        )
    try:
        model_file = _model_file(payload)
    except ContentError as error:
        raise InstrecError(f"{path}: not a usable instrec model: {error}") from None
    model_file.model.to(map_location)
    return model_file


def load_torch_file(path: Path) -> Any:
    """What torch.save wrote to `path`, on the CPU, read with `weights_only=True` (tensors
    and plain values, never pickled code) after every member of the archive passed its
    CRC (torch does not check them, so damaged bytes would load as wrong weights).

    Raises ContentError with a one-line reason that never repeats torch's advice to
    load the file with weights_only=False.
    """
    import torch

    _check_archive(path)
    try:
        with warnings.catch_warnings():  # torch warns of pickle protocols it then reads
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or foreign files
        raise ContentError(_torch_reason(error)) from None


def check_classes(classes: Any, outputs: int | None = None) -> tuple[str, ...]:
    """A model's class names: a non-empty list of distinct, non-empty, printable strings,
    one per output when `outputs` is known."""
    if not isinstance(classes, list | tuple) or not classes:
        raise ContentError(f"classes must be a non-empty list of names, not {_short(classes)}")
    for name in classes:
        if not isinstance(name, str) or not name or not name.isprintable():
            raise ContentError(f"class name {_short(name)} is not a printable, non-empty string")
    if len(set(classes)) != len(classes):
        repeated = next(c for c in classes if classes.count(c) > 1)
        raise ContentError(f"class {repeated!r} is listed twice")
    if outputs is not None and len(classes) != outputs:
        raise ContentError(f"{len(classes)} class names for {outputs} model outputs")
    return tuple(classes)


def check_threshold(threshold: Any) -> float:
    """A decision threshold: a finite number within 0..1, as --threshold must be."""
    if not _is_number(threshold) or not 0.0 <= threshold <= 1.0:
        raise ContentError(f"threshold must be a number within 0..1, not {_short(threshold)}")
    return float(threshold)


def check_count(name: str, value: Any) -> int:
    """A size or count: an int of at least 1 (not a bool, not a float)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ContentError(f"{name} must be a whole number >= 1, not {_short(value)}")
    return value


def _model_file(payload: dict[str, Any]) -> ModelFile:
    """The model a payload describes, with every part checked before anything is built."""
    import torch

    from instrec.model.zoo import Recognizer

    weights = payload.get("state_dict")
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise ContentError("state_dict is not a mapping of names to tensors")
    for key, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ContentError(f"weight {key} holds NaN or infinite values")
    config = _config(payload.get("config"))
    classes = check_classes(payload.get("classes"), config.num_classes)
    threshold = check_threshold(payload.get("threshold"))
    meta = payload.get("meta")
    if not isinstance(meta, dict):
        raise ContentError(f"meta must be a mapping, not {_short(meta)}")
    try:
        model = Recognizer(config)
    except (InstrecError, MemoryError, RuntimeError) as error:  # sizes no memory holds
        raise ContentError(f"its config cannot be built ({first_line(error)})") from None
    _check_fit(model.state_dict(), weights)
    model.load_state_dict(weights)
    return ModelFile(model=model.eval(), classes=classes, threshold=threshold, meta=meta)


def _config(config: Any) -> ModelConfig:
    """A ModelConfig from a file's dict: known fields of their declared types, a known
    architecture, whole numbers within 1..MAX_COUNT, finite reals >= 0, the tagger's rate
    and sinc kernels and strides no longer than 1 s."""
    from instrec.model.zoo import VARIANTS, ModelConfig

    if not isinstance(config, dict):
        raise ContentError(f"config must be a mapping, not {_short(config)}")
    fields = {f.name: str(f.type) for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(config) - set(fields), key=str)
    if unknown:
        raise ContentError(f"config has unknown fields: {', '.join(map(str, unknown))}")
    for name, value in config.items():
        _check_field(f"config {name}", fields[name], value)
    if config.get("arch", ModelConfig.arch) not in VARIANTS:
        raise ContentError(f"config arch {config['arch']!r} is not one of {', '.join(VARIANTS)}")
    if config.get("sample_rate", SAMPLE_RATE) != SAMPLE_RATE:
        raise ContentError(f"config sample_rate must be {SAMPLE_RATE} (the rate audio is fed at)")
    for name in ("sinc_kernel", "sinc_stride"):
        if config.get(name, 1) > MAX_TAPS:
            raise ContentError(f"config {name} {config[name]} is over {MAX_TAPS} samples (1 s)")
    try:
        return ModelConfig(**config)
    except InstrecError as error:
        raise ContentError(str(error)) from None


def _check_field(name: str, kind: str, value: Any) -> None:
    """`value` is of the annotated `kind`: whole numbers within 1..MAX_COUNT, finite reals
    >= 0 (no field of ModelConfig is meaningful below)."""
    if kind == "str" and isinstance(value, str):
        return
    if kind == "bool" and isinstance(value, bool):
        return
    if kind == "float" and _is_number(value) and value >= 0:
        return
    if kind == "int":
        if check_count(name, value) > MAX_COUNT:
            raise ContentError(f"{name} {value} is over {MAX_COUNT}")
        return
    if kind == "tuple[int, ...]" and isinstance(value, list | tuple):
        for item in value:
            _check_field(name, "int", item)
        return
    shown = "a list of whole numbers" if kind.startswith("tuple") else kind
    raise ContentError(f"{name} must be {shown}, not {_short(value)}")


def _check_fit(expected: dict[str, Any], weights: dict[str, Any]) -> None:
    """The file's weights have exactly the names, shapes and types the architecture needs."""
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ContentError(
            "weights do not fit the architecture ("
            + "; ".join(
                f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                for what, keys in (("missing", missing), ("unexpected", unexpected))
                if keys
            )
            + ")"
        )
    for key, tensor in expected.items():
        found = weights[key]
        if found.shape != tensor.shape or found.dtype != tensor.dtype:
            raise ContentError(
                f"weight {key} is {found.dtype} {tuple(found.shape)}, the architecture "
                f"needs {tensor.dtype} {tuple(tensor.shape)}"
            )


def _check_archive(path: Path) -> None:
    """torch.save's format: a zip archive, one folder holding data.pkl, every CRC right."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            folders = {name.split("/")[0] for name in names}
            if len(folders) != 1 or f"{next(iter(folders))}/data.pkl" not in names:
                raise ContentError("a zip archive, but not one written by torch.save")
            damaged = archive.testzip()
    except zipfile.BadZipFile:
        raise ContentError("not a PyTorch archive: empty, truncated or another format") from None
    except (OSError, EOFError, zlib.error, NotImplementedError) as error:
        raise ContentError(f"damaged archive ({first_line(error)})") from None
    if damaged is not None:
        raise ContentError(f"{damaged} fails its CRC check")


def _torch_reason(error: BaseException) -> str:
    """torch's error as one line, without its advice to unpickle the file."""
    text = str(error)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"holds pickled Python objects ({found.group(1)}), which are never loaded"
    if re.search(r"weights.only", text, re.IGNORECASE):
        return "holds pickled data other than tensors and plain values, which is never loaded"
    return first_line(error)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def first_line(error: BaseException) -> str:
    """An exception's message as one line (its type where it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
