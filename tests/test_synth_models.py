"""csound instrument models: many distinct voices per model, each at its pitch, the same
samples every time."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from instrec.labels import IRMAS_CLASSES, NSYNTH_FAMILIES
from instrec.synth import models
from instrec.synth.csound import CsoundNote, available
from instrec.synth.notes import render_notes

RATE = 44_100
pytestmark = pytest.mark.skipif(not available(), reason="csound")
STK = pytest.mark.skipif(not models.stk_available(), reason="csound-plugins (STK opcodes)")


def _note(voice: models.ModelVoice, key: int, tune: float = 1.0) -> np.ndarray:
    return models.render_notes(voice, [CsoundNote(0.0, 0.6, key, 90, tune)], RATE, RATE)


def test_yin_finds_the_period_of_a_harmonic_tone() -> None:
    t = np.arange(RATE // 4) / RATE
    tone = np.sum([np.sin(2 * np.pi * 220 * h * t) / h for h in (1, 2, 3, 4)], axis=0)
    assert models.f0(tone, RATE) == pytest.approx(220, rel=0.002)
    noise = np.random.default_rng(0).standard_normal(RATE // 4)
    assert models.f0(noise, RATE) == 0.0


def test_voices_are_seeded_by_model_and_index_and_differ() -> None:
    assert models.voice("clarinet-wg", 3) == models.voice("clarinet-wg", 3)
    bank = models.voices(["clarinet-wg"], 8)
    assert len({v.params for v in bank}) == 8
    for voice in bank:
        for name, low, high in models.MODELS["clarinet-wg"].ranges:
            assert low <= dict(voice.params)[name] <= high


def test_models_stand_for_irmas_classes_and_nsynth_families() -> None:
    for model in models.MODELS.values():
        assert model.classes and set(model.classes) <= set(IRMAS_CLASSES)
        assert model.nsynth_family in NSYNTH_FAMILIES
    covered = {code for model in models.MODELS.values() for code in model.classes}
    assert covered == set(IRMAS_CLASSES)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=STK) if models.MODELS[n].stk else n for n in models.MODELS],
)
def test_every_model_plays_at_pitch_once_tuned(name: str) -> None:
    voice = models.voice(name, 0)
    low, high = voice.keys
    middle = (low + high) // 2
    tunings = models.probe(voice, list(range(middle - 2, middle + 3)), RATE)
    key, tuning = next((k, t) for k, t in tunings.items() if t is not None)
    audio = _note(voice, key, tuning)
    f0 = models.f0(audio[round(0.15 * RATE) : round(0.4 * RATE)], RATE)
    cents = 1200 * np.log2(f0 / (440 * 2 ** ((key - 69) / 12)))
    # within 15 cents of the key, up to an octave (YIN can take the mandolin's second
    # string pair for the fundamental)
    assert abs((cents + 600) % 1200 - 600) < 15


def test_probe_rejects_keys_a_model_cannot_play() -> None:
    plucked = models.voice("guitar-wg", 0)  # the waveguide string dies out above C7
    assert models.probe(plucked, [108], RATE) == {108: None}


@STK
def test_stk_models_give_the_same_samples_in_another_second() -> None:
    """The STK opcodes seed their noise from the clock (time(NULL)); the models keep that
    noise at zero, so renders a second apart are identical."""
    stk = [name for name, model in models.MODELS.items() if model.stk]
    first = [_note(models.voice(name, 1), 60) for name in stk]
    time.sleep(1.05)
    again = [_note(models.voice(name, 1), 60) for name in stk]
    for name, a, b in zip(stk, first, again, strict=True):
        assert np.abs(a).max() > 1e-3, name
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_formant_voice_sings_the_vowels_of_its_type() -> None:
    voice = next(v for v in models.voices(["voice-fof"], 32) if int(dict(v.params)["vowels"]) == 31)
    fields = {models.note_fields(voice, key, 0)[:3] for key in range(60, 65)}
    assert len(fields) == 5  # five notes in a row cycle through the five vowels
    assert models.note_fields(models.voice("clarinet-wg", 0), 60, 0) == ()


def test_overrides_change_a_voice_parameter() -> None:
    voice = models.voice("bowed-wg", 2)
    plain = models.orchestra(voice)
    assert "vib" in plain and models.orchestra(voice, {"vib_hz": 9.5}) != plain
    assert "9.5" in models.orchestra(voice, {"vib_hz": 9.5})


def test_nsynth_notes_from_model_voices_split_by_synthesis_method(tmp_path: Path) -> None:
    out = render_notes(
        tmp_path,
        sources_used=("models",),
        model_names=("clarinet-wg", "bowed-wg", "organ-additive"),
        model_voices=2,
        max_instruments=None,
        pitches=[60],
        velocities=[100],
        split_fractions=(0.34, 0.33, 0.33),
        progress=False,
    )
    instruments = json.loads((out / "instruments.json").read_text())
    assert len(instruments) == 6 and all(i["source"] == "csound" for i in instruments.values())
    splits_of: dict[str, set[str]] = {}
    for info in instruments.values():
        splits_of.setdefault(info["family"], set()).add(info["split"])
    assert len(splits_of) == 3 and all(len(s) == 1 for s in splits_of.values())
    summary = json.loads((out / "render-notes.json").read_text())["summary"]
    playing = sum(60 in i["playable_pitches"] for i in instruments.values())
    assert sum(summary["notes"].values()) == playing - summary["skipped_off_pitch"] >= 4
    for split in ("train", "valid", "test"):
        examples = json.loads((out / f"nsynth-{split}" / "examples.json").read_text())
        assert examples
        for name, fields in examples.items():
            assert fields["instrument_source_str"] == "synthetic"
            assert fields["instrument_family_str"] in ("reed", "string", "organ")
            audio, rate = soundfile.read(out / f"nsynth-{split}" / "audio" / f"{name}.wav")
            assert (rate, audio.shape) == (16_000, (64_000,))
            f0 = models.f0(audio[4000:12_000], 16_000)
            assert abs(1200 * np.log2(f0 / 261.63)) < 20  # middle C, tuned
