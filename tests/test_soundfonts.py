"""Preset tables read from the soundfont files themselves, and rendering from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from instrec.errors import InstrecError
from instrec.labels import GM_PERCUSSION_BANK
from instrec.synth.fluidsynth import Event, Synth
from instrec.synth.soundfonts import note_presets, read_presets, resolve_soundfonts

FLUID = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
MUSESCORE = "/usr/share/sounds/sf3/MuseScore_General.sf3"
TIM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
pytestmark = pytest.mark.skipif(
    not all(Path(p).exists() for p in (FLUID, MUSESCORE, TIM)), reason="Debian soundfonts"
)


def test_fluidr3_preset_table_matches_the_file() -> None:
    presets = read_presets(FLUID)
    assert len(presets) == 189  # 128 GM programs, 30 variations, 31 drum kits
    assert sum(p.bank == GM_PERCUSSION_BANK for p in presets) == 31
    piano = next(p for p in presets if (p.bank, p.program) == (0, 0))
    assert piano.name == "Yamaha Grand Piano"
    assert piano.recording in piano.samples


def test_sf3_without_riff_padding_is_read() -> None:
    presets = read_presets(MUSESCORE)  # its sdta chunk has an odd size and no pad byte
    assert any(p.name == "Violin Expr." for p in presets)


def test_note_presets_drop_drums_effects_and_copies() -> None:
    presets = note_presets([FLUID, MUSESCORE])
    assert all(p.bank != GM_PERCUSSION_BANK and p.family is not None for p in presets)
    assert not any(p.program in range(120, 128) for p in presets)  # sound effects
    assert not any(p.name.endswith("Expr.") for p in presets)  # same samples as bank 0
    assert len({(p.soundfont, p.samples) for p in presets}) == len(presets)


def test_shared_recordings_across_soundfonts_get_one_key() -> None:
    presets = note_presets([FLUID, MUSESCORE])
    harpsichords = [p for p in presets if (p.bank, p.program) == (0, 6)]
    assert len(harpsichords) == 2  # MuseScore General reuses FluidR3's harpsichord
    assert harpsichords[0].recording == harpsichords[1].recording
    pianos = [p for p in presets if (p.bank, p.program) == (0, 0)]
    assert pianos[0].recording != pianos[1].recording


def test_resolve_soundfonts_follows_links_and_rejects_missing(tmp_path: Path) -> None:
    assert resolve_soundfonts([MUSESCORE, str(Path(MUSESCORE).resolve())]) == [
        str(Path(MUSESCORE).resolve())
    ]
    with pytest.raises(InstrecError, match="no such soundfont"):
        resolve_soundfonts([tmp_path / "missing.sf2"])
    bogus = tmp_path / "bogus.sf2"
    bogus.write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    with pytest.raises(InstrecError, match=r"bogus\.sf2: not a readable SoundFont"):
        read_presets(bogus)


def _note(synth: Synth, program: int, key: int) -> np.ndarray:
    preset = next(p for p in read_presets(TIM) if (p.bank, p.program) == (0, program))
    events = [Event(0, "on", 0, key, 100), Event(24_000, "off", 0, key)]
    return synth.render({0: preset}, events, 48_000)


def test_render_does_not_depend_on_what_came_before() -> None:
    synth = Synth(48_000)
    first = _note(synth, 73, 69)
    _note(synth, 56, 80)  # a trumpet in between leaves traces in libfluidsynth's voices
    again = _note(synth, 73, 69)
    fresh = _note(Synth(48_000), 73, 69)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, fresh)


def test_expression_presets_sound() -> None:
    violin = next(p for p in read_presets(MUSESCORE) if p.name == "Violin Expr.")
    audio = Synth(48_000).render({0: violin}, [Event(0, "on", 0, 67, 100)], 24_000)
    assert np.abs(audio).max() > 0.01  # silent unless the breath controller (CC2) is sent
