"""Shipped models are found by name, checked against their digest, and never guessed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from instrec.errors import InstrecError
from instrec.model.registry import ShippedModel, read_manifest, resolve
from instrec.model.zoo import shipped_table


def _ship(folder: Path, files: dict[str, bytes], default: str | None = "m1") -> Path:
    """A weights folder holding `files` and a manifest listing them as model m1."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    entry = {
        "files": {Path(name).suffix[1:]: name for name in files},
        "sha256": {Path(n).suffix[1:]: hashlib.sha256(d).hexdigest() for n, d in files.items()},
        "card": {"architecture": "sharesnet18"},
    }
    manifest = {"default": default, "models": {"m1": entry}}
    (folder / "models.json").write_text(json.dumps(manifest))
    return folder


def test_no_name_means_the_default_and_a_name_its_file(tmp_path: Path) -> None:
    folder = _ship(tmp_path / "w", {"m1.onnx": b"graph", "m1.pt": b"weights"})
    assert resolve(None, folder=folder) == folder / "m1.onnx"
    assert resolve("m1", "pt", folder=folder) == folder / "m1.pt"
    default, models = read_manifest(folder)
    assert default == "m1" and models["m1"].card["architecture"] == "sharesnet18"


def test_an_existing_file_is_taken_as_it_is(tmp_path: Path) -> None:
    own = tmp_path / "mine.pt"
    own.write_bytes(b"x")
    assert resolve(own, folder=_ship(tmp_path / "w", {"m1.onnx": b"g"})) == own


@pytest.mark.parametrize(
    ("given", "fmt", "message"),
    [
        ("m2", "onnx", r"m2: no such model file, nor a shipped model \(shipped: m1\)"),
        ("m1", "pt", "m1: shipped without a pt file"),
    ],
)
def test_unknown_names_and_formats_are_one_line(
    tmp_path: Path, given: str, fmt: str, message: str
) -> None:
    folder = _ship(tmp_path / "w", {"m1.onnx": b"graph"})
    with pytest.raises(InstrecError, match=message):
        resolve(given, fmt, folder=folder)


def test_a_damaged_shipped_file_is_refused(tmp_path: Path) -> None:
    folder = _ship(tmp_path / "w", {"m1.onnx": b"graph"})
    (folder / "m1.onnx").write_bytes(b"graph, changed")
    with pytest.raises(InstrecError, match=r"missing or damaged .*reinstall instrec"):
        resolve(None, folder=folder)


def test_an_install_without_models_asks_for_a_path(tmp_path: Path) -> None:
    folder = _ship(tmp_path / "w", {}, default=None)
    with pytest.raises(InstrecError, match="ships no model: give a model file"):
        resolve(None, folder=folder)


def test_a_damaged_manifest_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "models.json").write_text("{not json")
    with pytest.raises(InstrecError, match="damaged model manifest"):
        read_manifest(tmp_path)


def test_the_models_listing_shows_each_cards_measurements() -> None:
    """`instrec models` prints what a card measured, and leaves out what it did not."""
    measured = {
        "architecture": "sharesnet18",
        "parameters": 519_173,
        "trained_on": "rendered audio only",
        "scores": {"cross-source test (40 files)": {"f1_micro": 0.5, "lrap": 0.75}},
        "threshold_value": 0.12,
        "solo_top1_accuracy": 6 / 11,
        "speed": "1.50 s to tag 3 minutes",
        "card": "docs/m1.md",
    }
    shipped = {
        "m1": ShippedModel("m1", {}, {}, measured),
        "m2": ShippedModel("m2", {}, {}, {"architecture": "resnet18", "parameters": 715_141}),
    }
    first, second = shipped_table("m1", shipped).splitlines()[2:]
    assert first == (
        "* m1: sharesnet18 (519K parameters), trained on rendered audio only; cross-source "
        "test (40 files): f1_micro 0.500, lrap 0.750; threshold 0.12; solos: top instrument "
        "right on 55%; 1.50 s to tag 3 minutes; card: docs/m1.md"
    )
    assert second == "  m2: resnet18 (715K parameters)"
