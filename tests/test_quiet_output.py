"""Long commands print our progress and our lines: no third-party tips or deprecation noise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_train import write_store


@pytest.mark.slow
def test_a_training_run_shows_no_lightning_tips_banners_or_deprecations(tmp_path: Path) -> None:
    store = write_store(tmp_path / "notes", "nsynth", ("ins0", "ins1", "ins2", "ins3"), 12)
    command = [
        sys.executable, "-m", "instrec.cli", "pretrain", "--config", "tiny_pretrain",
        "--data", str(store), "--out", str(tmp_path / "run"),
        "--set", "trainer.epochs=1", "--set", "trainer.batch_size=16",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    shown = done.stdout + done.stderr
    assert "wrote" in done.stderr and (tmp_path / "run" / "model.pt").is_file()
    noises = ("Tip:", "available: False", "deprecated", "Warning", "logging interval", "stopped:")
    for noise in noises:
        assert noise not in shown, f"{noise!r} in the output:\n{shown}"
