"""Training configurations: YAML files read into dataclasses, never executed.

A config file may start from another with `base: NAME` (a built-in name or a path
relative to the file) and change only some fields. Any field can then be overridden
from the command line with dotted keys, e.g. `--set trainer.epochs=2` or
`--set model.options.sinc_stride=24`; values are parsed as YAML scalars. An unknown key
or a wrong type is reported with the file or the `--set` argument it came from.

Configs are small plain data, so anything else is refused with one line naming the file:
YAML aliases (`*name`, a few lines of which can expand to billions of nodes), nesting
deeper than MAX_DEPTH, files over MAX_CONFIG_BYTES, binary files and `base:` loops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from instrec.errors import InstrecError
from instrec.train.augment import AugmentConfig

STAGES = ("pretrain", "finetune")
# Lightning's precision strings instrec trains with ("auto": bf16-mixed on GPU, 32-true on
# CPU); "16-mixed" on a CPU is run by Lightning as bf16-mixed, with its warning
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed")
MAX_CONFIG_BYTES = 1 << 20  # in whole MiB; the built-in configs are about 1 KB
MAX_DEPTH = 20  # mappings and lists inside each other; a config needs 3


@dataclass
class ModelSection:
    """Which architecture to build (instrec.model.zoo.build_model(name, **options))."""

    name: str = "resnet34"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimSection:
    """Adam with (L2) weight decay; learning rate peaks after the warm-up, then a cosine."""

    peak_lr: float = 1e-3
    weight_decay: float = 5e-4
    warmup_epochs: float = 3.0
    label_smoothing: float = 0.05  # pre-training's cross-entropy only


@dataclass
class DataSection:
    """Which training items are used; `fraction` is drawn per class, whole IRMAS songs."""

    fraction: float = 1.0


@dataclass
class TrainerSection:
    """Loop length, batch and hardware; `batch_size` counts clips per step over all GPUs."""

    epochs: int = 30
    batch_size: int = 128
    accelerator: str = "auto"  # "cpu", "gpu", "auto"
    devices: int | str = "auto"  # GPUs (or CPU processes) per node
    num_nodes: int = 1
    precision: str = "auto"  # "auto": bf16-mixed on GPU, 32-true on CPU; see PRECISIONS
    channels_last: bool = False  # the 2-D body's tensors as (batch, h, w, channels) in memory
    compile: bool = False  # torch.compile the model (minutes of compiling before step 1)
    sync_batchnorm: bool = True  # batch statistics over all GPUs, as the paper's 2 GPUs
    num_workers: int = 2  # DataLoader processes per device
    checkpoint_every_steps: int = 500  # how much work a kill can cost
    log_every_steps: int = 50


@dataclass
class Config:
    """One training run: everything but the data, the initial weights and the output."""

    stage: str = "pretrain"
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimSection = field(default_factory=OptimSection)
    data: DataSection = field(default_factory=DataSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def builtin_names() -> list[str]:
    """Names of the configs shipped in instrec/train/configs (without .yaml)."""
    folder = resources.files("instrec.train") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read a config file (or a built-in by name), apply `key.sub=value` overrides, check it."""
    raw, source = _read_with_bases(str(name_or_path), Path.cwd(), seen=())
    for override in overrides:
        _apply_override(raw, override)
    sets = " ".join(_set_argument(override) for override in overrides)
    return config_from_dict(raw, f"{source} with {sets}" if sets else source)


def config_from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    """A Config from plain data, e.g. a run directory's saved config.yaml."""
    config = _build(Config, raw, source)
    _validate(config, source)
    return config


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain data (lists, dicts, scalars) ready for YAML or JSON."""
    return _plain(dataclasses.asdict(config))


def dump_config(config: Config) -> str:
    """The resolved config as YAML, in field order."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _locate(name: str, relative_to: Path) -> Path:
    for candidate in (Path(name), relative_to / name):
        if candidate.is_file():
            return candidate
    builtin = resources.files("instrec.train") / "configs" / f"{name}.yaml"
    if builtin.is_file():
        return Path(str(builtin))
    raise InstrecError(
        f"{name}: no such config file or built-in config (built-in: {', '.join(builtin_names())})"
    )


def _read_with_bases(name: str, relative_to: Path, seen: tuple[Path, ...]) -> tuple[dict, str]:
    path = _locate(name, relative_to).resolve()
    if path in seen:
        raise InstrecError(f"{path}: 'base' chain loops back to itself")
    try:
        raw = _parse_yaml(_read_text(path)) or {}
    except yaml.YAMLError as error:
        raise InstrecError(f"{path}: unreadable config ({_yaml_reason(error)})") from None
    if not isinstance(raw, dict):
        raise InstrecError(f"{path}: a config must be a mapping of sections")
    base = raw.pop("base", None)
    if base is None:
        return raw, str(path)
    if not isinstance(base, str):
        raise InstrecError(f"{path}: base must be a config name or path, not {base!r}")
    merged, _ = _read_with_bases(base, path.parent, (*seen, path))
    return _merge(merged, raw), str(path)


def _read_text(path: Path) -> str:
    """The text of a config file, refusing a huge or binary one before parsing it."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise InstrecError(f"{path}: unreadable config ({error.strerror or error})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise InstrecError(f"{path}: over {MAX_CONFIG_BYTES >> 20} MiB, too large for a config")
    if b"\0" not in data:
        with contextlib.suppress(UnicodeDecodeError):
            return data.decode("utf-8")
    raise InstrecError(f"{path}: a binary file, not a YAML config (which is UTF-8 text)")


class _ConfigLoader(yaml.SafeLoader):
    """YAML as plain data, without aliases and without deep nesting (see the module doc)."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            problem = "aliases (*name) are not allowed in configs; use 'base:' to share settings"
        elif self.depth >= MAX_DEPTH:
            problem = f"nested more than {MAX_DEPTH} levels deep"
        else:
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1
        raise yaml.composer.ComposerError(None, None, problem, event.start_mark)


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader: plain data only


def _yaml_reason(error: yaml.YAMLError) -> str:
    """PyYAML's message (several lines, with an excerpt) as one: where, and what."""
    mark = getattr(error, "problem_mark", None)
    what = ", ".join(filter(None, (getattr(error, n, None) for n in ("context", "problem"))))
    if mark is None or not what:
        return " ".join(str(error).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}"


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_override(raw: dict[str, Any], override: str) -> None:
    """Set KEY=VALUE in `raw`, first checking KEY against the fields and VALUE against the
    field's type, so that a mistake is reported with this --set argument, not the file."""
    where = _set_argument(override)
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise InstrecError(f"{where}: expected KEY=VALUE, e.g. trainer.epochs=2")
    *parents, leaf = parts = key.strip().split(".")
    hint = _field_type(parts, where)
    try:
        value = _parse_yaml(text)
    except yaml.YAMLError as error:
        raise InstrecError(f"{where}: unreadable value ({_yaml_reason(error)})") from None
    _convert(value, hint, where)
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InstrecError(f"{where}: {part!r} is not a section")
    node[leaf] = value


def _set_argument(override: str) -> str:
    return f"--set {override!r}"


def _field_type(parts: list[str], where: str) -> Any:
    """The type of the field that dotted `parts` name; keys inside a free mapping
    (model.options) are left to the code that reads them."""
    hint: Any = Config
    for depth, part in enumerate(parts):
        if hint is Any or typing.get_origin(hint) is dict:
            return Any
        section = ".".join(parts[:depth])
        if not dataclasses.is_dataclass(hint):
            raise InstrecError(f"{where}: {section} is a value, not a section")
        known = _field_names(typing.cast(type, hint))
        if part not in known:
            raise InstrecError(
                f"{where}: unknown key {'.'.join(parts[: depth + 1])!r} "
                f"({section or 'the config'} has: {', '.join(known)})"
            )
        hint = typing.get_type_hints(hint)[part]
    return hint


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def _build(cls: type, raw: Any, where: str) -> Any:
    """Instantiate dataclass `cls` from a mapping, checking every key and type."""
    if not isinstance(raw, dict):
        raise InstrecError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = _field_names(cls)
    unknown = sorted((key for key in raw if key not in known), key=str)
    if unknown:
        raise InstrecError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(known)})")
    values = {key: _convert(raw[key], hints[key], f"{where}: {key}") for key in raw}
    try:
        return cls(**values)
    except InstrecError as error:  # the section's own checks, e.g. AugmentConfig's ranges
        raise InstrecError(f"{where}: {error}") from None


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type, hint), value, where)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _convert(value, option, where)
            except InstrecError:
                continue
    elif origin is dict and isinstance(value, dict):
        return dict(value)
    elif origin is tuple and isinstance(value, list | tuple):
        return tuple(_convert(item, args[0], where) for item in value)
    elif hint is float and isinstance(value, int | float | str) and not isinstance(value, bool):
        try:  # PyYAML reads 1e-3 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    elif isinstance(hint, type) and isinstance(value, hint) and not _is_bool_for_int(hint, value):
        return value
    raise InstrecError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def _is_bool_for_int(hint: type, value: Any) -> bool:
    """True for `epochs: true`: YAML booleans are ints to Python, not to a config reader."""
    return hint is int and isinstance(value, bool)


def _validate(config: Config, where: str) -> None:
    problems = []
    if config.stage not in STAGES:
        problems.append(f"stage must be one of {', '.join(STAGES)}, not {config.stage!r}")
    if config.trainer.epochs < 1 or config.trainer.batch_size < 1:
        problems.append("trainer.epochs and trainer.batch_size must be at least 1")
    if not 0 <= config.optim.warmup_epochs <= config.trainer.epochs:
        problems.append("optim.warmup_epochs must be between 0 and trainer.epochs")
    if config.trainer.precision not in PRECISIONS:
        problems.append(
            f"trainer.precision must be one of {', '.join(PRECISIONS)}, "
            f"not {config.trainer.precision!r}"
        )
    if not 0.0 < config.data.fraction <= 1.0:
        problems.append(f"data.fraction must be in (0, 1], not {config.data.fraction}")
    if config.stage == "finetune" and config.optim.label_smoothing != 0:
        problems.append("optim.label_smoothing applies to pre-training only: set it to 0")
    if problems:
        raise InstrecError(f"{where}: {'; '.join(problems)}")
