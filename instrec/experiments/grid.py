"""The grid's cells: planned from the experiments, keyed by their settings, run and cached.

One seed of a recipe is a fine-tuning *cell* (fine-tune, then evaluate on the test
store), which starts from a pre-training cell unless it starts from random weights. Each
cell lives in its own directory, named by its settings and keyed by a digest of its
resolved config, its data and its initial weights:

    OUT/cells/pretrain/<model>-<augmentations>-s<seed>-<key>/run/model.pt
    OUT/cells/finetune/<model>-<init>-f<fraction>-s<seed>-<key>/run/model.pt
    OUT/cells/finetune/<...>/eval-<threshold protocol>-<data key>/metrics.json

so a rerun skips every finished cell, resumes an interrupted one from its checkpoint, and
a pre-trained checkpoint is shared by every fine-tuning that starts from it (Table II's
pre-trained row is Table III's "all" row and Fig. 4's 100 % point).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from instrec.atomic import write_text_atomic
from instrec.errors import InstrecError
from instrec.experiments.presets import (
    ABLATIONS,
    DEFAULT_FRACTIONS,
    Preset,
    Recipe,
    experiment_rows,
)
from instrec.train.config import Config, config_to_dict, load_config
from instrec.train.run_dir import CONFIG, MODEL


@dataclass(frozen=True)
class Stores:
    """The three prepared clip stores a grid runs on."""

    notes: Path  # pre-training (NSynth or rendered notes)
    music: Path  # fine-tuning, with a validation split (IRMAS-train or rendered)
    test: Path  # evaluation (IRMAS-test or rendered)


def store_digest(path: Path) -> str:
    """A digest of a store's header: a store prepared again gets a new one."""
    header = Path(path) / "store.json"
    if not header.is_file():
        raise InstrecError(f"{path}: not a clip store (no store.json; run 'instrec prepare')")
    return hashlib.sha256(header.read_bytes()).hexdigest()[:16]


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Cell:
    """One training run (pre-training, or fine-tuning + evaluation) with every setting."""

    stage: str  # "pretrain" | "finetune"
    config_name: str
    overrides: tuple[str, ...]
    data: str  # the training store
    data_digest: str
    label: str  # readable settings, the first part of the directory name
    init: Cell | None = None  # fine-tuning: the pre-training it starts from; None: scratch

    def config(self) -> Config:
        return load_config(self.config_name, self.overrides)

    @cached_property
    def key(self) -> str:
        """Digest of the resolved config, the training data and the initial weights."""
        return _digest(
            {
                "stage": self.stage,
                "config": config_to_dict(self.config()),
                "data": self.data_digest,
                "init": None if self.init is None else self.init.key,
            }
        )[:10]

    @property
    def name(self) -> str:
        return f"{self.label}-{self.key}"

    def directory(self, out: Path) -> Path:
        return out / "cells" / self.stage / self.name


@dataclass(frozen=True)
class Grid:
    """What to run: experiment -> recipe -> one fine-tuning cell per seed."""

    rows: dict[str, dict[Recipe, tuple[Cell, ...]]]

    def finetune_cells(self) -> list[Cell]:
        return _unique(cell for rows in self.rows.values() for c in rows.values() for cell in c)

    def pretrain_cells(self) -> list[Cell]:
        return _unique(c.init for c in self.finetune_cells() if c.init is not None)


def _unique(cells: Iterable[Cell]) -> list[Cell]:
    return list(dict.fromkeys(cells))


def plan_grid(
    experiments: Sequence[str],
    preset: Preset,
    seeds: Sequence[int],
    stores: Stores,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    overrides: Sequence[str] = (),
) -> Grid:
    """Every cell the experiments need; cells with equal settings are one cell."""
    model = load_config(preset.pretrain, overrides).model.name
    notes_digest, music_digest = store_digest(stores.notes), store_digest(stores.music)
    rows: dict[str, dict[Recipe, tuple[Cell, ...]]] = {}
    for experiment in experiments:
        rows[experiment] = {
            recipe: tuple(
                _finetune_cell(recipe, seed, preset, stores, overrides, notes_digest, music_digest)
                for seed in seeds
            )
            for recipe in experiment_rows(experiment, model, fractions)
        }
    return Grid(rows)


def _finetune_cell(
    recipe: Recipe,
    seed: int,
    preset: Preset,
    stores: Stores,
    overrides: Sequence[str],
    notes_digest: str,
    music_digest: str,
) -> Cell:
    common = (*overrides, f"model.name={recipe.model}", f"seed={seed}")
    init = None
    if recipe.pretrain is not None:
        init = Cell(
            "pretrain",
            preset.pretrain,
            (*common, *ABLATIONS[recipe.pretrain]),
            str(stores.notes),
            notes_digest,
            f"{recipe.model}-{recipe.pretrain}-s{seed}",
        )
    return Cell(
        "finetune",
        preset.finetune if init is not None else preset.scratch,
        (*common, f"data.fraction={recipe.fraction}"),
        str(stores.music),
        music_digest,
        f"{recipe.model}-{'scratch' if init is None else 'pre-' + str(recipe.pretrain)}"
        f"-f{recipe.fraction:g}-s{seed}",
        init,
    )


# ---- running cells ----------------------------------------------------------------------


def _real_pretrain(config: Config, data: Path, out: Path, resume: bool) -> Path:
    from instrec.train.fit import pretrain

    return pretrain(config, data, out, resume=resume)


def _real_finetune(config: Config, data: Path, init: str, out: Path, resume: bool) -> Path:
    from instrec.train.fit import finetune

    return finetune(config, data, init, out, resume=resume)


def _real_evaluate(
    model: Path, test: Path, out: Path, threshold_from: str, validation: Path
) -> dict[str, Any]:
    """evaluate_model's metrics plus the model's trainable parameter count (Fig. 7)."""
    from instrec.evaluate import evaluate_model
    from instrec.model.io import load_model_file
    from instrec.model.zoo import count_parameters

    metrics = evaluate_model(
        model, test, out, threshold_from, validation_store=validation, tsne_points=0, force=True
    )
    metrics["parameters"] = count_parameters(load_model_file(model).model)
    return metrics


@dataclass(frozen=True)
class Steps:
    """The work a cell does; tests swap in fakes."""

    pretrain: Callable[[Config, Path, Path, bool], Path] = _real_pretrain
    finetune: Callable[[Config, Path, str, Path, bool], Path] = _real_finetune
    evaluate: Callable[[Path, Path, Path, str, Path], dict[str, Any]] = _real_evaluate


@dataclass
class Outcome:
    """What a grid run did: metrics per finished fine-tuning cell (by key), counts."""

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    ran: int = 0
    cached: int = 0
    failed: list[str] = field(default_factory=list)


def say(message: str) -> None:
    print(f"[instrec] {message}", file=sys.stderr, flush=True)


def _write_cell_info(cell: Cell, directory: Path) -> None:
    info = {
        "stage": cell.stage,
        "config": cell.config_name,
        "overrides": list(cell.overrides),
        "data": cell.data,
        "data_digest": cell.data_digest,
        "init": None if cell.init is None else cell.init.name,
        "key": cell.key,
    }
    write_text_atomic(directory / "cell.json", json.dumps(info, indent=2) + "\n")


def _train(cell: Cell, out: Path, steps: Steps, step_text: str) -> Path:
    """The cell's model file: trained now, resumed, or found finished."""
    directory = cell.directory(out)
    run = directory / "run"
    if (run / MODEL).is_file():
        say(f"{step_text} {cell.stage} {cell.name}: cached")
        return run / MODEL
    resume = (run / CONFIG).is_file()
    if run.exists() and not resume:
        shutil.rmtree(run)  # created but never configured: nothing to keep
    say(f"{step_text} {cell.stage} {cell.name}: {'resuming' if resume else 'training'}")
    directory.mkdir(parents=True, exist_ok=True)
    _write_cell_info(cell, directory)
    config = cell.config()
    if cell.stage == "pretrain":
        return steps.pretrain(config, Path(cell.data), run, resume)
    assert cell.init is None or cell.init.directory(out).is_dir()
    init = "scratch" if cell.init is None else str(cell.init.directory(out) / "run" / MODEL)
    return steps.finetune(config, Path(cell.data), init, run, resume)


def evaluation_dir(cell: Cell, out: Path, stores: Stores, threshold_from: str) -> Path:
    """Where a fine-tuning cell's evaluation goes: per protocol and evaluation data."""
    data = _digest([store_digest(stores.test), store_digest(stores.music)])[:8]
    return cell.directory(out) / f"eval-{threshold_from}-{data}"


def _run_cell(
    cell: Cell, stores: Stores, out: Path, threshold_from: str, steps: Steps, step_text: str
) -> tuple[bool, dict[str, Any] | None]:
    """Train (and evaluate) one cell unless finished; returns (was it finished already,
    the evaluation's metrics for a fine-tuning cell)."""
    if cell.stage == "pretrain":
        finished = (cell.directory(out) / "run" / MODEL).is_file()
        _train(cell, out, steps, step_text)
        return finished, None
    evaluation = evaluation_dir(cell, out, stores, threshold_from)
    if (evaluation / "metrics.json").is_file():
        say(f"{step_text} {cell.stage} {cell.name}: cached")
        return True, json.loads((evaluation / "metrics.json").read_text(encoding="utf-8"))
    model = _train(cell, out, steps, step_text)
    say(f"{step_text} evaluate {cell.name} on {stores.test} ({threshold_from} threshold)")
    return False, steps.evaluate(model, stores.test, evaluation, threshold_from, stores.music)


def run_grid(
    grid: Grid,
    stores: Stores,
    out: Path,
    threshold_from: str = "validation",
    steps: Steps | None = None,
) -> Outcome:
    """Run every unfinished cell (pre-trainings first) and collect the evaluations.

    A failing cell is reported and skipped (with the fine-tunings that need it); the
    others still run.
    """
    steps = steps or Steps()
    outcome = Outcome()
    broken: set[str] = set()
    cells = [*grid.pretrain_cells(), *grid.finetune_cells()]
    for number, cell in enumerate(cells, start=1):
        step_text = f"cell {number}/{len(cells)}"
        if cell.init is not None and cell.init.key in broken:
            outcome.failed.append(f"{cell.name}: its pre-training failed")
            continue
        try:
            finished, metrics = _run_cell(cell, stores, out, threshold_from, steps, step_text)
        except InstrecError as error:
            say(f"{step_text} {cell.name} failed: {error}")
            outcome.failed.append(f"{cell.name}: {error}")
            broken.add(cell.key)
            continue
        outcome.cached += finished
        outcome.ran += not finished
        if metrics is not None:
            outcome.metrics[cell.key] = metrics
    return outcome


def collect(grid: Grid, outcome: Outcome) -> dict[str, dict[Recipe, list[dict[str, Any]]]]:
    """experiment -> recipe -> the metrics of its finished seeds."""
    return {
        experiment: {
            recipe: [outcome.metrics[c.key] for c in cells if c.key in outcome.metrics]
            for recipe, cells in rows.items()
        }
        for experiment, rows in grid.rows.items()
    }
