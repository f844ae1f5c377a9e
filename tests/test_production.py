"""Production of rendered ensembles: each part's strip and the shared room, the mix bus
and its limiter, the lossy codec; seeded, independent draws, and a render without any
ingredient exactly as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from instrec.errors import InstrecError
from instrec.synth import production
from instrec.synth.ensembles import LEAD_MARGIN_DB, render_ensembles
from instrec.synth.production import PRODUCTION_OPTIONS, Bus, PartChain, Production

RATE = 44_100
TIM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
FLAT = (20.0, 0.0, 0.0)  # high-pass at 20 Hz, no shelves
NO_COMPRESSION = (0.0, 1.0, 1.0, 50.0)


def _stereo(mono: np.ndarray) -> np.ndarray:
    return np.stack([mono, mono], axis=1).astype(np.float32)


def _clicks(seconds: float, every: float, first: int = 1000) -> np.ndarray:
    mono = np.zeros(round(seconds * RATE), dtype=np.float32)
    mono[first :: round(every * RATE)] = 0.8
    return _stereo(mono)


def _draw(options: tuple[str, ...], seed: int = 0) -> Production:
    return production.draw(options, np.random.default_rng(seed), parts=4, excerpts=40)


def test_named_ingredients_switch_on_exactly_those() -> None:
    chosen = production.parse_options(["codec", "mix"])
    assert chosen == ("mix", "codec")
    drawn = _draw(chosen)
    assert drawn.parts is None and drawn.room is None
    assert drawn.mix is not None and drawn.codec is not None
    every = _draw(production.parse_options(["all"]))
    assert every.parts is not None and len(every.parts) == 4 and every.room is not None
    assert _draw(production.parse_options(["none"])) == production.OFF
    with pytest.raises(InstrecError, match="unknown production option reverb"):
        production.parse_options(["reverb"])


def test_draws_are_seeded_and_each_ingredient_independent() -> None:
    assert _draw(PRODUCTION_OPTIONS, 3) == _draw(PRODUCTION_OPTIONS, 3)
    assert _draw(PRODUCTION_OPTIONS, 3) != _draw(PRODUCTION_OPTIONS, 4)
    alone = _draw(("parts",), 3)
    with_codec = _draw(("parts", "codec"), 3)
    assert (alone.parts, alone.room) == (with_codec.parts, with_codec.room)
    assert _draw(("mix",), 3).mix == _draw(PRODUCTION_OPTIONS, 3).mix
    codec = _draw(("codec",), 3).codec
    assert codec is not None
    encoded = [q for q in codec if q is not None]
    assert 10 <= len(encoded) <= 30 and all(2 <= q <= 9 for q in encoded)  # about half


def test_nothing_on_leaves_the_audio_as_it_is() -> None:
    """What keeps a render without --production byte-identical to one before it existed."""
    stem = _clicks(0.5, 0.1)
    assert production.process_part(stem, RATE, production.OFF, 0) is stem
    assert production.process_mix(stem, RATE, production.OFF, 0) is stem
    assert production.OFF.record(0) == {}


def _strip(compressor: tuple[float, float, float, float], send: float = 0.0) -> Production:
    return Production(room=(0.5, 0.5), parts=(PartChain(compressor, FLAT, send),))


def test_part_compressor_lowers_the_crest_factor() -> None:
    t = np.arange(2 * RATE) / RATE
    mono = 0.1 * np.sin(2 * np.pi * 220 * t)
    mono[RATE : RATE + RATE // 5] *= 8  # a loud burst
    stem = _stereo(mono)
    crest = lambda x: np.abs(x).max() / np.sqrt(np.mean(x**2))  # noqa: E731
    squeezed = production.process_part(stem, RATE, _strip((-30.0, 6.0, 1.0, 50.0)), 0)
    plain = production.process_part(stem, RATE, _strip(NO_COMPRESSION), 0)
    assert squeezed.shape == stem.shape
    assert crest(squeezed) < 0.7 * crest(plain)


def _tail_seconds(part: np.ndarray, after: int) -> float:
    """How long after sample `after` the part stays within 60 dB of its loudest 10 ms."""
    blocks = (part[after:, 0] ** 2)[: (part.shape[0] - after) // 441 * 441].reshape(-1, 441)
    db = 10 * np.log10(blocks.mean(axis=1) + 1e-30)
    return float(np.flatnonzero(db > db.max() - 60).max() * 0.01)


def test_the_room_adds_a_tail_that_grows_with_its_size() -> None:
    click = _clicks(4.0, 10.0)  # one click at sample 1000
    after = 1000 + RATE // 100  # 10 ms after the click

    def through(size: float, send: float) -> np.ndarray:
        chain = PartChain(NO_COMPRESSION, FLAT, send)
        return production.process_part(click, RATE, Production((size, 0.3), (chain,)), 0)

    dry = through(0.9, 0.0)
    assert np.abs(dry[after:]).max() < 1e-3  # no room, no tail
    small, large = through(0.1, 0.3), through(0.9, 0.3)
    assert np.sum(small[after:] ** 2) > 1e-4
    assert _tail_seconds(large, after) > 2 * _tail_seconds(small, after)


def test_the_mix_limiter_keeps_peaks_under_its_threshold() -> None:
    rng = np.random.default_rng(0)
    mono = rng.standard_normal(2 * RATE) * 0.05
    mono[RATE // 2 :: RATE // 3] = 0.9  # sharp peaks far over the body
    mix = np.stack([mono, 0.5 * mono], axis=1)
    crest_db = lambda x: 20 * np.log10(np.abs(x).max() / np.sqrt(np.mean(x**2)))  # noqa: E731
    for limit in (2.0, 6.0):
        bus = Production(mix=Bus(tilt=2.0, compressor=(-6.0, 2.0), width=1.3, limit=limit))
        out = production.process_mix(mix, RATE, bus, 0)
        assert out.shape == mix.shape
        assert np.abs(out).max() <= 10 ** (-limit / 20) * 1.0001
        assert crest_db(out) < crest_db(mix) - (limit - 1.5)  # peaks cut, the body kept


def test_codec_keeps_length_and_alignment_and_cuts_the_highs() -> None:
    clicks = _clicks(1.3, 0.0931, first=777)  # a length no whole number of MP3 frames
    encoded = production.codec_round_trip(clicks, RATE, 9.0)
    assert encoded.shape == clicks.shape
    window = slice(0, RATE)
    lag = np.argmax(np.correlate(encoded[window, 0], clicks[window, 0], "full")) - (RATE - 1)
    assert lag == 0
    noise = _stereo(np.random.default_rng(1).standard_normal(RATE) * 0.2)
    high = np.fft.rfftfreq(RATE, 1 / RATE) > 16_000
    energy = lambda x: np.sum(np.abs(np.fft.rfft(x[:, 0]))[high] ** 2)  # noqa: E731
    assert energy(production.codec_round_trip(noise, RATE, 9.0)) < 1e-3 * energy(noise)
    only_odd = Production(codec=(None, 9.0))
    assert production.process_mix(noise, RATE, only_odd, 0) is noise
    assert not np.allclose(production.process_mix(noise, RATE, only_odd, 1), noise, atol=1e-3)


TINY: dict[str, Any] = {
    "train_songs": 2,
    "test_songs": 1,
    "train_excerpts": 1,
    "test_excerpts": 1,
    "test_seconds": (5.0, 5.0),
    "composers": ("bach",),
    "soundfonts": [TIM],
    "sources_used": ("soundfonts",),
    "drums": 0.5,
    "seed": 2,
    "progress": False,
}


def _wavs(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*.wav"))}


@pytest.mark.skipif(not Path(TIM).exists(), reason="timgm6mb-soundfont")
def test_a_produced_render_is_seeded_recorded_and_keeps_its_leads_audible(tmp_path: Path) -> None:
    plain = _wavs(render_ensembles(tmp_path / "plain", **TINY))
    produced = render_ensembles(tmp_path / "produced", **TINY, production_options=("all",))
    again = render_ensembles(tmp_path / "again", **TINY, production_options=("all",))
    assert _wavs(produced) == _wavs(again)
    assert _wavs(produced).keys() == plain.keys()
    assert all(_wavs(produced)[name] != audio for name, audio in plain.items())
    plain_songs = json.loads((tmp_path / "plain" / "songs.json").read_text())
    assert not any("production" in e for song in plain_songs.values() for e in song["excerpts"])
    songs = json.loads((produced / "songs.json").read_text())
    for song in songs.values():
        leads = [i for i, part in enumerate(song["parts"]) if part["lead"]]
        for excerpt in song["excerpts"]:
            assert set(excerpt["production"]) == {"room", "parts", "mix", "codec"}
            assert len(excerpt["production"]["parts"]) == len(song["parts"]) + 1  # drums last
            levels = excerpt["levels"]
            loudest = max(level for level in levels if level is not None)
            assert all(
                levels[i] is not None and levels[i] >= loudest - LEAD_MARGIN_DB for i in leads
            )


@pytest.mark.parametrize("level", [0.0, 1e-9])
def test_a_resting_part_or_mix_stays_finite(level: float) -> None:
    """A part that rests through an excerpt (or a near-silent mix) must not turn into NaN:
    a compressor set relative to a -200 dB peak answers NaN, which would spoil the mix."""
    rng = np.random.default_rng(0)
    stem = (level * rng.standard_normal((RATE // 2, 2))).astype(np.float32)
    chosen = production.draw(("parts", "mix"), rng, parts=1, excerpts=1)
    assert np.isfinite(production.process_part(stem, RATE, chosen, 0)).all()
    assert np.isfinite(production.process_mix(stem, RATE, chosen, 0)).all()
