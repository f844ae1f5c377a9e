"""Solo excerpts of each IRMAS class played by a csound model voice.

A model voice is a synthesis method that no soundfont shares, so a model trained on
soundfont renders has never heard it: its solos check whether a model learned the
instrument or the recordings (the shipped model's card reports its accuracy on them).
A melody is a seeded walk on a major scale inside the class's usual register.
"""

from __future__ import annotations

import numpy as np

from instrec.errors import InstrecError
from instrec.labels import IRMAS_CLASSES
from instrec.synth.csound import CsoundNote
from instrec.synth.models import render_notes, voice

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


def render_solo(
    code: str, seconds: float = 4.0, sample_rate: int = 44_100, seed: int = 0
) -> np.ndarray:
    """(samples,) float32: `seconds` of a melody on class `code`'s model voice `seed`."""
    if code not in SOLO_MODELS:
        raise InstrecError(f"no solo model for {code!r} (classes: {', '.join(IRMAS_CLASSES)})")
    model, (low, high) = SOLO_MODELS[code]
    player = voice(model, seed)
    low, high = max(low, player.keys[0]), min(high, player.keys[1])
    rng = np.random.default_rng([seed, IRMAS_CLASSES.index(code)])
    tonic = int(rng.integers(low, max(low + 1, high - 12)))
    scale = [k for octave in range(-2, 4) for k in (tonic + 12 * octave + s for s in MAJOR_SCALE)]
    keys = [k for k in scale if low <= k <= high]
    position, onset, notes = len(keys) // 2, 0.0, []
    while onset < seconds - 0.2:
        duration = float(rng.uniform(0.3, 0.7))
        velocity = int(rng.integers(80, 111))
        notes.append(CsoundNote(onset, duration * 0.95, keys[position], velocity))
        position = int(np.clip(position + rng.integers(-2, 3), 0, len(keys) - 1))
        onset += duration
    return render_notes(player, notes, round(seconds * sample_rate), sample_rate)
