"""Where rendered instruments come from, grouped into families that splits never share.

Sources, chosen by name:
  soundfonts          the `--soundfonts` files (default: FluidR3, MuseScore General Lite,
                      TimGM6mb)
  csound-gm           csound's GM bank (Debian csound-soundfont)
  musescore-lossless  the lossless MuseScore General (optional, 478 MB)
  models              csound instrument models (instrec.synth.models): physical models,
                      FM and formant synthesis, each with many drawn voices

A *family* is what one recording or one synthesis method makes: soundfont presets of a
role linked by any shared sample (soundfonts.recording_families, computed over every
installed source so a family's name does not depend on which sources a render uses), or
one model family ("csound:clarinet-waveguide"). A cross-source split holds out whole
families: `holdout` picks them per IRMAS class from every installed source, seeded by
its own seed, so renders with different sources or options agree on what is held out.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instrec.errors import InstrecError
from instrec.labels import (
    ACCOMPANIMENT_GM_PROGRAMS,
    CHOIR_PAD_GM_PROGRAMS,
    IRMAS_CLASSES,
    IRMAS_GM_PROGRAMS,
)
from instrec.synth import models
from instrec.synth.models import ModelVoice
from instrec.synth.soundfonts import (
    EXTRA_SOUNDFONTS,
    Preset,
    RecordingKey,
    read_presets,
    recording_families,
    resolve_soundfonts,
)

SOURCE_KINDS: tuple[str, ...] = ("soundfonts", *EXTRA_SOUNDFONTS, "models")
DEFAULT_SOURCES: tuple[str, ...] = ("soundfonts",)
DEFAULT_MODEL_VOICES = 32
Instrument = Preset | ModelVoice
HELD_OUT, TRAIN = "held-out", "train"


def role_programs(role: str) -> tuple[int, ...]:
    """GM programs (bank 0) that play a role: an IRMAS class, "bass" or "pad" (no choir
    pads: unlabelled accompaniment must not sound like a voice)."""
    if role in IRMAS_GM_PROGRAMS:
        return IRMAS_GM_PROGRAMS[role]
    return tuple(p for p in ACCOMPANIMENT_GM_PROGRAMS[role] if p not in CHOIR_PAD_GM_PROGRAMS)


ROLES: tuple[str, ...] = (*IRMAS_CLASSES, *ACCOMPANIMENT_GM_PROGRAMS)


@dataclass(frozen=True)
class Catalogue:
    """Every installed source: the soundfonts and models families are computed over."""

    soundfonts: tuple[str, ...]
    models: tuple[str, ...]


def parse_sources(names: Sequence[str]) -> tuple[str, ...]:
    """Source kinds named, in canonical order ('all' for every kind installed here)."""
    chosen = set(names) - {""}
    if "all" in chosen:
        chosen = (chosen - {"all"}) | set(installed_kinds())
    unknown = sorted(chosen - set(SOURCE_KINDS))
    if unknown or not chosen:
        raise InstrecError(
            f"unknown or no sources {', '.join(unknown) or '(none)'} "
            f"(known: {', '.join(SOURCE_KINDS)})"
        )
    return tuple(kind for kind in SOURCE_KINDS if kind in chosen)


def installed_kinds() -> list[str]:
    """The source kinds this machine has."""
    kinds = ["soundfonts"]
    kinds += [kind for kind, (path, _) in EXTRA_SOUNDFONTS.items() if Path(path).is_file()]
    return kinds + (["models"] if models.available() else [])


def source_soundfonts(kinds: Sequence[str], soundfonts: Sequence[str | Path] | None) -> list[str]:
    """Soundfont files of the chosen kinds (an uninstalled named one is an error)."""
    fonts = resolve_soundfonts(soundfonts) if "soundfonts" in kinds else []
    for kind, (path, package) in EXTRA_SOUNDFONTS.items():
        if kind in kinds:
            if not Path(path).is_file():
                raise InstrecError(f"{path}: not installed (Debian package {package})")
            fonts += [f for f in resolve_soundfonts([path]) if f not in fonts]
    return fonts


def source_models(kinds: Sequence[str], names: Sequence[str] | None) -> list[str]:
    """Model names used when 'models' is chosen (None: every model csound can play here)."""
    if "models" not in kinds:
        return []
    if not models.available():
        raise InstrecError("csound: not installed (apt-get install csound csound-plugins)")
    playable = models.model_names(stk=models.stk_available())
    if names is None:
        return playable
    unknown = sorted(set(names) - set(models.MODELS))
    if unknown:
        raise InstrecError(
            f"unknown model {', '.join(unknown)} (known: {', '.join(models.MODELS)})"
        )
    missing = sorted(set(names) - set(playable))
    if missing:
        raise InstrecError(
            f"model {', '.join(missing)} needs csound's STK opcodes (apt-get install "
            "csound-plugins)"
        )
    return [name for name in models.MODELS if name in names]


def installed_catalogue(soundfonts: Sequence[str]) -> Catalogue:
    """Every source installed here, plus `soundfonts`."""
    fonts = list(soundfonts)
    for default in installed_soundfonts():
        if default not in fonts:
            fonts.append(default)
    playable = models.model_names(stk=models.stk_available()) if models.available() else []
    return Catalogue(tuple(fonts), tuple(playable))


def installed_soundfonts() -> list[str]:
    """The default and the extra soundfonts that are installed."""
    found = [str(Path(p).resolve()) for p, _ in EXTRA_SOUNDFONTS.values() if Path(p).is_file()]
    try:
        return [*resolve_soundfonts(None), *found]
    except InstrecError:  # no default soundfont installed
        return found


_font_presets = functools.cache(read_presets)  # each soundfont's table read once


@functools.cache
def _role_presets(soundfonts: tuple[str, ...]) -> dict[str, list[Preset]]:
    presets = [p for font in soundfonts for p in _font_presets(font) if p.bank == 0]
    return {role: [p for p in presets if p.program in role_programs(role)] for role in ROLES}


@functools.cache
def preset_families(soundfonts: tuple[str, ...]) -> dict[Preset, str]:
    """Recording family of every role's preset in these soundfonts."""
    presets = sorted({p for members in _role_presets(soundfonts).values() for p in members})
    return recording_families(presets)


@functools.cache
def class_families(catalogue: Catalogue) -> dict[str, tuple[str, ...]]:
    """Families that can play each IRMAS class, sorted by name."""
    families = preset_families(catalogue.soundfonts)
    table: dict[str, set[str]] = defaultdict(set)
    for role, presets in _role_presets(catalogue.soundfonts).items():
        if role in IRMAS_CLASSES:
            table[role] |= {families[p] for p in presets}
    for name in catalogue.models:
        for code in models.MODELS[name].classes:
            table[code].add(f"csound:{models.MODELS[name].family}")
    return {code: tuple(sorted(table[code])) for code in IRMAS_CLASSES}


def holdout(catalogue: Catalogue, share: float, seed: int) -> dict[str, str]:
    """Split of every class family: about `share` of each class's families held out
    (at least one where the class has two or more), at least one kept for training.

    Families are visited in a seeded order; a family serving several classes (the bowed
    string plays violin and cello) is held out only if every one of them has room."""
    by_class = class_families(catalogue)
    families = sorted({f for members in by_class.values() for f in members})
    wanted = {
        code: min(len(members) - 1, max(1, round(share * len(members)))) if share > 0 else 0
        for code, members in by_class.items()
    }
    held: dict[str, int] = dict.fromkeys(IRMAS_CLASSES, 0)
    split = dict.fromkeys(families, TRAIN)
    for index in np.random.default_rng([seed, 5]).permutation(len(families)):
        family = families[int(index)]
        served = [code for code, members in by_class.items() if family in members]
        if all(held[code] < wanted[code] for code in served):
            split[family] = HELD_OUT
            for code in served:
                held[code] += 1
    return split


def read_holdout(path: Path) -> dict[str, str]:
    """The family splits of an earlier render (its families.json)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        split = {family: str(entry["split"]) for family, entry in data["families"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise InstrecError(f"{path}: not a families.json of instrec synth ({error})") from None
    bad = sorted(f for f, s in split.items() if s not in (TRAIN, HELD_OUT))
    if bad:
        raise InstrecError(f"{path}: unknown split for {', '.join(bad)}")
    return split


def held_out_families(path: str | Path | None) -> frozenset[str]:
    """Families an earlier render's families.json holds out (none without one)."""
    if path is None:
        return frozenset()
    return frozenset(f for f, s in read_holdout(Path(path)).items() if s == HELD_OUT)


@functools.cache
def _held_out_samples(
    soundfonts: tuple[str, ...], held_out: frozenset[str]
) -> frozenset[RecordingKey]:
    families = preset_families(soundfonts)
    return frozenset(s for p, f in families.items() if f in held_out for s in p.samples)


def replays_held_out(
    instrument: Instrument, catalogue: Catalogue, held_out: frozenset[str]
) -> bool:
    """Whether an instrument sounds like a held-out family: a voice of a held-out model
    family, or a preset playing any sample a held-out family's presets play. A family
    is presets linked by shared samples, so this holds for its members, and also for
    presets outside the roles that replay its recording (a variation bank's "Cello 1", a
    soundfont's contrabass built on its cello), which have no family of their own."""
    if isinstance(instrument, ModelVoice):
        return instrument.family in held_out
    return not instrument.samples.isdisjoint(_held_out_samples(catalogue.soundfonts, held_out))


def families_record(catalogue: Catalogue, split: dict[str, str]) -> dict[str, object]:
    """families.json: each family's split, the classes it plays and what it is made of."""
    by_class = class_families(catalogue)
    presets = preset_families(catalogue.soundfonts)
    members: dict[str, list[str]] = defaultdict(list)
    for preset, family in sorted(presets.items()):
        members[family].append(preset.label)
    for name in catalogue.models:
        members[f"csound:{models.MODELS[name].family}"].append(f"csound:{name}")
    return {
        "families": {
            family: {
                "split": split.get(family, TRAIN),
                "classes": [c for c, fams in by_class.items() if family in fams],
                "members": members[family],
            }
            for family in sorted({f for fams in by_class.values() for f in fams})
        },
        "catalogue": {"soundfonts": list(catalogue.soundfonts), "models": list(catalogue.models)},
    }


@dataclass(frozen=True)
class Pool:
    """What one split of a render may play (hashable: it travels to worker processes).

    use: TRAIN plays no held-out family in any role; HELD_OUT plays only held-out
    families for IRMAS classes (accompaniment from anything the render uses)."""

    soundfonts: tuple[str, ...]  # the render's soundfonts
    models: tuple[str, ...]  # the render's csound models
    model_voices: int  # voices per model
    catalogue: Catalogue  # what family names are computed over
    held_out: frozenset[str]
    use: str = TRAIN


@functools.cache
def candidates(pool: Pool, role: str) -> dict[str, tuple[Instrument, ...]]:
    """Instruments a role may play, by family (families sorted by name)."""
    families = preset_families(pool.catalogue.soundfonts)
    table: dict[str, list[Instrument]] = defaultdict(list)
    for preset in _role_presets(pool.soundfonts)[role]:
        table[families[preset]].append(preset)
    for name in pool.models:
        if role in models.MODELS[name].classes:
            for index in range(pool.model_voices):
                table[f"csound:{models.MODELS[name].family}"].append(models.voice(name, index))
    if pool.use == HELD_OUT and role in IRMAS_CLASSES:
        kept = {f: m for f, m in table.items() if f in pool.held_out}
    else:
        kept = {f: m for f, m in table.items() if f not in pool.held_out}
    return {family: tuple(kept[family]) for family in sorted(kept)}


def pick(pool: Pool, role: str, rng: np.random.Generator) -> tuple[str, Instrument]:
    """(family, instrument) for a role: a family uniformly, then one of its members."""
    table = candidates(pool, role)
    if not table:
        raise InstrecError(f"no {pool.use} source plays {role} (sources: {_describe(pool)})")
    family = list(table)[int(rng.integers(len(table)))]
    members = table[family]
    return family, members[int(rng.integers(len(members)))]


def _describe(pool: Pool) -> str:
    return ", ".join([Path(f).name for f in pool.soundfonts] + list(pool.models)) or "none"
