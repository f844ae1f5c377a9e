"""Put a trained model into the package as a shipped model (a maintainer's tool).

    .venv/bin/python scripts/ship_model.py --from-reproduce OUT [--seed N] --name NAME \
        [--card extra.json] [--default]
    .venv/bin/python scripts/ship_model.py RUN/model.pt --name NAME --card card.json \
        [--threshold T] [--default]

The first form ships the model of `instrec reproduce --preset ship --out OUT` (with
several `--seeds`, the one `--seed` names):
its threshold is the one its cross-source benchmark's valid songs chose (instrument
families no training data plays), and its card is measured here: F1 and LRAP on the
in-source test songs at that threshold, on the cross-source test songs, and the top-1
accuracy on solos played by held-out family members. The second form ships any model
file with a card written by hand.

Writes instrec/weights/NAME.pt (the model file, with the shipped threshold) and
instrec/weights/NAME.onnx (exported and verified against PyTorch), and lists them in
instrec/weights/models.json with their sha256 and the card (architecture, parameters, what
it was trained on, measured scores, tagging speed), whose parameter count is filled in
here. An existing entry of that name is replaced.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from instrec.errors import InstrecError
from instrec.export.onnx_graph import export_onnx
from instrec.machine import cpu_description
from instrec.model.io import load_model_file, save_model_file
from instrec.model.registry import MANIFEST, weights_folder
from instrec.model.zoo import count_parameters

RATE = 44_100  # the speed figure tags audio at the common file rate
SCORE_KEYS = ("f1_micro", "f1_macro", "lrap")


def ship(model: Path, name: str, card: dict, threshold: float | None, default: bool) -> Path:
    folder = weights_folder()
    loaded = load_model_file(model)
    chosen = loaded.threshold if threshold is None else threshold
    pt, onnx = folder / f"{name}.pt", folder / f"{name}.onnx"
    meta = {**loaded.meta, "shipped_as": name, "threshold_chosen_on": card.get("threshold")}
    save_model_file(pt, loaded.model, loaded.classes, chosen, meta, overwrite=True)
    export_onnx(pt, onnx, overwrite=True)
    manifest_path = folder / MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["models"][name] = {
        "files": {"onnx": onnx.name, "pt": pt.name},
        "sha256": {"onnx": _sha256(onnx), "pt": _sha256(pt)},
        "card": {
            **card,
            "parameters": count_parameters(loaded.model),
            "threshold_value": chosen,
        },
    }
    if default or manifest["default"] is None:
        manifest["default"] = name
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest_path


def shipped_cell(out: Path, seed: int | None = None) -> Path:
    """The one finished fine-tuning of a `reproduce --preset ship` run (of `seed`)."""
    cells = sorted(p.parents[1] for p in (out / "cells" / "finetune").glob("*/run/model.pt"))
    if seed is not None:
        cells = [c for c in cells if f"seed={seed}" in _described(c).get("overrides", ())]
    if len(cells) != 1:
        found = ", ".join(p.name for p in cells) or "none"
        which = "--seeds 1, or --seed N" if seed is None else f"of seed {seed}"
        raise InstrecError(
            f"{out}: expected exactly one finished fine-tuning ({which}), found {found}"
        )
    return cells[0]


def _described(cell: Path) -> dict[str, Any]:
    """The cell's cell.json (what reproduce ran); {} where there is none."""
    try:
        described: dict[str, Any] = json.loads((cell / "cell.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return described


def _metrics(cell: Path, evaluation: str) -> dict[str, Any]:
    """metrics.json of the cell's one evaluation `evaluation` (e.g. cross-source-valid)."""
    found = sorted(cell.glob(f"eval-{evaluation}-*/metrics.json"))
    if len(found) != 1:
        raise InstrecError(
            f"{cell}: expected one eval-{evaluation}-*/metrics.json, found {len(found)}"
        )
    metrics: dict[str, Any] = json.loads(found[0].read_text(encoding="utf-8"))
    return metrics


def _scores(metrics: dict[str, Any]) -> dict[str, float]:
    scores = {key: round(float(metrics[key]), 3) for key in SCORE_KEYS}
    return {**scores, "best_f1_micro": round(float(metrics["sweep"]["best_f1_micro"]), 3)}


def _set_name(metrics: dict[str, Any], what: str) -> str:
    return f"{what} ({metrics['data']['items']} files)"


def solo_accuracy(model: Path, families: Path) -> tuple[float, dict[str, str]]:
    """Top-1 accuracy on one solo per class, each played by a member of a family the
    training never heard; and which member played each class."""
    from instrec.synth.solos import held_out_members, top1_hits
    from instrec.tagging import load_model

    tagger = load_model(model)
    members = held_out_members(families)
    hits = top1_hits(lambda audio, sr: tagger.predict(audio, sr=sr).probabilities, members)
    return sum(hits) / len(hits), members


def tagging_speed(model: Path, seconds: float = 180.0) -> str:
    """How long its ONNX graph takes to tag a `seconds` file of noise-free tones (the best
    of three; speed does not depend on the audio), with this machine named."""
    import os
    import time

    import numpy as np

    from instrec.tagging import load_model

    with tempfile.TemporaryDirectory() as scratch:
        graph = Path(scratch) / "model.onnx"
        export_onnx(model, graph)
        tagger = load_model(graph)
        t = np.arange(round(seconds * RATE)) / RATE
        song = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            tagger.predict(song, sr=RATE)
            best = min(best, time.perf_counter() - start)
    cpu, flags = cpu_description()
    has = " ".join(flag for flag, present in flags.items() if present) or "none"
    return (
        f"{best:.2f} s to tag {seconds / 60:g} minutes of 44.1 kHz audio after decoding "
        f"(onnxruntime, {os.cpu_count()} CPU cores, {cpu}; flags: {has})"
    )


def card_from_reproduce(out: Path, seed: int | None) -> tuple[Path, float, dict[str, Any]]:
    """(model file, shipped threshold, card) of a `reproduce --preset ship` run in `out`."""
    from instrec.evaluate import evaluate_model
    from instrec.experiments.stores import BENCHMARK_FOLDER
    from instrec.synth.benchmark import families_file

    cell = shipped_cell(out, seed)
    model = cell / "run" / "model.pt"
    described = _described(cell)
    cross = _metrics(cell, "cross-source-valid")
    in_source = _metrics(cell, "validation")
    threshold = float(cross["threshold"])
    with tempfile.TemporaryDirectory() as scratch:
        at_shipped = evaluate_model(
            model, in_source["data"]["store"], Path(scratch) / "eval", threshold, tsne_points=0
        )
    at_shipped["sweep"] = in_source["sweep"]  # the same files: the same best threshold
    families = families_file(Path(cross["data"]["store"]).parent / BENCHMARK_FOLDER)
    accuracy, members = solo_accuracy(model, families)
    architecture = load_model_file(model).model.config
    wide = "" if architecture.width_multiplier == 1 else f" x{architecture.width_multiplier:g}"
    card = {
        "architecture": f"{architecture.arch}{wide}, {architecture.sinc_filters} sinc filters, "
        "the authors' fine-tuning head",
        "trained_on": "rendered audio only (instrec reproduce --preset ship): "
        f"config {described['config']} with {' '.join(described['overrides'])}, "
        f"initialisation {described['init'] or 'random'}",
        "threshold": f"{threshold:g}: best F1-micro on the cross-source benchmark's valid "
        "songs (instrument families no training data plays)",
        "scores": {
            _set_name(at_shipped, "in-source test"): _scores(at_shipped),
            _set_name(cross, "cross-source test"): _scores(cross),
        },
        "solo_top1_accuracy": round(accuracy, 3),
        "solo_members": members,  # in IRMAS class order
        "speed": tagging_speed(model),
        "card": "docs/shipped-model.md",
    }
    return model, threshold, card


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, nargs="?", help="the trained model file (RUN/model.pt)")
    parser.add_argument("--from-reproduce", type=Path, metavar="OUT", help="a ship preset run")
    parser.add_argument(
        "--seed", type=int, default=None, help="with --from-reproduce: the seed to ship"
    )
    parser.add_argument("--name", required=True, help="the name users will type")
    parser.add_argument(
        "--card", type=Path, help="card.json: what to list (added to a measured one)"
    )
    parser.add_argument("--threshold", type=float, default=None, help="the shipped threshold")
    parser.add_argument("--default", action="store_true", help="make it the default model")
    args = parser.parse_args()
    extra = {} if args.card is None else json.loads(args.card.read_text(encoding="utf-8"))
    if (args.model is None) == (args.from_reproduce is None):
        parser.error("give a model file or --from-reproduce OUT")
    if args.seed is not None and args.from_reproduce is None:
        parser.error("--seed picks a seed of --from-reproduce OUT")
    if args.from_reproduce is not None:
        model, threshold, card = card_from_reproduce(args.from_reproduce, args.seed)
        card = {**card, **extra}
    else:
        model, threshold, card = args.model, args.threshold, extra
    print(json.dumps(card, indent=2))
    print(f"wrote {ship(model, args.name, card, threshold, args.default)}")


if __name__ == "__main__":
    main()
