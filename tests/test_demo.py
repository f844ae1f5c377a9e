"""`instrec demo` end to end, really: render, prepare, pre-train, fine-tune, evaluate, report.

The tiny preset is shrunk further (4 instruments, 24 songs, one epoch, batches of 8) so
the whole chain runs in about a minute; the second run must find every step cached.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from instrec.cli import main
from instrec.experiments import presets
from instrec.tagging import load_model

SMALLER = dataclasses.replace(
    presets.PRESETS["tiny"],
    notes={"max_instruments": 4, "pitches": 6, "velocities": (100,)},  # >= 1 valid note
    music={"train_songs": 22, "test_songs": 2, "train_excerpts": 1, "test_excerpts": 1,
           "test_seconds": (5.0, 5.0)},
    cross_source_songs=4,
)  # fmt: skip
FASTER = ["--set", "trainer.epochs=1", "--set", "trainer.batch_size=8"]


@pytest.mark.slow
def test_demo_runs_the_whole_chain_and_then_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(presets.PRESETS, "tiny", SMALLER)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *FASTER]) == 0
    printed = capsys.readouterr()
    # in-source F1-micro, F1-macro, LRAP, then five cross-source columns, then the seeds
    rows = [line.split(" | ") for line in printed.out.splitlines()
            if line.startswith(("| random init |", "| pre-trained on notes |"))]  # fmt: skip
    assert [row[0] for row in rows] == ["| random init", "| pre-trained on notes"]
    assert all(len(row) == 11 and row[9] == "1" for row in rows)  # then the paper's
    assert all(0.0 <= float(value) <= 1.0 for row in rows for value in row[1:9])
    assert "3 steps ran, 0 were cached" in printed.out
    assert "[instrec] render notes" in printed.err and "[instrec] cell 3/3" in printed.err

    report = (out / "report.md").read_text()
    assert "Caveat" in report and "fig3_per_class_f1.png" in report
    assert (out / "fig3_per_class_f1.png").is_file()
    results = json.loads((out / "results.json").read_text())["results"]["table2"]
    evaluations = sorted(out.glob("cells/finetune/*/eval-validation-*/metrics.json"))
    assert len(evaluations) == 2
    for row in results:  # the table holds what the evaluations measured
        init = "scratch" if row["init"] == "random" else "pre-all"
        metrics = next(json.loads(p.read_text()) for p in evaluations if f"-{init}-" in str(p))
        assert row["f1_micro"] == [metrics["f1_micro"]] and row["lrap"] == [metrics["lrap"]]
        assert metrics["threshold_from"] == "validation"

    # the user-facing tagger agrees with evaluation on the same rendered test files (the
    # store keeps int16 audio, the tagger decodes the wav: probabilities within 2e-3)
    evaluation = next(p.parent for p in evaluations if "-pre-all-" in str(p))
    rows = list(csv.DictReader((evaluation / "predictions.csv").open()))
    tagger = load_model(evaluation.parent / "run/model.pt")
    music = out / "data/tiny/rendered-music"
    assert {row["split"] for row in rows} == {"test"} and len(rows) == 2
    for row in rows:
        tagged = tagger.predict(music / row["source"]).probabilities
        assert tagged == pytest.approx({c: float(row[f"p_{c}"]) for c in tagged}, abs=2e-3)

    assert main(["demo", "--out", str(out), *FASTER]) == 0
    printed = capsys.readouterr()
    assert "0 steps ran, 3 were cached" in printed.out
    assert "rendered notes" in printed.err and "cached" in printed.err
