"""`instrec reproduce`: the paper's experiment grid, run and cached cell by cell.

An experiment (Table II, Table III, Fig. 3, Fig. 4, Fig. 7, Table IV) is a set of rows;
a row is a `Recipe` (initial weights, backbone, share of the fine-tuning data) run once
per seed. One seed of a recipe is a fine-tuning *cell* (fine-tune, then evaluate on the
test store), which starts from a pre-training cell unless it starts from random weights.
Each cell lives in its own directory, named by its settings and keyed by a digest of its
resolved config, its data and its initial weights:

    OUT/data/<preset>/       rendered data (unless real data is given) and the clip stores
    OUT/cells/pretrain/<model>-<augmentations>-s<seed>-<key>/run/model.pt
    OUT/cells/finetune/<model>-<init>-f<fraction>-s<seed>-<key>/run/model.pt
    OUT/cells/finetune/<...>/eval-<threshold protocol>-<data key>/metrics.json

so a rerun skips every finished cell, resumes an interrupted one from its checkpoint, and
a pre-trained checkpoint is shared by every fine-tuning that starts from it (Table II's
pre-trained row is Table III's "all" row and Fig. 4's 100 % point). After every run the
finished cells of the experiments asked for go to instrec.reproduce_report, which
rebuilds the report (OUT/report.md, tables as Markdown, figures as PNG, results.json);
the cells themselves are never overwritten.
"""

from __future__ import annotations

import argparse
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
from instrec.config import Config, config_to_dict, load_config
from instrec.data.store import ClipStore
from instrec.errors import InstrecError
from instrec.model.zoo import MODEL_NAMES
from instrec.reproduce_report import THRESHOLD_PROTOCOLS, write_report
from instrec.run_dir import CONFIG, MODEL

# ---- what the paper ran ------------------------------------------------------------------

EXPERIMENTS = ("table2", "fig3", "table3", "fig4", "fig7", "table4")
# Table III: pre-training augmentations switched off, as config overrides
ABLATIONS: dict[str, tuple[str, ...]] = {
    "all": (),
    "no-mixup": ("augment.mixup_p=0",),
    "no-effects": ("augment.effects_ratio=0",),
    "no-both": ("augment.mixup_p=0", "augment.effects_ratio=0"),
    "no-concat": ("augment.concat_p=0",),
}
DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)  # Fig. 4: shares of the IRMAS training songs


@dataclass(frozen=True)
class Preset:
    """A scale: the three training configs, how much data to render, how much real data
    to use (a `prepare --limit` per dataset; None: all of it)."""

    name: str
    pretrain: str
    finetune: str
    scratch: str
    notes: dict[str, Any]  # instrec.data.notes.render_notes options
    music: dict[str, Any]  # render_ensembles options
    limits: dict[str, int | None]
    about: str


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        "tiny",
        "tiny_pretrain",
        "tiny_finetune",
        "tiny_scratch",
        notes={"max_instruments": 24, "pitches": 24, "velocities": (70, 110)},
        music={"train_songs": 66, "test_songs": 30, "train_excerpts": 4, "test_excerpts": 2},
        limits={"nsynth": 3000, "irmas-train": 300, "irmas-test": 100},
        about="CPU, minutes: a cut-down ShaResNet18 (133 K parameters), 4 epochs, about "
        "a thousand clips",
    ),
    "small": Preset(
        "small",
        "small_pretrain",
        "small_finetune",
        "small_scratch",
        notes={"max_instruments": 80, "pitches": 16, "velocities": (60, 110)},
        music={"train_songs": 110, "test_songs": 40, "train_excerpts": 6, "test_excerpts": 2},
        limits={"nsynth": 30000, "irmas-train": 1500, "irmas-test": 500},
        about="CPU, about an hour per seed of Table II (64 min on 2 cores): ShaResNet18 at "
        "the paper's width with 64 sinc filters, 10 + 15 epochs, about 2,200 notes and "
        "1,600 clips",
    ),
    "paper": Preset(
        "paper",
        "pretrain",
        "finetune",
        "scratch",
        notes={"max_instruments": None, "pitches": None, "velocities": (25, 50, 75, 100, 127)},
        music={"train_songs": 1200, "test_songs": 400, "train_excerpts": 6, "test_excerpts": 3},
        limits={"nsynth": None, "irmas-train": None, "irmas-test": None},
        about="GPU: the paper's recipe (ResNet34, 30 + 40 epochs, batch 128 / 64)",
    ),
}


@dataclass(frozen=True)
class Recipe:
    """One row of an experiment before seeds: how the fine-tuned model is made."""

    pretrain: str | None  # the pre-training's augmentations (an ABLATIONS key); None: random
    model: str  # backbone (instrec.model.zoo name)
    fraction: float = 1.0  # share of the fine-tuning songs

    @property
    def init(self) -> str:
        return "random" if self.pretrain is None else self.pretrain


def experiment_rows(
    experiment: str, model: str, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> list[Recipe]:
    """The recipes an experiment compares; `model` is the preset's backbone."""
    if experiment in ("table2", "fig3", "table4"):
        return [Recipe(None, model), Recipe("all", model)]
    if experiment == "table3":
        return [Recipe(name, model) for name in ABLATIONS]
    if experiment == "fig4":
        return [Recipe(init, model, f) for init in (None, "all") for f in sorted(fractions)]
    if experiment == "fig7":
        return [Recipe("all", name) for name in MODEL_NAMES]
    raise InstrecError(f"unknown experiment {experiment!r} (known: {', '.join(EXPERIMENTS)})")


# ---- cells and their cache keys -------------------------------------------------------


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
    from instrec.train import pretrain

    return pretrain(config, data, out, resume=resume)


def _real_finetune(config: Config, data: Path, init: str, out: Path, resume: bool) -> Path:
    from instrec.train import finetune

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


def _say(message: str) -> None:
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
        _say(f"{step_text} {cell.stage} {cell.name}: cached")
        return run / MODEL
    resume = (run / CONFIG).is_file()
    if run.exists() and not resume:
        shutil.rmtree(run)  # created but never configured: nothing to keep
    _say(f"{step_text} {cell.stage} {cell.name}: {'resuming' if resume else 'training'}")
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
        _say(f"{step_text} {cell.stage} {cell.name}: cached")
        return True, json.loads((evaluation / "metrics.json").read_text(encoding="utf-8"))
    model = _train(cell, out, steps, step_text)
    _say(f"{step_text} evaluate {cell.name} on {stores.test} ({threshold_from} threshold)")
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
            _say(f"{step_text} {cell.name} failed: {error}")
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


# ---- data -------------------------------------------------------------------------------


def _store_ready(path: Path) -> bool:
    try:
        ClipStore.open(path)
    except InstrecError:
        return False
    return True


def prepare_store(dataset: str, root: Path, out: Path, workers: int, *extra: str) -> Path:
    """`instrec prepare DATASET ROOT --out OUT`, skipped when OUT already holds a store."""
    if _store_ready(out):
        _say(f"store {out}: cached")
        return out
    from instrec.data import prepare

    _say(f"prepare {dataset} from {root} -> {out}")
    parser = argparse.ArgumentParser()
    prepare.add_arguments(parser, "prepare")
    args = parser.parse_args(
        [dataset, str(root), "--out", str(out), "--workers", str(workers), "--force", *extra]
    )
    prepare.run(args)
    return out


def describe_store(path: Path) -> str:
    """`PATH (N items: train a, valid b, test c)`: how much data a number rests on."""
    store = ClipStore.open(path)
    splits = ", ".join(f"{split} {n}" for split, n in store.header["splits"].items())
    return f"`{path}` ({len(store)} {store.kind} items: {splits})"


def _limit(preset: Preset, dataset: str) -> list[str]:
    limit = preset.limits[dataset]
    return [] if limit is None else ["--limit", str(limit)]


def real_stores(nsynth: Path, irmas: Path, data: Path, preset: Preset, workers: int) -> Stores:
    """Stores from NSynth and IRMAS as distributed (capped by the preset's limits)."""
    return Stores(
        prepare_store("nsynth", nsynth, data / "nsynth", workers, *_limit(preset, "nsynth")),
        prepare_store(
            "irmas-train", irmas, data / "irmas-train", workers, *_limit(preset, "irmas-train")
        ),
        prepare_store(
            "irmas-test", irmas, data / "irmas-test", workers, *_limit(preset, "irmas-test")
        ),
    )


def _rendered(folder: Path, manifest: str) -> bool:
    try:
        return json.loads((folder / manifest).read_text())["summary"] is not None
    except (OSError, ValueError, KeyError, TypeError):
        return False


def rendered_stores(data: Path, preset: Preset, workers: int) -> Stores:
    """Render notes and ensembles at the preset's size (once), then prepare the stores."""
    from instrec.data.ensembles import render_ensembles
    from instrec.data.notes import render_notes

    notes, music = data / "rendered-notes", data / "rendered-music"
    if _rendered(notes, "render-notes.json"):
        _say(f"rendered notes {notes}: cached")
    else:
        _say(f"render notes -> {notes}")
        render_notes(notes, workers=workers, **preset.notes)
    if _rendered(music, "render-ensembles.json"):
        _say(f"rendered music {music}: cached")
    else:
        _say(f"render ensembles -> {music}")
        render_ensembles(music, workers=workers, **preset.music)
    return Stores(
        prepare_store("nsynth", notes, data / "notes", workers),
        prepare_store("irmas-train", music, data / "music-train", workers),
        prepare_store("irmas-test", music, data / "music-test", workers),
    )


RENDERED_CAVEAT = (
    "These models were trained and tested on data rendered from General MIDI soundfonts "
    "and music21 scores, not on NSynth and IRMAS: the numbers say whether the pipeline "
    "works and how the settings compare at this scale, not whether the paper's numbers "
    "are met. The paper's own numbers are beside ours, marked 'paper'."
)


def _caveat(preset: str, rendered: bool) -> str:
    parts = [RENDERED_CAVEAT] if rendered else []
    if preset != "paper":
        parts.append(
            f"The {preset} preset ({PRESETS[preset].about}) is far smaller than the paper's "
            "runs (30 + 40 epochs over 290 K notes and 6,705 clips): expect lower scores and "
            "a large spread between seeds."
        )
    return " ".join(parts)


# ---- the whole job ----------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """Everything `instrec reproduce` (and `instrec demo`) is asked to do."""

    out: Path
    experiments: tuple[str, ...] = EXPERIMENTS
    preset: str = "tiny"
    seeds: int = 3
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    threshold_from: str = "validation"
    nsynth: Path | None = None
    irmas: Path | None = None
    overrides: tuple[str, ...] = ()
    workers: int = 2


def reproduce(job: Job, steps: Steps | None = None) -> tuple[Path, Outcome, dict[str, Any]]:
    """Prepare the data, run the grid, write the report; returns (report.md, outcome,
    experiment -> recipe -> per-seed metrics)."""
    _check(job)
    preset = PRESETS[job.preset]
    data = job.out / "data" / job.preset  # rendered and prepared at the preset's size
    if job.nsynth is not None and job.irmas is not None:
        stores = real_stores(job.nsynth, job.irmas, data, preset, job.workers)
        described = f"NSynth {job.nsynth} and IRMAS {job.irmas}"
    else:
        stores = rendered_stores(data, preset, job.workers)
        described = "rendered notes and ensembles"
    grid = plan_grid(
        job.experiments, preset, range(job.seeds), stores, job.fractions, job.overrides
    )
    outcome = run_grid(grid, stores, job.out, job.threshold_from, steps)
    results = collect(grid, outcome)
    context = {
        "preset": job.preset,
        "seeds": list(range(job.seeds)),
        "data": described,
        "stores": [describe_store(path) for path in (stores.notes, stores.music, stores.test)],
        "threshold_from": job.threshold_from,
        "overrides": list(job.overrides),
        "caveat": _caveat(job.preset, job.nsynth is None),
        "failed": outcome.failed,
        "cells": {"ran": outcome.ran, "cached": outcome.cached, "failed": len(outcome.failed)},
    }
    path = write_report(job.out, results, context, preset.about)
    _say(
        f"{outcome.ran} cells ran, {outcome.cached} cached, {len(outcome.failed)} failed; "
        f"report: {path}"
    )
    return path, outcome, results


def _check(job: Job) -> None:
    if job.preset not in PRESETS:
        raise InstrecError(f"unknown preset {job.preset!r} (known: {', '.join(PRESETS)})")
    unknown = [e for e in job.experiments if e not in EXPERIMENTS]
    if unknown or not job.experiments:
        raise InstrecError(
            f"--experiments: unknown {', '.join(unknown) or '(none given)'} "
            f"(known: {', '.join(EXPERIMENTS)})"
        )
    if (job.nsynth is None) != (job.irmas is None):
        raise InstrecError("real data needs both --nsynth ROOT and --irmas ROOT")
    if job.seeds < 1:
        raise InstrecError(f"--seeds must be at least 1, not {job.seeds}")
    if job.threshold_from not in THRESHOLD_PROTOCOLS:
        raise InstrecError(f"--threshold-from must be validation or test, not {job.threshold_from}")
    if not job.fractions or any(not 0 < f <= 1 for f in job.fractions):
        raise InstrecError(f"--fractions must lie in (0, 1], not {list(job.fractions)}")


# ---- `instrec reproduce` ----------------------------------------------------------------


def add_job_arguments(parser: argparse.ArgumentParser, out_default: str) -> None:
    """The options `reproduce` and `demo` share."""
    parser.add_argument("--out", type=Path, default=Path(out_default), help="output folder")
    parser.add_argument(
        "--nsynth", type=Path, help="NSynth root (nsynth-train/valid/test); with --irmas"
    )
    parser.add_argument(
        "--irmas",
        type=Path,
        help="IRMAS root (IRMAS-TrainingData, IRMAS-TestingData-Part1/2/3); unset with "
        "--nsynth: render notes and ensembles into OUT/data/PRESET and use those",
    )
    parser.add_argument(
        "--threshold-from",
        choices=tuple(THRESHOLD_PROTOCOLS),
        default="validation",
        help="validation: F1 at the threshold best on the fine-tuning validation split; "
        "test: best on the test files (the paper's protocol, optimistic)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field of every training config, e.g. trainer.epochs=1 (repeatable; "
        "part of the cache key)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="processes for rendering and preparing data"
    )


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Options of `instrec reproduce`."""
    parser.add_argument(
        "--experiments",
        default=",".join(EXPERIMENTS),
        help="comma-separated: table2 (random vs pre-trained), fig3 (per-instrument F1), "
        "table3 (augmentation ablations), fig4 (share of fine-tuning data), fig7 (the six "
        "backbones), table4 (ours beside the paper's)",
    )
    scales = "; ".join(f"{p.name}: {p.about}" for p in PRESETS.values())
    parser.add_argument("--preset", choices=tuple(PRESETS), default="tiny", help=scales)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per cell (0 .. N-1)")
    parser.add_argument(
        "--fractions",
        default=",".join(f"{f:g}" for f in DEFAULT_FRACTIONS),
        help="fig4: shares of the fine-tuning songs",
    )
    add_job_arguments(parser, "runs/reproduce")


def job_from_args(args: argparse.Namespace, experiments: str, preset: str, seeds: int) -> Job:
    try:
        fractions = tuple(float(f) for f in getattr(args, "fractions", "1").split(","))
    except ValueError:
        raise InstrecError(
            f"--fractions {args.fractions!r}: expected numbers like 0.1,0.5,1"
        ) from None
    return Job(
        out=args.out,
        experiments=tuple(e.strip() for e in experiments.split(",") if e.strip()),
        preset=preset,
        seeds=seeds,
        fractions=fractions,
        threshold_from=args.threshold_from,
        nsynth=args.nsynth,
        irmas=args.irmas,
        overrides=tuple(args.set),
        workers=args.workers,
    )


def run(args: argparse.Namespace) -> int:
    job = job_from_args(args, args.experiments, args.preset, args.seeds)
    path, outcome, _ = reproduce(job)
    print(path.read_text(encoding="utf-8"))
    return 1 if outcome.failed else 0
