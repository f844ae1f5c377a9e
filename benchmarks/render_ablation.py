"""Which rendering ingredients make models hold up on instruments they never heard?

The cross-source benchmark: 80 songs (seed 0, songs 5001-5080) whose labelled parts are
played only by *held-out families* (a third of each class's recording or synthesis
families, over every installed source, family seed 0), rendered by today's plain renderer
(no timbre, performance or production), so that an ingredient can only help by teaching
something that carries over, not by matching the test's own treatment. Even songs choose
the threshold (`valid`), odd songs are scored (`test`).

Each *arm* renders the small preset's music (110 training songs x 6 excerpts, 40 in-source
test songs x 2) with the same seed and scores, never playing a held-out family, adding one
ingredient to the arm before it; a ShaResNet18 (64 sinc filters) is trained from random
weights on it (`small_scratch`, 15 epochs) once per seed and evaluated on its own in-source
test set and on the benchmark. Every step is cached in --work, so a rerun resumes.

    python benchmarks/render_ablation.py --work runs/abl --arms today,sources,timbre \
        --seeds 0,1 --out benchmarks/results/render_ablation
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from instrec.evaluate import evaluate_model
from instrec.experiments.stores import prepare_store
from instrec.synth.ensembles import render_ensembles
from instrec.train.config import load_config
from instrec.train.fit import finetune

SMALL_MUSIC = {"train_songs": 110, "test_songs": 40, "train_excerpts": 6, "test_excerpts": 2}
BENCHMARK = {
    "sources_used": ("all",),
    "holdout_share": 0.34,
    "family_seed": 0,
    "train_songs": 0,
    "test_songs": 0,
    "cross_source_songs": 80,
    "test_excerpts": 1,
    "seed": 0,
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
CLASSES = "cel,cla,flu,gac,gel,org,pia,sax,tru,vio,voi"
COLUMNS = (
    ("in_f1", "in-source F1-micro"),
    ("in_lrap", "in-source LRAP"),
    ("x_f1", "cross F1-micro"),
    ("x_best_f1", "cross best-threshold F1-micro"),
    ("x_f1_macro", "cross F1-macro"),
    ("x_lrap", "cross LRAP"),
    ("x_f1_xval", "cross F1-micro, cross-source threshold"),
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def benchmark_store(work: Path, workers: int) -> Path:
    """Render the benchmark once, split its songs into valid/test, prepare its store."""
    folder = work / "benchmark"
    if not (folder / "songs.json").exists():
        log("render benchmark")
        render_ensembles(folder, workers=workers, progress=False, **BENCHMARK)  # type: ignore[arg-type]
    files = sorted((folder / "cross-source" / "IRMAS-TestingData-Part1").glob("*.wav"))
    labels = folder / "labels.csv"
    with labels.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "labels", "split", "group"])
        for wav in files:
            song = int(wav.name.split()[0])
            codes = wav.with_suffix(".txt").read_text(encoding="utf-8").split()
            split = "valid" if song % 2 == 0 else "test"
            writer.writerow([wav.name, ";".join(codes), split, str(song)])
    return prepare_store(
        "folder",
        folder / "cross-source" / "IRMAS-TestingData-Part1",
        work / "benchmark-store",
        workers,
        "--csv",
        str(labels),
        "--classes",
        CLASSES,
    )


def arm_stores(work: Path, arm: str, workers: int) -> tuple[Path, Path]:
    """Render the arm's music (never a held-out family) and prepare its stores."""
    folder = work / arm / "render"
    if not (folder / "songs.json").exists():
        log(f"render {arm}")
        started = time.perf_counter()
        render_ensembles(
            folder,
            holdout_from=work / "benchmark" / "families.json",
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


def run_seed(work: Path, arm: str, seed: int, stores: tuple[Path, Path], bench: Path) -> dict:
    """Train one model of the arm (cached) and score it in source and across sources."""
    run = work / arm / f"s{seed}" / "run"
    model = run / "model.pt"
    if not model.exists():
        log(f"train {arm} seed {seed}")
        config = load_config("small_scratch", [f"seed={seed}"])
        finetune(config, stores[0], "scratch", run, resume=(run / "checkpoints").exists())
    inside = evaluation(model, stores[1], run.parent / "in-source", "model")
    cross = evaluation(model, bench, run.parent / "cross", "model", split="test")
    xval = evaluation(
        model, bench, run.parent / "cross-xval", "validation", split="test", validation_store=bench
    )
    return {
        "in_f1": inside["f1_micro"],
        "in_lrap": inside["lrap"],
        "x_f1": cross["f1_micro"],
        "x_best_f1": cross["sweep"]["best_f1_micro"],
        "x_f1_macro": cross["f1_macro"],
        "x_lrap": cross["lrap"],
        "x_f1_xval": xval["f1_micro"],
        "threshold": cross["threshold"],
        "x_threshold": xval["threshold"],
    }


def table(results: dict[str, dict[str, dict]]) -> str:
    """Markdown: one row per arm, each cell the mean and the seeds' values."""
    head = "| arm | " + " | ".join(name for _, name in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for arm, seeds in results.items():
        if not seeds:
            continue
        cells = []
        for key, _ in COLUMNS:
            values = [seeds[s][key] for s in sorted(seeds)]
            each = " / ".join(f"{v:.3f}" for v in values)
            cells.append(f"{statistics.mean(values):.3f} ({each})")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/abl"))
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/render_ablation"))
    args = parser.parse_args()
    arms = args.arms.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    bench = benchmark_store(args.work, args.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    results = {arm: results.get(arm, {}) for arm in ARMS if arm in arms or arm in results}
    for seed in seeds:  # every arm once before any arm twice: a cut-short run compares
        for arm in arms:
            stores = arm_stores(args.work, arm, args.workers)
            scores = run_seed(args.work, arm, seed, stores, bench)
            results.setdefault(arm, {})[str(seed)] = scores
            results_file.write_text(json.dumps(results, indent=1) + "\n")
            (args.out / "table.md").write_text(table(results) + "\n")
            log(f"{arm} seed {seed}: {scores}")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
