"""Concatenation, LUFS-matched mixup and the effect chain, as the paper uses them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.stats
import torch

from instrec.audio import integrated_loudness
from instrec.errors import InstrecError
from instrec.train.augment import (
    ABLATIONS,
    ALL_EFFECTS,
    CHAIN_P,
    AugmentConfig,
    BatchAugmenter,
    _Draw,
    concatenate_notes,
    without_silence,
)

SR = 16_000
OFF = AugmentConfig(concat_p=0.0, mixup_p=0.0, effects_ratio=0.0)


def _plucked(freq: float, seconds: float = 1.0) -> np.ndarray:
    """A note that starts at silence and decays fast: its onset is an energy jump."""
    t = np.arange(round(seconds * SR)) / SR
    return (np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.04)).astype(np.float32)


def _onsets(x: np.ndarray, frame: int = 160) -> np.ndarray:
    """Start sample of the first frame of each rise of 10 dB over the previous frame."""
    energy = (x[: x.size // frame * frame].reshape(-1, frame) ** 2).sum(1) + 1e-12
    rising = (np.nonzero(energy[1:] > 10 * energy[:-1])[0] + 1) * frame
    return rising[np.diff(rising, prepend=-SR) > 4 * frame]  # a fade-in spans two frames


# --- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"mixup_p": 1.5},
        {"effects_ratio": -0.1},
        {"effects": ("chorus",)},
        {"gain_db": (3, -3)},
        {"effects_mode": "every"},
        {"concat_mode": "halves"},
        {"mixup_mode": "pairs"},
        {"noise_pink_p": 2.0},
    ],
)
def test_bad_config_is_one_clear_error(values: dict) -> None:
    with pytest.raises(InstrecError, match="augment config"):
        AugmentConfig(**values)


def test_config_from_yaml_mapping() -> None:
    config = AugmentConfig.from_dict({"mixup_p": 0.2, "effects": ["gain", "noise"]})
    assert config.mixup_p == 0.2 and config.effects == ("gain", "noise")
    with pytest.raises(InstrecError, match="mixup_probability"):
        AugmentConfig.from_dict({"mixup_probability": 0.2})


def test_ablations_switch_off_exactly_their_parts() -> None:
    on = {name: AugmentConfig.ablation(name) for name in ABLATIONS}
    assert on["all"] == AugmentConfig()
    assert on["-mixup"].mixup_p == 0 and on["-mixup"].effects_ratio > 0
    assert on["-effects"].effects_ratio == 0 and on["-effects"].mixup_p > 0
    assert on["-both"].mixup_p == 0 and on["-both"].effects_ratio == 0
    assert on["-both"].concat_p > 0
    assert on["-concatenation"].concat_p == 0 and on["-concatenation"].mixup_p > 0
    with pytest.raises(InstrecError):
        AugmentConfig.ablation("-reverb")


# --- concatenation -------------------------------------------------------------------


def test_pieces_concatenation_joins_cut_notes_at_onsets() -> None:
    note, partners = _plucked(220), [_plucked(330), _plucked(440)]
    for seed in range(5):
        rng = np.random.default_rng(seed)
        out = concatenate_notes(note, partners, rng, length=SR, sr=SR, mode="pieces")
        assert out.shape == (SR,) and out.dtype == np.float32
        onsets = _onsets(out)
        assert len(onsets) >= 1  # 1 s cannot hold a single note trimmed to <= 0.6 s
        gaps = np.diff(np.concatenate([[0], onsets])) / SR  # s between note starts
        assert np.all((gaps > 0.19) & (gaps < 0.61)), gaps
        np.testing.assert_array_equal(out[:3000], note[:3000] * _fade_in(3000))


def _fade_in(n: int) -> np.ndarray:
    fade = round(0.005 * SR)
    ramp = np.ones(n, dtype=np.float32)
    ramp[:fade] = np.linspace(0, 1, fade, endpoint=False)
    return ramp


def test_pieces_concatenation_does_not_click_at_the_joins() -> None:
    t = np.arange(SR) / SR
    sustained = [np.sin(2 * np.pi * f * t).astype(np.float32) for f in (220, 330, 440)]
    out = concatenate_notes(sustained[0], sustained[1:], np.random.default_rng(0), mode="pieces")
    steepest_note = 2 * np.pi * 440 / SR  # largest sample-to-sample step of the notes
    assert np.abs(np.diff(out)).max() < steepest_note + 1 / (0.005 * SR) + 1e-3


def _padded_tone(freq: float, before: float, tone: float, after: float) -> np.ndarray:
    """Silence, a steady tone of `tone` s, silence (s): a note with known silent ends."""
    t = np.arange(round(tone * SR)) / SR
    body = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.concatenate(
        [np.zeros(round(before * SR), np.float32), body, np.zeros(round(after * SR), np.float32)]
    )


def test_silence_is_trimmed_to_the_frames_that_sound() -> None:
    note = _padded_tone(440, before=0.1, tone=0.3, after=0.2)  # tone on samples 1600..6400
    kept = without_silence(note)
    first = np.flatnonzero(note)[0]
    assert kept.size < note.size and np.count_nonzero(kept) == np.count_nonzero(note)
    assert first - 512 < note.size - kept.size - (note.size - 6400) <= first  # frame-aligned
    assert without_silence(np.zeros(SR, np.float32)).size == SR  # silence is kept whole


def test_whole_concatenation_joins_trimmed_notes_back_to_back() -> None:
    """The authors' `stitch`: whole notes, silence trimmed, joined until 1 s is full."""
    note = _padded_tone(220, before=0.05, tone=0.3, after=0.4)
    partners = [_padded_tone(330, 0.05, 0.3, 0.4), _padded_tone(440, 0.05, 0.3, 0.4)]
    out = concatenate_notes(note, partners, np.random.default_rng(0), length=SR, sr=SR)
    assert out.shape == (SR,) and out.dtype == np.float32
    assert out[0] == 0.0 and np.abs(out[:2000]).max() > 0.4  # starts where the tone does
    silent = np.abs(out.reshape(-1, 160)).max(1) == 0  # 10 ms frames with no sound at all
    assert silent.sum() <= 3 * 4  # at most a frame of trimmed silence at each of ~3 joins
    np.testing.assert_array_equal(out[:4000], without_silence(note)[:4000])


def test_concatenation_off_or_without_partners_returns_the_note() -> None:
    note = _plucked(220)
    rng = np.random.default_rng(0)
    assert concatenate_notes(note, [_plucked(330)], rng, p=0.0) is note
    assert concatenate_notes(note, [], rng) is note
    assert concatenate_notes(note, [np.zeros(0, np.float32)], rng) is note


def test_concatenation_probability_and_seed() -> None:
    note, partners = _plucked(220), [_plucked(330)]
    changed = [
        concatenate_notes(note, partners, np.random.default_rng(seed), p=0.5) is not note
        for seed in range(400)
    ]
    assert np.mean(changed) == pytest.approx(0.5, abs=0.08)
    runs = [concatenate_notes(note, partners, np.random.default_rng(7)) for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


# --- batch augmentation --------------------------------------------------------------


def _batch(rows: int = 8, samples: int = SR) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise clips at levels 30 dB apart, each with its own class (one-hot)."""
    generator = torch.Generator().manual_seed(0)
    levels = torch.logspace(-2.5, -1, rows)[:, None]
    waves = levels * torch.randn(rows, samples, generator=generator)
    return waves, torch.eye(rows)


def test_everything_off_returns_the_batch_unchanged() -> None:
    waves, targets = _batch()
    out_waves, out_targets = BatchAugmenter(OFF)(waves, targets)
    assert torch.equal(out_waves, waves) and torch.equal(out_targets, targets)


def test_same_seed_same_output_and_inputs_untouched() -> None:
    waves, targets = _batch()
    before = waves.clone()
    augmenter = BatchAugmenter(AugmentConfig(effects_ratio=0.5))
    first = augmenter(waves, targets, torch.Generator().manual_seed(1))
    second = augmenter(waves, targets, torch.Generator().manual_seed(1))
    other = augmenter(waves, targets, torch.Generator().manual_seed(2))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], other[0])
    assert torch.equal(waves, before)


def test_mixup_matches_partners_loudness_and_mixes_labels() -> None:
    waves, targets = _batch()
    config = dataclasses.replace(OFF, mixup_p=1.0)
    mixed, soft = BatchAugmenter(config)(waves, targets, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(soft.sum(1).numpy(), 1.0, rtol=1e-6)
    for i in range(len(waves)):
        lam = float(soft[i, i])
        partner = int(torch.argmax(soft[i] * (torch.arange(len(waves)) != i)))
        if lam == 1.0:  # mixed with itself
            np.testing.assert_allclose(mixed[i].numpy(), waves[i].numpy(), atol=1e-6)
            continue
        x_i, x_j = waves[i].numpy().astype(np.float64), waves[partner].numpy().astype(np.float64)
        gain = 10 ** ((integrated_loudness(x_i) - integrated_loudness(x_j)) / 20)
        expected = lam * x_i + (1 - lam) * gain * x_j
        np.testing.assert_allclose(mixed[i].numpy(), expected, atol=1e-5)
        assert float(soft[i, partner]) == pytest.approx(1 - lam, abs=1e-6)


def test_mixup_probability_and_beta_distribution() -> None:
    waves, targets = _batch(rows=1000, samples=SR // 2)
    config = dataclasses.replace(OFF, mixup_p=0.5)
    _, soft = BatchAugmenter(config)(waves, targets, torch.Generator().manual_seed(0))
    assert float((soft.max(1).values < 1).float().mean()) == pytest.approx(0.5, abs=0.05)
    lam = _Draw(torch.Generator().manual_seed(0), torch.device("cpu"), 5000).beta(0.3)
    assert scipy.stats.kstest(lam.numpy(), "beta", args=(0.3, 0.3)).pvalue > 0.01


def test_mixup_batch_mode_mixes_all_or_none_with_the_rolled_batch() -> None:
    """The authors' code: one lambda per batch, partner i-1, the whole batch or none."""
    waves, targets = _batch()
    config = dataclasses.replace(OFF, mixup_p=0.5, mixup_mode="batch")
    mixed_batches = 0
    for seed in range(40):
        _, soft = BatchAugmenter(config)(waves, targets, torch.Generator().manual_seed(seed))
        lam = soft.diagonal()
        if bool((lam == 1).all()):
            continue
        mixed_batches += 1
        assert torch.allclose(lam, lam[0])  # one lambda
        rolled = soft[torch.arange(len(soft)), torch.arange(len(soft)).roll(1)]
        assert torch.allclose(rolled, 1 - lam)  # partner: the row before
    assert 10 <= mixed_batches <= 30  # about half of 40 batches


def _cpu_draws() -> _Draw:
    return _Draw(torch.Generator().manual_seed(0), torch.device("cpu"))


def test_chain_mode_alters_about_ratio_of_clips_and_each_step_at_its_chance() -> None:
    """The authors' chain: P(enter) = effects_ratio, then each step with CHAIN_P."""
    rows = 200_000
    augmenter = BatchAugmenter(AugmentConfig(effects_ratio=0.3))
    plan = dict(
        augmenter.plan_effects(rows, _Draw(torch.Generator().manual_seed(0), torch.device("cpu")))
    )
    altered = torch.stack(list(plan.values())).any(0)
    assert float(altered.float().mean()) == pytest.approx(0.3, abs=0.005)
    inside = altered.float().sum()
    for step, chance in CHAIN_P.items():
        hit = plan["highpass"] | plan["lowpass"] if step == "filter" else plan[step]
        assert float(hit.float().sum() / inside) == pytest.approx(chance, abs=0.01), step
    assert not bool((plan["highpass"] & plan["lowpass"]).any())  # one filter, not both
    assert float(plan["highpass"].float().sum() / inside) == pytest.approx(0.5, abs=0.01)


def test_independent_mode_alters_92_percent_at_ratio_0_3() -> None:
    """The stronger reading: each of the seven effects on each clip with p = 0.3."""
    augmenter = BatchAugmenter(AugmentConfig(effects_ratio=0.3, effects_mode="independent"))
    plan = augmenter.plan_effects(
        100_000, _Draw(torch.Generator().manual_seed(0), torch.device("cpu"))
    )
    assert [name for name, _ in plan] == list(ALL_EFFECTS)
    altered = torch.stack([rows for _, rows in plan]).any(0).float().mean()
    assert float(altered) == pytest.approx(1 - 0.7**7, abs=0.005)


def test_each_effect_hits_about_ratio_of_the_clips() -> None:
    waves, targets = _batch(rows=1000, samples=1024)
    config = dataclasses.replace(
        OFF, effects_ratio=0.3, effects=("gain",), effects_mode="independent"
    )
    out, out_targets = BatchAugmenter(config)(waves, targets, torch.Generator().manual_seed(0))
    changed = (out != waves).any(1).float().mean()
    assert float(changed) == pytest.approx(0.3, abs=0.05)
    assert torch.equal(out_targets, targets)  # effects keep the labels


@pytest.mark.parametrize("effect", ALL_EFFECTS)
def test_every_effect_runs_in_the_chain(effect: str) -> None:
    waves, targets = _batch(rows=4)
    config = dataclasses.replace(
        OFF, effects_ratio=1.0, effects=(effect,), effects_mode="independent"
    )
    out, _ = BatchAugmenter(config)(waves, targets, torch.Generator().manual_seed(0))
    assert out.shape == waves.shape and torch.isfinite(out).all()
    assert (out != waves).any(1).all()


def test_the_full_chain_keeps_silence_finite() -> None:
    waves, targets = _batch(rows=6)
    waves[::2] = 0.0
    config = AugmentConfig(mixup_p=1.0, effects_ratio=1.0)
    out, soft = BatchAugmenter(config)(waves, targets, torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all() and torch.isfinite(soft).all()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_the_batch_device() -> None:
    waves, targets = _batch()
    generator = torch.Generator(device="cuda").manual_seed(0)
    out, soft = BatchAugmenter(AugmentConfig())(waves.cuda(), targets.cuda(), generator)
    assert out.is_cuda and soft.is_cuda and torch.isfinite(out).all()
    cpu_generator = torch.Generator().manual_seed(0)
    out_cpu_draws, _ = BatchAugmenter(AugmentConfig())(waves.cuda(), targets.cuda(), cpu_generator)
    assert out_cpu_draws.is_cuda
    assert math.isfinite(float(out_cpu_draws.abs().max()))
