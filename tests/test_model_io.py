"""Model files: a round trip gives identical outputs; bad files give one clear InstrecError."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from instrec.errors import InstrecError
from instrec.model.io import load_model_file, save_model_file
from instrec.model.resnet import BasicBlock
from instrec.model.zoo import Recognizer, build_model

CLASSES = ("cel", "cla", "flu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_model() -> Recognizer:
    torch.manual_seed(0)
    return build_model(
        "sharesnet18", num_classes=3, width_multiplier=0.25, sinc_filters=16, lde_components=2
    )


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = small_model()
    # move batch-norm statistics away from their defaults so they must be saved too
    model.train()
    model(torch.randn(4, 4000))
    model.eval()
    path = save_model_file(tmp_path / "model.pt", model, CLASSES, 0.35, meta={"seed": 7})
    loaded = load_model_file(path)
    assert loaded.classes == CLASSES
    assert loaded.threshold == pytest.approx(0.35)
    assert loaded.meta == {"seed": 7}
    assert loaded.model.config == model.config
    assert not loaded.model.training
    wave = torch.randn(2, 12_345)
    with torch.no_grad():
        assert torch.equal(loaded.model(wave), model(wave))
    # shared conv2 weights are still one tensor after loading
    blocks = [b for b in loaded.model.modules() if isinstance(b, BasicBlock)]
    assert blocks[0].conv2.weight is blocks[1].conv2.weight  # stage 1 shares its conv2
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_existing_file_is_not_overwritten_silently(tmp_path: Path) -> None:
    model = small_model()
    path = save_model_file(tmp_path / "model.pt", model, CLASSES, 0.5)
    with pytest.raises(InstrecError, match="already exists"):
        save_model_file(path, model, CLASSES, 0.4)
    save_model_file(path, model, CLASSES, 0.4, overwrite=True)
    assert load_model_file(path).threshold == pytest.approx(0.4)


def test_class_count_must_match_outputs(tmp_path: Path) -> None:
    with pytest.raises(InstrecError, match="2 class names"):
        save_model_file(tmp_path / "m.pt", small_model(), ("a", "b"), 0.5)


def test_meta_must_be_plain_data(tmp_path: Path) -> None:
    with pytest.raises(InstrecError, match="JSON"):
        save_model_file(tmp_path / "m.pt", small_model(), CLASSES, 0.5, meta={"p": tmp_path})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InstrecError, match=r"nope\.pt: no such model file"):
        load_model_file(tmp_path / "nope.pt")


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a model" * 10)
    with pytest.raises(InstrecError, match=r"garbage\.pt: not a readable instrec model file"):
        load_model_file(path)


def test_foreign_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(InstrecError, match=r"weights\.pt: not an instrec model file"):
        load_model_file(path)


def test_weights_of_another_architecture(tmp_path: Path) -> None:
    path = save_model_file(tmp_path / "m.pt", small_model(), CLASSES, 0.5)
    payload = torch.load(path, weights_only=True)
    payload["config"]["blocks"] = (3, 4, 6, 3)
    torch.save(payload, path)
    with pytest.raises(InstrecError, match=r"m\.pt: not a usable instrec model: weights do not"):
        load_model_file(path)


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "instrec-model", "hook": Path("x")}, path)
    with pytest.raises(InstrecError, match=r"evil\.pt"):
        load_model_file(path)
