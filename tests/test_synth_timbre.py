"""Per-part timbre variation: each ingredient switched on by name changes the sound it
names, and only that."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from instrec.synth import timbre
from instrec.synth.fluidsynth import Event, Synth
from instrec.synth.soundfonts import read_presets

TIM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
RATE = 44_100


def _draw(options: tuple[str, ...], seed: int = 0) -> timbre.Timbre:
    return timbre.draw(options, np.random.default_rng(seed))


def test_options_are_named_and_canonical() -> None:
    assert timbre.parse_options(["vibrato", "eq"]) == ("eq", "vibrato")
    assert timbre.parse_options(["all"]) == timbre.TIMBRE_OPTIONS
    assert timbre.parse_options(["none"]) == ()


def test_turning_one_ingredient_on_leaves_the_others_draws_alone() -> None:
    assert _draw(()) == timbre.Timbre()
    alone, both = _draw(("chorus",)), _draw(("chorus", "eq"))
    assert alone.chorus == both.chorus and alone.eq is None and both.eq is not None
    envelope = _draw(("envelope",))
    assert envelope.attack is not None and envelope.release is not None
    assert set(_draw(timbre.TIMBRE_OPTIONS).record()) == {
        "eq", "attack", "release", "detune", "chorus", "vibrato", "velocity"
    }  # fmt: skip


def test_velocity_moves_and_compresses_dynamics() -> None:
    soft = timbre.Timbre(velocity=(40.0, 0.5))
    assert timbre.velocity(soft, 80) == 40
    assert timbre.velocity(soft, 120) == 60
    assert timbre.velocity(soft, 1) == 1  # clipped to MIDI's range
    assert timbre.velocity(timbre.Timbre(), 99) == 99


def test_generators_are_soundfont_offsets() -> None:
    slow = timbre.Timbre(attack=2.0, release=0.5, detune=-7.0, vibrato=(20.0, 8.176))
    assert timbre.generators(slow) == pytest.approx(
        {
            timbre.GEN_ATTACK: 1200.0,
            timbre.GEN_RELEASE: -1200.0,
            timbre.GEN_FINE_TUNE: -7.0,
            timbre.GEN_VIB_LFO_TO_PITCH: 20.0,
            timbre.GEN_VIB_LFO_FREQ: 0.0,
        }
    )
    assert timbre.generators(timbre.Timbre()) == {}


@pytest.mark.skipif(not Path(TIM).exists(), reason="timgm6mb-soundfont")
def test_attack_offset_slows_a_soundfont_note_and_is_undone_next_render() -> None:
    flute = next(p for p in read_presets(TIM) if (p.bank, p.program) == (0, 73))
    synth = Synth(RATE)
    events = [Event(0, "on", 0, 69, 100), Event(RATE // 2, "off", 0, 69)]
    plain = synth.render({0: flute}, events, RATE)
    slow = synth.render({0: flute}, events, RATE, {0: {timbre.GEN_ATTACK: 6000.0}})
    early = slice(0, RATE // 100)  # the first 10 ms (the preset's attack is ~1 ms)
    assert np.abs(slow[early]).max() < 0.5 * np.abs(plain[early]).max()
    np.testing.assert_array_equal(synth.render({0: flute}, events, RATE), plain)


def test_eq_and_chorus_change_the_part() -> None:
    rng = np.random.default_rng(1)
    noise = (0.1 * rng.standard_normal((RATE, 2))).astype(np.float32)
    bright = timbre.process(noise, RATE, timbre.Timbre(eq=(0.0, 8.0, 1000.0, 0.0)))
    high = lambda x: np.abs(np.fft.rfft(x[:, 0]))[8000:].mean()  # noqa: E731  (above 8 kHz)
    assert high(bright) > 2 * high(noise)
    chorus = timbre.process(noise, RATE, timbre.Timbre(chorus=(1.0, 0.3, 0.5)))
    assert chorus.shape == noise.shape and not np.allclose(chorus, noise)
    assert timbre.process(noise, RATE, timbre.Timbre()) is noise
