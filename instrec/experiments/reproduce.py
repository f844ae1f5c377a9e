"""`instrec reproduce`: the paper's experiment grid, run and cached cell by cell.

The data (instrec.experiments.stores) is prepared once under OUT/data/<preset>/, the
grid's cells (instrec.experiments.grid) run or are found finished under OUT/cells/, and
after every run the finished cells of the experiments asked for go to
instrec.experiments.report, which rebuilds the report (OUT/report.md, tables as
Markdown, figures as PNG, results.json); the cells themselves are never overwritten.
With --results DIR every finished cell's small files are kept in DIR as it finishes and
the report is rewritten there after each cell, so a grid longer than one session resumes
from a fresh clone (instrec.experiments.grid.Results).
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instrec.atomic import check_writable
from instrec.errors import InstrecError
from instrec.experiments.grid import (
    MODEL_LIMIT,
    Grid,
    Outcome,
    Results,
    Steps,
    Stores,
    collect,
    plan_grid,
    run_grid,
    say,
)
from instrec.experiments.presets import (
    DEFAULT_FRACTIONS,
    EXPERIMENTS,
    KNOWN_EXPERIMENTS,
    PRESETS,
    SHIP,
)
from instrec.experiments.report import THRESHOLD_PROTOCOLS, write_report
from instrec.experiments.stores import describe_store, real_stores, rendered_stores

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
    results: Path | None = None  # finished cells and the report are kept here too
    model_limit: int = MODEL_LIMIT  # bytes: a bigger fine-tuned model is not kept


def reproduce(job: Job, steps: Steps | None = None) -> tuple[Path, Outcome, dict[str, Any]]:
    """Prepare the data, run the grid, write the report; returns (report.md, outcome,
    experiment -> recipe -> per-seed metrics)."""
    _check(job)
    if job.results is not None:
        check_writable(job.results)  # before hours of training, not after the first cell
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
    report = functools.partial(_report, job, grid, stores, described)
    kept = None if job.results is None else Results(job.results, job.model_limit)
    after_cell = None if job.results is None else functools.partial(report, job.results)
    outcome = run_grid(grid, stores, job.out, job.threshold_from, steps, kept, after_cell)
    if job.results is not None:
        report(job.results, outcome)
    path = report(job.out, outcome)
    say(
        f"{outcome.ran} cells ran, {outcome.cached} cached, {len(outcome.failed)} failed; "
        f"report: {path}"
    )
    return path, outcome, collect(grid, outcome)


def _report(
    job: Job, grid: Grid, stores: Stores, described: str, folder: Path, outcome: Outcome
) -> Path:
    """The report of the grid's finished cells, written into `folder`."""
    context = {
        "preset": job.preset,
        "seeds": list(range(job.seeds)),
        "data": described,
        "stores": [describe_store(path) for path in _described(stores)],
        "threshold_from": job.threshold_from,
        "overrides": list(job.overrides),
        "caveat": _caveat(job.preset, job.nsynth is None),
        "failed": outcome.failed,
        "cells": {"ran": outcome.ran, "cached": outcome.cached, "failed": len(outcome.failed)},
    }
    return write_report(folder, collect(grid, outcome), context, PRESETS[job.preset].about)


def _described(stores: Stores) -> list[Path]:
    """The stores the report names: training, fine-tuning, test (and cross-source)."""
    cross = [] if stores.cross_source is None else [stores.cross_source]
    return [stores.notes, stores.music, stores.test, *cross]


def _check(job: Job) -> None:
    if job.preset not in PRESETS:
        raise InstrecError(f"unknown preset {job.preset!r} (known: {', '.join(PRESETS)})")
    unknown = [e for e in job.experiments if e not in KNOWN_EXPERIMENTS]
    if unknown or not job.experiments:
        raise InstrecError(
            f"--experiments: unknown {', '.join(unknown) or '(none given)'} "
            f"(known: {', '.join(KNOWN_EXPERIMENTS)})"
        )
    if (job.nsynth is None) != (job.irmas is None):
        raise InstrecError("real data needs both --nsynth ROOT and --irmas ROOT")
    if job.seeds < 1:
        raise InstrecError(f"--seeds must be at least 1, not {job.seeds}")
    if job.threshold_from not in THRESHOLD_PROTOCOLS:
        raise InstrecError(f"--threshold-from must be validation or test, not {job.threshold_from}")
    if not job.fractions or any(not 0 < f <= 1 for f in job.fractions):
        raise InstrecError(f"--fractions must lie in (0, 1], not {list(job.fractions)}")
    if job.model_limit < 0:
        raise InstrecError(f"--results-model-limit must be 0 or more, not {job.model_limit}")


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
        help="comma-separated: table2 (random vs pre-trained), fig3 (per-instrument F1), "
        "table3 (augmentation ablations), fig4 (share of fine-tuning data), fig7 (the six "
        "backbones), widths (ShaResNet18/34 at x1, x2, x4 the preset's width: parameters, "
        "MACs per second of audio, scores), table4 (ours beside the paper's), init "
        "(random / notes / rendered music / notes then music at equal pre-training steps, "
        f"and the best two's data curve), {SHIP} (the shipped model's recipe: one row, the "
        f"preset's chosen initialisation); None: the preset's own ({','.join(EXPERIMENTS)}; "
        f"the ship preset: {SHIP})",
    )
    scales = "; ".join(f"{p.name}: {p.about}" for p in PRESETS.values())
    parser.add_argument("--preset", choices=tuple(PRESETS), default="tiny", help=scales)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per cell (0 .. N-1)")
    parser.add_argument(
        "--fractions",
        default=",".join(f"{f:g}" for f in DEFAULT_FRACTIONS),
        help="fig4: shares of the fine-tuning songs",
    )
    parser.add_argument(
        "--results",
        type=Path,
        metavar="DIR",
        help="keep every finished cell (cell.json, metrics.json, pre-trained and small "
        "fine-tuned model files) and the report in DIR as they come, and start from what "
        "DIR holds: a grid longer than one session resumes from a fresh clone",
    )
    parser.add_argument(
        "--results-model-limit",
        type=float,
        default=MODEL_LIMIT / 2**20,
        metavar="MB",
        help="with --results: keep fine-tuned model files up to this size (MiB; "
        "pre-trained ones are always kept, fine-tunings start from them)",
    )
    add_job_arguments(parser, "runs/reproduce")


def job_from_args(
    args: argparse.Namespace, experiments: str | None, preset: str, seeds: int
) -> Job:
    """The job the options ask for; no experiments: the preset's own."""
    if experiments is None:
        experiments = ",".join(PRESETS[preset].experiments if preset in PRESETS else EXPERIMENTS)
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
        results=getattr(args, "results", None),
        model_limit=round(getattr(args, "results_model_limit", MODEL_LIMIT / 2**20) * 2**20),
    )


def run(args: argparse.Namespace) -> int:
    job = job_from_args(args, args.experiments, args.preset, args.seeds)
    path, outcome, _ = reproduce(job)
    print(path.read_text(encoding="utf-8"))
    return 1 if outcome.failed else 0
