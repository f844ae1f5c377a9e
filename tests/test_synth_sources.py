"""Instrument sources grouped into recording/synthesis families, and held-out families
that no training role ever plays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from instrec.labels import CHOIR_PAD_GM_PROGRAMS, IRMAS_CLASSES
from instrec.synth import models, sources
from instrec.synth.soundfonts import Preset, read_presets, recording_families
from instrec.synth.sources import HELD_OUT, TRAIN, Catalogue, Pool

FLUID = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
TIM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
CSOUND_GM = "/usr/share/sounds/sf2/sf_GMbank.sf2"
FONTS = (FLUID, TIM, CSOUND_GM)
pytestmark = pytest.mark.skipif(
    not all(Path(p).exists() for p in FONTS), reason="FluidR3, TimGM6mb and csound's GM bank"
)
MODELS = ("clarinet-wg", "bowed-wg", "organ-additive", "trumpet-fm")
CATALOGUE = Catalogue(FONTS, MODELS)


def _preset(font: str, program: int) -> Preset:
    return next(p for p in read_presets(font) if (p.bank, p.program) == (0, program))


def test_presets_sharing_any_sample_are_one_family() -> None:
    clarinets = [_preset(font, 71) for font in FONTS]
    families = recording_families(clarinets)
    fluid, tim, csound_gm = (families[p] for p in clarinets)
    assert tim == csound_gm  # csound's bank replays some of TimGM6mb's clarinet samples ...
    assert clarinets[1].recording != clarinets[2].recording  # ... but not its key-60 one
    assert fluid != tim
    assert families[clarinets[1]] == "sf:TimGM6mb.sf2:000:071 Clarinet"


def test_class_families_count_recordings_and_synthesis_methods() -> None:
    table = sources.class_families(CATALOGUE)
    assert set(table) == set(IRMAS_CLASSES)
    assert "csound:bowed-string" in table["vio"] and "csound:bowed-string" in table["cel"]
    assert "csound:clarinet-waveguide" in table["cla"]
    assert sum(f.startswith("sf:") for f in table["cla"]) == 2  # FluidR3's; TimGM6mb's


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holdout_splits_whole_families_and_keeps_every_class_trainable(seed: int) -> None:
    split = sources.holdout(CATALOGUE, 0.34, seed)
    assert split == sources.holdout(CATALOGUE, 0.34, seed)  # seeded
    for code, families in sources.class_families(CATALOGUE).items():
        splits = [split[f] for f in families]
        assert TRAIN in splits
        if len(families) >= 2:
            assert HELD_OUT in splits, code
    assert set(sources.holdout(CATALOGUE, 0.0, seed).values()) == {TRAIN}


def test_holdout_does_not_depend_on_the_sources_a_render_uses() -> None:
    """Families are named over the whole catalogue: the FluidR3-only arm of an ablation
    holds out the same FluidR3 families as the arm with every source."""
    split = sources.holdout(CATALOGUE, 0.34, 0)
    held = frozenset(f for f, s in split.items() if s == HELD_OUT)
    full = Pool(FONTS, MODELS, 2, CATALOGUE, held, TRAIN)
    fluid_only = Pool((FLUID,), (), 2, CATALOGUE, held, TRAIN)
    for role in sources.ROLES:
        wide = set(sources.candidates(full, role))
        assert set(sources.candidates(fluid_only, role)) <= wide


def test_no_family_plays_in_both_training_and_held_out_pools() -> None:
    split = sources.holdout(CATALOGUE, 0.5, 3)
    held = frozenset(f for f, s in split.items() if s == HELD_OUT)
    train = Pool(FONTS, MODELS, 2, CATALOGUE, held, TRAIN)
    test = Pool(FONTS, MODELS, 2, CATALOGUE, held, HELD_OUT)
    held_samples: set[object] = set()
    for role in sources.ROLES:
        assert not set(sources.candidates(train, role)) & held
        if role in IRMAS_CLASSES:
            tested = sources.candidates(test, role)
            assert set(tested) <= held
            held_samples |= {s for ms in tested.values() for m in ms for s in _samples(m)}
    heard = {
        s for role in sources.ROLES for ms in sources.candidates(train, role).values()
        for m in ms for s in _samples(m)
    }  # fmt: skip
    assert held_samples and not heard & held_samples  # not even one shared sample


def _samples(instrument: object) -> frozenset:
    return getattr(instrument, "samples", frozenset())


def test_pick_draws_families_evenly_then_members() -> None:
    pool = Pool(FONTS, MODELS, 4, CATALOGUE, frozenset(), TRAIN)
    rng = np.random.default_rng(0)
    drawn = [sources.pick(pool, "cla", rng)[0] for _ in range(600)]
    families = sources.candidates(pool, "cla")
    assert len(families) == 3 and set(drawn) == set(families)
    assert min(drawn.count(f) for f in families) > 150  # ~200 each
    picked = [sources.pick(pool, "cla", rng) for _ in range(200)]
    voices = [i for f, i in picked if f.startswith("csound")]
    assert voices and all(isinstance(v, models.ModelVoice) for v in voices)
    assert {v.index for v in voices if isinstance(v, models.ModelVoice)} == {0, 1, 2, 3}


def test_pads_never_play_choir_presets() -> None:
    assert all(p not in CHOIR_PAD_GM_PROGRAMS for p in sources.role_programs("pad"))
    pool = Pool(FONTS, (), 1, CATALOGUE, frozenset(), TRAIN)
    names = [m.label for ms in sources.candidates(pool, "pad").values() for m in ms]
    assert names and not any("Choir" in n or "Voice" in n for n in names)


def test_all_sources_means_every_kind_installed_here() -> None:
    installed = sources.installed_kinds()
    assert sources.parse_sources(["all"]) == tuple(
        k for k in sources.SOURCE_KINDS if k in installed
    )
    assert sources.parse_sources(["models", "soundfonts"]) == ("soundfonts", "models")
    lossless = Path(sources.EXTRA_SOUNDFONTS["musescore-lossless"][0])
    assert ("musescore-lossless" in installed) == lossless.is_file()
