"""Which rendering ingredients make models hold up on instruments they never heard?

Two cross-source benchmarks of 80 songs (seed 0, songs 5001-5080; instrec.synth.benchmark)
whose labelled parts are played only by *held-out families* (a third of each class's
recording or synthesis families, over every installed source, family seed 0): `plain`,
rendered without timbre, performance or production, so an ingredient can only help by
teaching something that carries over, never by matching the test's treatment (it matches
the first arm's instead); and `full`, with every ingredient on, which matches the last
arm's. Even songs choose a threshold (`valid`), odd songs are scored (`test`).

Each *arm* renders the small preset's music (110 training songs x 6 excerpts, 40 in-source
test songs x 2) with the same seed and scores, never playing a held-out family, adding one
ingredient to the arm before it; a ShaResNet18 (64 sinc filters) is trained from random
weights on it (`small_scratch`, 15 epochs) once per seed and evaluated on its own in-source
test set and on both benchmarks. Every step is cached in --work, so a rerun resumes.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/render_ablation.py --work runs/abl \
        --seeds 0,1 --out benchmarks/results/render_ablation
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from instrec.evaluate import evaluate_model
from instrec.experiments.stores import prepare_store
from instrec.synth.benchmark import (
    BENCHMARK_CLASSES,
    LABELS,
    cross_source_folder,
    families_file,
    render_cross_source,
)
from instrec.synth.ensembles import render_ensembles
from instrec.train.config import load_config
from instrec.train.fit import finetune

SMALL_MUSIC = {"train_songs": 110, "test_songs": 40, "train_excerpts": 6, "test_excerpts": 2}
# the held-out families, played plainly (what `reproduce` uses) or with every ingredient
BENCHMARKS: dict[str, dict[str, tuple[str, ...]]] = {
    "plain": {},
    "full": {
        "timbre_options": ("all",),
        "performance_options": ("all",),
        "production_options": ("all",),
    },
}
# each arm adds one ingredient to the one before it
ARMS: dict[str, dict[str, tuple[str, ...]]] = {
    "today": {"sources_used": ("soundfonts",)},
    "sources": {"sources_used": ("all",)},
    "timbre": {"sources_used": ("all",), "timbre_options": ("all",)},
    "performance": {
        "sources_used": ("all",),
        "timbre_options": ("all",),
        "performance_options": ("all",),
    },
    "production": {
        "sources_used": ("all",),
        "timbre_options": ("all",),
        "performance_options": ("all",),
        "production_options": ("all",),
    },
}
COLUMNS = (
    ("in_f1", "in-source F1-micro"),
    ("in_lrap", "in-source LRAP"),
    ("x_f1", "plain: F1-micro"),
    ("x_best_f1", "plain: best-threshold F1-micro"),
    ("x_f1_macro", "plain: F1-macro"),
    ("x_lrap", "plain: LRAP"),
    ("x_f1_xval", "plain: F1-micro, cross-source threshold"),
    ("f_f1", "full: F1-micro"),
    ("f_best_f1", "full: best-threshold F1-micro"),
    ("f_f1_macro", "full: F1-macro"),
    ("f_lrap", "full: LRAP"),
    ("f_f1_xval", "full: F1-micro, cross-source threshold"),
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def benchmark_folder(work: Path, name: str) -> Path:
    return work / ("benchmark" if name == "plain" else f"benchmark-{name}")


def benchmark_store(work: Path, name: str, workers: int) -> Path:
    """Render a benchmark once (seed 0, the arms' seed: no score in both) and prepare it."""
    folder = benchmark_folder(work, name)
    log(f"benchmark {name}")
    render_cross_source(folder, 0, workers, progress=False, treatment=BENCHMARKS[name])
    return prepare_store(
        "folder", cross_source_folder(folder), work / f"{folder.name}-store", workers,
        "--csv", str(folder / LABELS), "--classes", BENCHMARK_CLASSES,
    )  # fmt: skip


def arm_stores(work: Path, arm: str, workers: int) -> tuple[Path, Path]:
    """Render the arm's music (never a held-out family) and prepare its stores."""
    folder = work / arm / "render"
    if not (folder / "songs.json").exists():
        log(f"render {arm}")
        started = time.perf_counter()
        render_ensembles(
            folder,
            holdout_from=families_file(benchmark_folder(work, "plain")),
            seed=0,
            workers=workers,
            progress=False,
            **SMALL_MUSIC,  # type: ignore[arg-type]
            **ARMS[arm],  # type: ignore[arg-type]
        )
        (work / arm / "render_seconds.txt").write_text(f"{time.perf_counter() - started:.0f}\n")
    train = prepare_store("irmas-train", folder, work / arm / "train", workers)
    test = prepare_store("irmas-test", folder, work / arm / "test", workers)
    return train, test


def evaluation(model: Path, store: Path, out: Path, threshold: str, **extra: Any) -> dict:
    """metrics.json of an evaluation, run once."""
    done = out / "metrics.json"
    if not done.exists():
        evaluate_model(model, store, out, threshold, tsne_points=0, force=True, **extra)
    return json.loads(done.read_text(encoding="utf-8"))


def run_seed(
    work: Path,
    arm: str,
    seed: int,
    stores: tuple[Path, Path],
    benches: dict[str, Path],
    epochs: int | None = None,
) -> dict:
    """Train one model of the arm (cached) and score it in source and across sources;
    `epochs`: a longer (or shorter) training than the preset's, in a folder of its own."""
    run = work / arm / (f"s{seed}" if epochs is None else f"s{seed}-e{epochs}") / "run"
    model = run / "model.pt"
    if not model.exists():
        log(f"train {arm} seed {seed}")
        longer = [] if epochs is None else [f"trainer.epochs={epochs}"]
        config = load_config("small_scratch", [f"seed={seed}", *longer])
        finetune(config, stores[0], "scratch", run, resume=(run / "checkpoints").exists())
    inside = evaluation(model, stores[1], run.parent / "in-source", "model")
    scores = {"in_f1": inside["f1_micro"], "in_lrap": inside["lrap"]}
    for name, bench in benches.items():
        folder = run.parent / ("cross" if name == "plain" else name)
        cross = evaluation(model, bench, folder, "model", split="test")
        xval = evaluation(
            model, bench, Path(f"{folder}-xval"), "validation", split="test",
            validation_store=bench,
        )  # fmt: skip
        key = name[0] if name != "plain" else "x"
        scores |= {
            f"{key}_f1": cross["f1_micro"],
            f"{key}_best_f1": cross["sweep"]["best_f1_micro"],
            f"{key}_f1_macro": cross["f1_macro"],
            f"{key}_lrap": cross["lrap"],
            f"{key}_f1_xval": xval["f1_micro"],
            f"{key}_threshold": xval["threshold"],
        }
    return {**scores, "threshold": inside["threshold"]}


def table(results: dict[str, dict[str, dict]]) -> str:
    """Markdown: one row per arm, each cell the mean and the seeds' values."""
    head = "| arm | " + " | ".join(name for _, name in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for arm, seeds in results.items():
        if not seeds:
            continue
        cells = []
        for key, _ in COLUMNS:
            values = [seeds[s][key] for s in sorted(seeds) if key in seeds[s]]
            each = " / ".join(f"{v:.3f}" for v in values)
            cells.append(f"{statistics.mean(values):.3f} ({each})" if values else "–")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/abl"))
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--epochs", type=int, help="train this many epochs instead of the preset's 15"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/render_ablation"))
    args = parser.parse_args()
    arms = args.arms.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    benches = {name: benchmark_store(args.work, name, args.workers) for name in BENCHMARKS}
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    results = {arm: results.get(arm, {}) for arm in ARMS if arm in arms or arm in results}
    for seed in seeds:  # every arm once before any arm twice: a cut-short run compares
        for arm in arms:
            stores = arm_stores(args.work, arm, args.workers)
            scores = run_seed(args.work, arm, seed, stores, benches, args.epochs)
            results.setdefault(arm, {})[str(seed)] = scores
            results_file.write_text(json.dumps(results, indent=1) + "\n")
            (args.out / "table.md").write_text(table(results) + "\n")
            log(f"{arm} seed {seed}: {scores}")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
