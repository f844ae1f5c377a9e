"""NSynth's naming and examples.json fields, so rendered notes read like the real dataset.

NSynth names an instrument "<family>_<source>_<NNN>" (e.g. "guitar_acoustic_001", NNN
counting instruments of that family and source) and a note "<instrument>-<pitch>-<velocity>"
(e.g. "guitar_acoustic_001-082-050"); examples.json maps each note_str to its fields.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from instrec.labels import NSYNTH_FAMILIES, NSYNTH_QUALITIES, NSYNTH_SOURCES

NSYNTH_SAMPLE_RATE = 16_000  # Hz
NOTE_SECONDS = 4.0  # every NSynth note lasts 4 s ...
HOLD_SECONDS = 3.0  # ... held for 3 s, then released
MIN_PITCH, MAX_PITCH = 21, 108  # MIDI: the 88 piano keys, NSynth's range
SPLITS: tuple[str, ...] = ("train", "valid", "test")


def instrument_strs(family_sources: Sequence[tuple[str, str]]) -> list[str]:
    """NSynth instrument names for instruments in this order: the n-th instrument of a
    (family, source) pair is "<family>_<source>_<n:03d>", counting from 000."""
    counts: Counter[tuple[str, str]] = Counter()
    names = []
    for family, source in family_sources:
        names.append(f"{family}_{source}_{counts[family, source]:03d}")
        counts[family, source] += 1
    return names


def note_str(instrument_str: str, pitch: int, velocity: int) -> str:
    return f"{instrument_str}-{pitch:03d}-{velocity:03d}"


def example_fields(
    *,
    instrument_str: str,
    instrument: int,
    family: str,
    source: str,
    pitch: int,
    velocity: int,
    note: int,
    qualities: Sequence[str] = (),
) -> dict[str, object]:
    """One examples.json entry with every field of the official NSynth release."""
    return {
        "note": note,
        "note_str": note_str(instrument_str, pitch, velocity),
        "instrument": instrument,
        "instrument_str": instrument_str,
        "instrument_family": NSYNTH_FAMILIES.index(family),
        "instrument_family_str": family,
        "instrument_source": NSYNTH_SOURCES.index(source),
        "instrument_source_str": source,
        "pitch": pitch,
        "velocity": velocity,
        "sample_rate": NSYNTH_SAMPLE_RATE,
        "qualities": [int(q in qualities) for q in NSYNTH_QUALITIES],
        "qualities_str": [q for q in NSYNTH_QUALITIES if q in qualities],
    }
