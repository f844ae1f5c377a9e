"""Solo excerpts of each IRMAS class: a seeded melody on an instrument unheard in training.

By default a class's solo is played by a csound model voice (SOLO_MODELS): a synthesis
method that no soundfont shares, so a model trained on soundfont renders has never heard
it, and its solos check whether the model learned the instrument or the recordings (the
shipped model's card reports its accuracy on them).

A model trained on every source has heard those voices too. Its solos must come from
families its training never heard: the ones a cross-source benchmark held out, whose
families.json names them (`held_out_members` picks one member per class). Given a
member, `render_solo` plays the same seeded melody on it, a csound model
("csound:trumpet-fm", voice `seed`) or a soundfont preset ("FluidR3_GM.sf2:000:059
Muted Trumpet"), through the ensembles' part renderer.

A melody is a seeded walk on a major scale inside the class's usual register (within the
keys its model voice plays). A member plays the same notes (keys, onsets, durations,
velocities), each key it does not sound moved to the nearest it does, by octaves where it
can (the register clipped to the keys it plays).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from instrec.audio import resample
from instrec.errors import InstrecError
from instrec.labels import IRMAS_CLASSES
from instrec.synth.csound import CsoundNote
from instrec.synth.ensembles import IRMAS_RATE, PlayedNote, Voice, playable_keys, render_part
from instrec.synth.models import MODELS, ModelVoice, render_notes, voice
from instrec.synth.soundfonts import read_presets
from instrec.synth.sources import HELD_OUT, TRAIN, Instrument, installed_soundfonts

# class -> (csound model, the class's usual register as MIDI keys)
SOLO_MODELS: dict[str, tuple[str, tuple[int, int]]] = {
    "cel": ("bowed-wg", (36, 62)),
    "cla": ("clarinet-wg", (52, 81)),
    "flu": ("flute-wg", (62, 91)),
    "gac": ("guitar-wg", (40, 76)),
    "gel": ("guitar-electric-ks", (40, 81)),
    "org": ("organ-additive", (36, 84)),
    "pia": ("epiano-fm", (40, 84)),
    "sax": ("saxophone-stk", (49, 80)),
    "tru": ("trumpet-fm", (55, 82)),
    "vio": ("bowed-wg", (55, 88)),
    "voi": ("voice-fof", (55, 79)),
}
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)  # semitones above the tonic
CSOUND_MEMBER = "csound:"  # how families.json names a csound model member


def render_solo(
    code: str,
    seconds: float = 4.0,
    sample_rate: int = 44_100,
    seed: int = 0,
    member: str | None = None,
) -> np.ndarray:
    """(samples,) float32: `seconds` of a melody of class `code` on its model voice `seed`,
    or on `member` (a families.json member name; rendered at IRMAS_RATE, then resampled)."""
    player, notes = solo_part(code, seconds, seed, member)
    n_samples = round(seconds * sample_rate)
    if member is None:
        assert isinstance(player, ModelVoice)
        played = [CsoundNote(n.onset, n.duration, n.key, n.velocity) for n in notes]
        return render_notes(player, played, n_samples, sample_rate)
    stereo = render_part(Voice(code, True, player, ()), notes, round(seconds * IRMAS_RATE))
    mono = resample(stereo.mean(axis=1), IRMAS_RATE, sample_rate)[:n_samples]
    return np.pad(mono, (0, n_samples - mono.size))


def top1_hits(
    probabilities_of: Callable[[np.ndarray, int], Mapping[str, float]],
    members: Mapping[str, str | None],
    seconds: float = 4.0,
    sample_rate: int = 44_100,
) -> list[bool]:
    """Whether a model (`probabilities_of(audio, sample_rate)`: class -> probability)
    ranks each class first on its solo, played by `members[class]` (None: its csound
    voice): the one measure the shipped model's card states and its test checks."""
    hits = []
    for code, member in members.items():
        probabilities = probabilities_of(
            render_solo(code, seconds, sample_rate, member=member), sample_rate
        )
        hits.append(max(probabilities, key=probabilities.__getitem__) == code)
    return hits


def solo_part(
    code: str, seconds: float = 4.0, seed: int = 0, member: str | None = None
) -> tuple[Instrument, list[PlayedNote]]:
    """Who plays class `code`'s solo and its notes (times in s): the model voice's melody,
    which a member plays with each key it does not sound (probed over the register) moved
    to the nearest one it does, by octaves where it can."""
    if code not in SOLO_MODELS:
        raise InstrecError(f"no solo model for {code!r} (classes: {', '.join(IRMAS_CLASSES)})")
    model, (low, high) = SOLO_MODELS[code]
    solo = voice(model, seed)
    notes = _melody(code, seconds, seed, max(low, solo.keys[0]), min(high, solo.keys[1]))
    if member is None:
        return solo, notes
    player = member_instrument(member, seed)
    keys = playable_keys(player, set(range(low, high + 1)))
    if not keys:
        raise InstrecError(f"{member}: plays no key of {code}'s register ({low}-{high})")
    return player, [replace(n, key=_nearest(n.key, keys)) for n in notes]


def _melody(code: str, seconds: float, seed: int, low: int, high: int) -> list[PlayedNote]:
    """A seeded walk on a major scale in [low, high], its tonic at least an octave under
    the top."""
    rng = np.random.default_rng([seed, IRMAS_CLASSES.index(code)])
    tonic = int(rng.integers(low, max(low + 1, high - 12)))
    scale = [k for octave in range(-2, 4) for k in (tonic + 12 * octave + s for s in MAJOR_SCALE)]
    keys = [k for k in scale if low <= k <= high]
    position, onset, notes = len(keys) // 2, 0.0, []
    while onset < seconds - 0.2:
        duration = float(rng.uniform(0.3, 0.7))
        velocity = int(rng.integers(80, 111))
        notes.append(PlayedNote(onset, duration * 0.95, keys[position], velocity))
        position = int(np.clip(position + rng.integers(-2, 3), 0, len(keys) - 1))
        onset += duration
    return notes


def _nearest(key: int, keys: set[int]) -> int:
    """The key among `keys` nearest to `key`: of its pitch class if any, the lower on a tie."""
    return min(keys, key=lambda k: ((k - key) % 12 != 0, abs(k - key), k))


def member_instrument(member: str, seed: int = 0) -> Instrument:
    """The instrument a families.json member names: voice `seed` of a csound model
    ("csound:trumpet-fm"), or a preset of a soundfont installed here (its label)."""
    if member.startswith(CSOUND_MEMBER):
        model = member.removeprefix(CSOUND_MEMBER)
        if model not in MODELS:
            raise InstrecError(f"{member}: no such csound model (known: {', '.join(MODELS)})")
        return voice(model, seed)
    fonts = installed_soundfonts()
    for font in fonts:
        if member.startswith(f"{Path(font).name}:"):
            for preset in read_presets(font):
                if preset.label == member:
                    return preset
    names = ", ".join(Path(f).name for f in fonts) or "none"
    raise InstrecError(f"{member}: no such preset in the soundfonts installed here ({names})")


def held_out_members(families_json: Path) -> dict[str, str]:
    """Class -> member of a held-out family of a render's families.json, for each class
    that has one: the first such family by name, its first member (the same every time)."""
    chosen: dict[str, str] = {}
    for classes, members in _held_out_families(families_json):
        for code in classes:
            chosen.setdefault(code, members[0])
    return {code: chosen[code] for code in IRMAS_CLASSES if code in chosen}


def _held_out_families(path: Path) -> list[tuple[list[str], list[str]]]:
    """(classes, members) of each held-out family, families sorted by name."""
    try:
        families = json.loads(path.read_text(encoding="utf-8"))["families"]
        entries = [(families[f]["split"], families[f]) for f in sorted(families)]
        held = [(list(e["classes"]), list(e["members"])) for s, e in entries if s == HELD_OUT]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise InstrecError(f"{path}: not a families.json of instrec synth ({error})") from None
    if any(split not in (TRAIN, HELD_OUT) for split, _ in entries):
        raise InstrecError(f"{path}: a family's split is neither {TRAIN} nor {HELD_OUT}")
    if not all(m and all(isinstance(x, str) for x in (*c, *m)) for c, m in held):
        raise InstrecError(f"{path}: a held-out family without members, or not named by text")
    if not held:
        raise InstrecError(f"{path}: holds out no family (render the benchmark with a holdout)")
    return held
