"""Configs: built-in YAML files, `base:` inheritance, dotted overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from instrec.errors import InstrecError
from instrec.train.augment import ABLATIONS, AugmentConfig
from instrec.train.config import builtin_names, config_from_dict, dump_config, load_config


def test_every_builtin_config_loads() -> None:
    names = builtin_names()
    assert {"pretrain", "finetune", "scratch", "tiny_pretrain", "tiny_finetune"} <= set(names)
    for name in names:
        load_config(name)


def test_pretrain_and_finetune_follow_the_paper() -> None:
    pre, fine, scratch = load_config("pretrain"), load_config("finetune"), load_config("scratch")
    assert (pre.stage, pre.optim.peak_lr, pre.optim.weight_decay) == ("pretrain", 1e-3, 5e-4)
    assert (pre.optim.warmup_epochs, pre.trainer.epochs, pre.trainer.batch_size) == (3, 30, 256)
    assert pre.optim.label_smoothing == 0.05
    assert pre.augment == AugmentConfig()  # all augmentations at the paper's settings
    assert (fine.stage, fine.optim.peak_lr, fine.optim.warmup_epochs) == ("finetune", 2.5e-4, 5)
    assert (fine.trainer.epochs, fine.trainer.batch_size) == (40, 64)
    assert (fine.augment.concat_p, fine.augment.mixup_p, fine.augment.effects_ratio) == (0, 0, 0)
    assert scratch.optim.peak_lr == 3.5e-3
    assert scratch.trainer == fine.trainer


@pytest.mark.parametrize(
    ("name", "ablation"),
    [
        ("pretrain", "all"),
        ("pretrain_no_mixup", "-mixup"),
        ("pretrain_no_effects", "-effects"),
        ("pretrain_no_both", "-both"),
        ("pretrain_no_concat", "-concatenation"),
    ],
)
def test_ablation_configs_match_table_iii(name: str, ablation: str) -> None:
    assert ablation in ABLATIONS
    assert load_config(name).augment == AugmentConfig.ablation(ablation)


def test_overrides_are_typed_by_the_field() -> None:
    config = load_config(
        "tiny_pretrain",
        ["trainer.epochs=2", "optim.peak_lr=3e-4", "model.options.sinc_stride=80",
         "augment.effects=[gain, noise]", "trainer.devices=2", "seed=7"],
    )  # fmt: skip
    assert config.trainer.epochs == 2
    assert config.optim.peak_lr == 3e-4 and isinstance(config.optim.peak_lr, float)
    assert config.model.options["sinc_stride"] == 80
    assert config.model.options["width_multiplier"] == 0.5  # the preset's other options stay
    assert config.augment.effects == ("gain", "noise")
    assert config.trainer.devices == 2 and config.seed == 7


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epoch=2", "--set 'trainer.epoch=2': unknown key 'trainer.epoch'"),
        ("trainer.epochs=two", "--set 'trainer.epochs=two': expected int"),
        ("trainer.epochs=true", "expected int"),
        ("augment.mixup_p=2", "mixup_p must be in [0, 1]"),
        ("stage=evaluate", "stage must be one of"),
        ("trainer.epochs", "expected KEY=VALUE"),
        ("data.fraction=0", "data.fraction must be in (0, 1]"),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(InstrecError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config("pretrain", [override])


def test_finetuning_refuses_label_smoothing() -> None:
    with pytest.raises(InstrecError, match="label_smoothing"):
        load_config("finetune", ["optim.label_smoothing=0.1"])


def test_a_file_can_start_from_a_builtin_and_a_sibling(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("base: tiny_pretrain\ntrainer: {epochs: 9}\n")
    (tmp_path / "child.yaml").write_text("base: mine.yaml\noptim: {peak_lr: 0.01}\n")
    config = load_config(tmp_path / "child.yaml")
    assert (config.trainer.epochs, config.optim.peak_lr) == (9, 0.01)
    assert config.model.name == "sharesnet18"  # from tiny_pretrain


def test_unknown_names_and_loops_are_errors(tmp_path: Path) -> None:
    with pytest.raises(InstrecError, match=r"built-in: .*pretrain"):
        load_config("no-such-config")
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(InstrecError, match="loops"):
        load_config(tmp_path / "a.yaml")


def test_dumped_config_reads_back_identical() -> None:
    config = load_config("tiny_finetune", ["data.fraction=0.5"])
    assert config_from_dict(yaml.safe_load(dump_config(config))) == config
