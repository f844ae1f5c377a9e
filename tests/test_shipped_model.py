"""The shipped model: found with no argument, as good as its card says, adaptable to yours.

Its card (instrec/weights/models.json) states what it scored when it was shipped; these
tests hold it to that on audio rendered here by instruments its training never heard (the
members its card names, from families held out of its training, or csound model voices
for a model trained on soundfont renders only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dataset_trees import prepare_store, write_folder_tree

import instrec
from instrec.cli import main
from instrec.model.registry import read_manifest, resolve
from instrec.synth.solos import SOLO_MODELS, render_solo, top1_hits
from instrec.tagging import load_model

SOLO_RATE = 44_100
SOLO_TOLERANCE = 1 / 11  # one class of eleven may flip on another CPU's arithmetic
EXAMPLE = Path(__file__).parents[1] / "examples" / "chorale.mp3"


@pytest.fixture(scope="module")
def card() -> dict:
    default, shipped = read_manifest()
    assert default is not None, "instrec ships a default model"
    return shipped[default].card


def test_no_argument_loads_the_default_shipped_model() -> None:
    tagger = instrec.load_model()
    assert len(tagger.classes) == 11 and 0 < tagger.threshold < 1


def test_the_onnx_and_pt_files_give_the_same_probabilities() -> None:
    onnx, torch_model = load_model(), load_model(resolve(None, "pt"))
    for audio in (EXAMPLE, render_solo("cla", 3.0, SOLO_RATE)):
        kwargs = {} if isinstance(audio, Path) else {"sr": SOLO_RATE}
        a = onnx.predict(audio, **kwargs).probabilities
        b = torch_model.predict(audio, **kwargs).probabilities
        assert max(abs(a[c] - b[c]) for c in a) < 1e-3


@pytest.mark.slow
def test_it_names_solo_instruments_from_unheard_sources_as_its_card_says(card: dict) -> None:
    """Each class's solo is played by the member its card names (one of a family its
    training never heard), or by the csound model voice of SOLO_MODELS where it names none
    (a model trained on soundfonts only has heard none of them)."""
    tagger = load_model()
    members = card.get("solo_members", dict.fromkeys(SOLO_MODELS))
    hits = top1_hits(
        lambda audio, sr: tagger.predict(audio, sr=sr).probabilities, members, 4.0, SOLO_RATE
    )
    assert len(hits) == len(SOLO_MODELS)  # one solo per class
    assert np.mean(hits) >= card["solo_top1_accuracy"] - SOLO_TOLERANCE


def test_the_example_is_tagged_by_the_first_readme_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["predict", str(EXAMPLE.parent)]) == 0  # examples/: both excerpts
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "chorale.mp3" in lines[1] and "ensemble.mp3" in lines[2]
    assert "voice" in lines[1]  # the chorale's leading voice is named


@pytest.mark.slow
def test_adapting_it_to_your_own_labelled_songs_end_to_end(tmp_path: Path) -> None:
    """Label a few songs, `instrec prepare folder`, `instrec finetune --init NAME`, tag."""
    default, _ = read_manifest()
    rows = {f"song{k}.wav": [("banjo", "kazoo")[k % 2]] for k in range(8)}
    csv_path = write_folder_tree(tmp_path / "mine", rows)
    store = prepare_store(
        "folder", csv_path.parent, tmp_path / "store", "--csv", str(csv_path), "--clips"
    )
    run = tmp_path / "run"
    args = ["finetune", "--config", "tiny_finetune", "--data", str(store), "--init", str(default)]
    sets = ["--set", "trainer.epochs=1", "--set", "trainer.batch_size=4"]
    assert main([*args, "--out", str(run), *sets, "--set", "optim.warmup_epochs=0"]) == 0
    mine = load_model(run / "model.pt")
    assert mine.classes == ("banjo", "kazoo")
    assert set(mine.predict(tmp_path / "mine" / "song0.wav").probabilities) == {"banjo", "kazoo"}
