"""Put a trained model into the package as a shipped model (a maintainer's tool).

    .venv/bin/python scripts/ship_model.py RUN/model.pt --name NAME --card card.json \
        [--threshold T] [--default]

Writes instrec/weights/NAME.pt (the model file, with the shipped threshold) and
instrec/weights/NAME.onnx (exported and verified against PyTorch), and lists them in
instrec/weights/models.json with their sha256 and the card (architecture, parameters, what
it was trained on, measured scores, tagging speed: the JSON object in card.json, whose
parameter count is filled in here). An existing entry of that name is replaced.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from instrec.export.onnx_graph import export_onnx
from instrec.model.io import load_model_file, save_model_file
from instrec.model.registry import MANIFEST, weights_folder
from instrec.model.zoo import count_parameters


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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the trained model file (RUN/model.pt)")
    parser.add_argument("--name", required=True, help="the name users will type")
    parser.add_argument("--card", type=Path, required=True, help="card.json: what to list")
    parser.add_argument("--threshold", type=float, default=None, help="the shipped threshold")
    parser.add_argument("--default", action="store_true", help="make it the default model")
    args = parser.parse_args()
    card = json.loads(args.card.read_text(encoding="utf-8"))
    print(f"wrote {ship(args.model, args.name, card, args.threshold, args.default)}")


if __name__ == "__main__":
    main()
