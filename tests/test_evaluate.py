"""`instrec evaluate`: window averaging, threshold choice, outputs, on tiny stores and models."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_trees import prepare_store, write_irmas_test_tree

from instrec.audio import windows
from instrec.cli import main
from instrec.data.store import ClipStore, Entry, StoreWriter
from instrec.errors import InstrecError
from instrec.evaluate import averaged_outputs, evaluate_model
from instrec.labels import IRMAS_CLASSES
from instrec.metrics import multilabel_metrics, threshold_sweep
from instrec.model.io import load_model_file, save_model_file
from instrec.model.zoo import build_model

SR = 16_000


def _write_store(
    path: Path, kind: str, items: list[tuple[np.ndarray, tuple[int, ...], str]]
) -> ClipStore:
    """A store of (audio, label indices, split) items over the IRMAS classes."""
    with StoreWriter(path, kind, IRMAS_CLASSES) as writer:
        for i, (audio, labels, split) in enumerate(items):
            entry = Entry(Path(f"item{i}.wav"), f"item{i}.wav", labels, split, group=i)
            writer.add(entry, [audio], [{}])
        writer.finish(SR, {})
    return ClipStore.open(path)


def _tone(rng: np.random.Generator, seconds: float, label: int) -> np.ndarray:
    """A class-dependent tone plus noise, so an untrained model still gives varied outputs."""
    t = np.arange(round(seconds * SR)) / SR
    tone = np.sin(2 * np.pi * 110 * (label + 1) * t)
    return (0.3 * tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ClipStore]:
    root = tmp_path_factory.mktemp("stores")
    rng = np.random.default_rng(0)
    test_items = [
        (_tone(rng, seconds, labels[0]), labels, "test")
        for seconds, labels in [
            (0.6, (0,)),
            (1.0, (3, 6)),
            (1.7, (6,)),
            (2.5, (2, 9, 10)),
            (1.2, (5,)),
            (2.0, (4, 6)),
        ]
    ]
    train_items = [
        (_tone(rng, 1.0, i % 11), (i % 11,), "valid" if i % 2 else "train") for i in range(26)
    ]
    return {
        "test": _write_store(root / "irmas-test", "irmas-test", test_items),
        "train": _write_store(root / "irmas-train", "irmas-train", train_items),
    }


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model("sharesnet18", width_multiplier=0.25, sinc_filters=16, sinc_stride=48)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    return save_model_file(path, model, IRMAS_CLASSES, threshold=0.42, meta={"seed": 0})


def _window_features(wave: torch.Tensor) -> torch.Tensor:
    """A fake model with known outputs: (first sample, mean, max) of each window."""
    return torch.stack([wave[:, 0], wave.mean(dim=1), wave.amax(dim=1)], dim=1)


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_window_outputs_are_averaged_per_item(tmp_path: Path, batch_size: int) -> None:
    lengths = [5000, 16000, 16001, 40000, 24000, 57000]
    # sample n holds n // 8000: the first sample of a window starting at s is s // 8000
    audio = [(np.arange(n) // 8000).astype(np.float32) for n in lengths]
    store = _write_store(tmp_path / "s", "irmas-test", [(a, (0,), "test") for a in audio])
    got = averaged_outputs(_window_features, store, np.arange(len(lengths)), batch_size)
    for row in range(len(lengths)):
        expected = _window_features(torch.from_numpy(windows(store.audio(row)))).mean(dim=0)
        np.testing.assert_allclose(got[row], expected.numpy(), rtol=1e-6)
    # (the store keeps 16 bits per sample: values agree with the written ones to ~1e-4)
    # 40000 samples: windows start at 0, 8000, 16000, 24000 -> first samples 0, 1, 2, 3
    assert got[3, 0] == pytest.approx(1.5, abs=1e-3)
    # 16001 samples: windows at 0 and 1 (flush with the end) -> first samples 0 and 0
    assert got[2, 0] == 0.0
    # 5000 samples: one zero-padded window, mean 0 over the whole window
    assert got[0, 1] == 0.0 and got[0, 2] == 0.0


def test_averaged_outputs_follow_the_requested_indices(tmp_path: Path) -> None:
    audio = [np.full(16000, value, dtype=np.float32) for value in (0.0, 1.0, 2.0, 3.0)]
    store = _write_store(tmp_path / "s", "irmas-train", [(a, (0,), "test") for a in audio])
    got = averaged_outputs(_window_features, store, np.array([3, 1]), batch_size=2)
    np.testing.assert_array_equal(got[:, 1], [3.0, 1.0])


@pytest.fixture(scope="module")
def validated(
    tmp_path_factory: pytest.TempPathFactory, stores: dict[str, ClipStore], model_path: Path
) -> tuple[Path, dict]:
    """Multi-label test store, threshold from the single-label store's valid split."""
    out = tmp_path_factory.mktemp("validated") / "eval"
    metrics = evaluate_model(
        model_path,
        stores["test"],
        out,
        threshold_from="validation",
        validation_store=stores["train"],
    )
    return out, metrics


def test_evaluate_writes_consistent_results(
    validated: tuple[Path, dict], stores: dict[str, ClipStore], model_path: Path
) -> None:
    out, metrics = validated
    for name in (
        "metrics.json",
        "report.md",
        "predictions.csv",
        "per_class_f1.png",
        "threshold_sweep.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "confusion.png").exists()  # multi-label data: no single-label analysis
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("f1_micro", "f1_macro", "f1_macro_eq11", "lrap", "threshold", "per_class"):
        assert saved[key] == metrics[key]
    assert set(saved["per_class"]) == set(IRMAS_CLASSES)
    assert saved["data"]["split"] == "test" and saved["data"]["items"] == 6

    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["source"] for r in rows] == [f"item{i}.wav" for i in range(6)]
    assert rows[3]["labels"] == "flu;vio;voi"
    probs = np.array([[float(r[f"p_{c}"]) for c in IRMAS_CLASSES] for r in rows])
    truth = np.asarray(stores["test"].targets)
    recomputed = multilabel_metrics(truth, probs, metrics["threshold"], IRMAS_CLASSES)
    assert recomputed["f1_micro"] == pytest.approx(metrics["f1_micro"])
    assert recomputed["lrap"] == pytest.approx(metrics["lrap"], abs=1e-3)

    # the probabilities are the sigmoid of the model's window-averaged logits
    model = load_model_file(model_path).model
    with torch.inference_mode():
        logits = model(torch.from_numpy(windows(stores["test"].audio(3)))).mean(dim=0)
    np.testing.assert_allclose(probs[3], torch.sigmoid(logits).numpy(), atol=1e-4)


def test_validation_threshold_is_the_best_on_the_validation_split(
    validated: tuple[Path, dict], stores: dict[str, ClipStore], model_path: Path
) -> None:
    _, metrics = validated
    assert metrics["threshold_from"] == "validation"
    assert str(stores["train"].path) in metrics["threshold_selection"]["how"]
    model = load_model_file(model_path).model
    valid = stores["train"].indices("valid")
    with torch.inference_mode():
        logits = model(torch.from_numpy(stores["train"].batch(valid)))  # 1 s clips: one window
    truth = np.asarray(stores["train"].targets[valid])
    sweep = threshold_sweep(truth, torch.sigmoid(logits).numpy())
    assert metrics["threshold"] == sweep["best_threshold"]


def test_bad_threshold_sources_fail_before_any_work(
    tmp_path: Path, stores: dict[str, ClipStore]
) -> None:
    missing_model = tmp_path / "never-read.pt"  # the checks come before loading the model
    with pytest.raises(InstrecError, match="no 'valid' split"):
        evaluate_model(missing_model, stores["test"], tmp_path / "x", threshold_from="validation")
    with pytest.raises(InstrecError, match="expected validation, test, model or a number"):
        evaluate_model(missing_model, stores["test"], tmp_path / "y", threshold_from="best")
    with pytest.raises(InstrecError, match=r"in \[0, 1\)"):
        evaluate_model(missing_model, stores["test"], tmp_path / "z", threshold_from="1.5")


def test_single_label_store_gets_accuracy_confusion_and_tsne(
    tmp_path: Path, stores: dict[str, ClipStore], model_path: Path
) -> None:
    out = tmp_path / "single"
    metrics = evaluate_model(model_path, stores["train"], out)
    assert metrics["threshold"] == pytest.approx(0.42) and metrics["threshold_from"] == "model"
    assert metrics["data"]["split"] == "valid" and metrics["data"]["items"] == 13
    single = metrics["single_label"]
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    hits = [r["top"] == r["labels"] for r in rows]
    assert single["accuracy"] == pytest.approx(np.mean(hits))
    assert np.sum(single["confusion"]) == 13 and single["tsne_items"] == 13
    assert (out / "confusion.png").stat().st_size > 0
    assert (out / "tsne.png").stat().st_size > 0
    assert "Single predominant instrument" in (out / "report.md").read_text()


def test_model_without_the_store_classes_is_refused(
    tmp_path: Path, stores: dict[str, ClipStore]
) -> None:
    model = build_model("sharesnet18", num_classes=3, width_multiplier=0.25, sinc_filters=16)
    path = save_model_file(tmp_path / "m.pt", model, ("cel", "cla", "flu"), threshold=0.5)
    with pytest.raises(InstrecError, match="no output for gac"):
        evaluate_model(path, stores["test"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_sweeps_on_test_keeps_results_and_replaces_them_when_forced(
    tmp_path: Path,
    stores: dict[str, ClipStore],
    model_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "cli"
    args = ["evaluate", str(model_path), str(stores["test"].path), "--out", str(out)]
    assert main([*args, "--threshold-from", "test"]) == 0
    assert "(test; protocol instrec)" in capsys.readouterr().out
    on_test = json.loads((out / "metrics.json").read_text())
    assert on_test["threshold"] == on_test["sweep"]["best_threshold"]
    assert on_test["f1_micro"] == pytest.approx(on_test["sweep"]["best_f1_micro"])

    assert main([*args, "--threshold-from", "0.3"]) == 2  # results exist: kept
    assert "already exists (use --force" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text()) == on_test

    assert main([*args, "--threshold-from", "0.3", "--force"]) == 0
    replaced = json.loads((out / "metrics.json").read_text())
    assert replaced["threshold"] == 0.3 and replaced["threshold_from"] == "value"
    assert [p.name for p in tmp_path.iterdir()] == ["cli"]  # no temporary folders left

    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "missing.pt"),
                str(stores["test"].path),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "missing.pt: no such model file" in capsys.readouterr().err


def test_prepared_irmas_test_files_are_evaluated_whole(tmp_path: Path, model_path: Path) -> None:
    root = write_irmas_test_tree(tmp_path / "irmas", seconds=(2.5, 4.0))
    store_path = prepare_store("irmas-test", root, tmp_path / "store")
    out = tmp_path / "eval"
    assert main(["evaluate", str(model_path), str(store_path), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["kind"] == "irmas-test" and metrics["data"]["items"] == 3
    rows = {r["source"]: r for r in csv.DictReader((out / "predictions.csv").open())}
    assert len(rows) == 3
    labels = {Path(source).stem: row["labels"] for source, row in rows.items()}
    assert labels["(12) Sinfonía nº 5-2"] == "cel;flu;vio"  # store order, not file order
    assert "single_label" not in metrics


# --- protocols: the paper's reading and the authors' code -----------------------------


def test_windows_drop_the_partial_tail_only_when_asked() -> None:
    x = np.zeros(round(2.3 * SR), dtype=np.float32)
    assert windows(x).shape[0] == 4  # 0, 0.5, 1.0 s and one flush with the end (1.3 s)
    assert windows(x, drop_tail=True).shape[0] == 3  # the authors' unfold: 0, 0.5, 1.0 s


def test_paper_grid_and_inclusive_threshold_follow_the_authors_code() -> None:
    from instrec.metrics import PAPER_GRID

    assert PAPER_GRID[0] == 0.0 and PAPER_GRID[-1] == 0.78 and PAPER_GRID.size == 40
    truth, scores = np.array([[1, 0], [0, 1]]), np.array([[0.5, 0.2], [0.1, 0.5]])
    assert multilabel_metrics(truth, scores, 0.5)["f1_micro"] == 0.0  # paper text: exceed
    assert multilabel_metrics(truth, scores, 0.5, inclusive=True)["f1_micro"] == 1.0  # code: >=


def _windowed(model_path: Path, store: ClipStore, average: str) -> tuple[np.ndarray, np.ndarray]:
    """(items, classes) probabilities computed here, window by window, for a protocol."""
    model = load_model_file(model_path).model.eval()
    rows = []
    for i in range(len(store)):
        cut = torch.from_numpy(windows(store.audio(i), drop_tail=True))
        with torch.inference_mode():
            logits = model(cut).double()
        rows.append(
            torch.sigmoid(logits).mean(0) if average == "probabilities"
            else torch.sigmoid(logits.mean(0))
        )  # fmt: skip
    return torch.stack(rows).numpy(), np.asarray(store.targets[:])


@pytest.mark.parametrize(
    ("protocol", "average"), [("paper", "logits"), ("authors", "probabilities")]
)
def test_paper_and_authors_protocols(
    tmp_path: Path, stores: dict[str, ClipStore], model_path: Path, protocol: str, average: str
) -> None:
    metrics = evaluate_model(
        model_path, stores["test"], tmp_path / "eval", protocol=protocol, tsne_points=0
    )
    probs, truth = _windowed(model_path, stores["test"], average)
    sweep = threshold_sweep(truth, probs, np.round(np.arange(40) * 0.02, 2), inclusive=True)
    assert metrics["threshold_from"] == "test"
    assert metrics["threshold"] == pytest.approx(sweep["best_threshold"])
    assert metrics["f1_micro"] == pytest.approx(sweep["best_f1_micro"])
    assert metrics["sweep"]["grid"] == pytest.approx(np.round(np.arange(40) * 0.02, 2))
    assert metrics["protocol"].startswith(f"{protocol}:")
    assert f"protocol {protocol}:" in (tmp_path / "eval" / "report.md").read_text()


def test_a_protocol_that_sweeps_on_test_refuses_another_threshold_source(
    tmp_path: Path, stores: dict[str, ClipStore], model_path: Path
) -> None:
    with pytest.raises(InstrecError, match="--protocol paper sweeps the threshold"):
        evaluate_model(
            model_path, stores["test"], tmp_path / "e", threshold_from="model", protocol="paper"
        )
