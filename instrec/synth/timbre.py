"""Per-part timbre variation at render time: each part of a song gets its own colour.

Six ingredients, each switched on by name (all off by default: they did not help in the
cross-source ablation, benchmarks/results/render_ablation):
  eq        low shelf (200 Hz) +-6 dB, high shelf (4 kHz) +-8 dB ("brightness") and one
            peak (300 Hz-5 kHz) +-6 dB, applied to the part with pedalboard
  envelope  attack time scaled by 0.5-8x (many presets attack in ~1 ms), release by
            0.5-3x (a csound voice's attack at most MAX_MODEL_ATTACK s)
  detune    the whole part off pitch by up to +-15 cents
  chorus    pedalboard chorus (0.3-2 Hz, depth 0.1-0.4, mix 0.2-0.5)
  vibrato   0-35 cents at 4-7 Hz
  velocity  the part's dynamics moved (centre 40-120) and compressed or widened
            (0.4-1.2x), so soundfonts pick other velocity layers and models blow,
            bow and pluck harder or softer
Soundfont parts get envelope, detune and vibrato as SoundFont generator offsets in
libfluidsynth; csound parts as their model's parameters. Every value is drawn whether
its ingredient is on or not, so turning one on never changes another's draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from instrec.synth.options import log_uniform_of, parse_named

if TYPE_CHECKING:
    import pedalboard

TIMBRE_OPTIONS: tuple[str, ...] = ("eq", "envelope", "detune", "chorus", "vibrato", "velocity")
# SoundFont 2.04 generator numbers set per channel in libfluidsynth (offsets, in cents or
# timecents, added to what the preset says)
GEN_VIB_LFO_TO_PITCH, GEN_VIB_LFO_FREQ = 6, 24
GEN_ATTACK, GEN_RELEASE, GEN_FINE_TUNE = 34, 38, 52
_LFO_BASE_HZ = 8.176  # a vibrato LFO frequency of 0 absolute cents
MAX_MODEL_ATTACK = 0.3  # s: slower attacks would swallow short notes
VELOCITY_PIVOT = 80  # the score's default velocity: where `spread` pivots


@dataclass(frozen=True)
class Timbre:
    """One part's variation; None where that ingredient is off."""

    eq: tuple[float, float, float, float] | None = None  # low dB, high dB, peak Hz, peak dB
    attack: float | None = None  # factor on attack time
    release: float | None = None  # factor on release time
    detune: float | None = None  # cents
    chorus: tuple[float, float, float] | None = None  # rate Hz, depth, mix
    vibrato: tuple[float, float] | None = None  # depth cents, rate Hz
    velocity: tuple[float, float] | None = None  # centre (MIDI velocity), spread factor

    def record(self) -> dict[str, object]:
        """What songs.json records: the ingredients that are on, rounded."""
        return {
            name: [round(v, 3) for v in value] if isinstance(value, tuple) else round(value, 3)
            for name, value in asdict(self).items()
            if value is not None
        }


def parse_options(names: Sequence[str]) -> tuple[str, ...]:
    """The ingredients named, in canonical order; 'all' for every one, 'none' for none."""
    return parse_named(names, TIMBRE_OPTIONS, "timbre option")


def draw(options: Sequence[str], rng: np.random.Generator) -> Timbre:
    """A part's variation: every value drawn in a fixed order, the chosen ones kept."""
    log_uniform = log_uniform_of(rng)
    values: dict[str, object] = {
        "eq": (
            float(rng.uniform(-6, 6)),
            float(rng.uniform(-8, 8)),
            log_uniform(300, 5000),
            float(rng.uniform(-6, 6)),
        ),
        "attack": log_uniform(0.5, 8.0),
        "release": log_uniform(0.5, 3.0),
        "detune": float(rng.uniform(-15, 15)),
        "chorus": (
            log_uniform(0.3, 2.0),
            float(rng.uniform(0.1, 0.4)),
            float(rng.uniform(0.2, 0.5)),
        ),
        "vibrato": (float(rng.uniform(0, 35)), float(rng.uniform(4, 7))),
        "velocity": (float(rng.uniform(40, 120)), float(rng.uniform(0.4, 1.2))),
    }
    keep = set(options)
    if "envelope" in keep:
        keep |= {"attack", "release"}
    return Timbre(**{name: value for name, value in values.items() if name in keep})  # type: ignore[arg-type]


def velocity(timbre: Timbre, value: int) -> int:
    """A note's velocity after the part's dynamics change."""
    if timbre.velocity is None:
        return value
    centre, spread = timbre.velocity
    return int(np.clip(round(centre + spread * (value - VELOCITY_PIVOT)), 1, 127))


def tune_factor(timbre: Timbre) -> float:
    """Frequency factor of the part's detune."""
    return 2 ** ((timbre.detune or 0.0) / 1200)


def generators(timbre: Timbre) -> dict[int, float]:
    """libfluidsynth generator offsets for a soundfont part (empty when nothing is on)."""
    offsets: dict[int, float] = {}
    if timbre.attack is not None and timbre.release is not None:
        offsets[GEN_ATTACK] = 1200 * math.log2(timbre.attack)
        offsets[GEN_RELEASE] = 1200 * math.log2(timbre.release)
    if timbre.detune is not None:
        offsets[GEN_FINE_TUNE] = timbre.detune
    if timbre.vibrato is not None:
        offsets[GEN_VIB_LFO_TO_PITCH] = timbre.vibrato[0]
        offsets[GEN_VIB_LFO_FREQ] = 1200 * math.log2(timbre.vibrato[1] / _LFO_BASE_HZ)
    return offsets


def model_overrides(timbre: Timbre, params: dict[str, float]) -> dict[str, float]:
    """Parameters of a csound voice changed by the part's variation."""
    changed: dict[str, float] = {}
    if timbre.attack is not None and timbre.release is not None:
        changed["attack"] = min(params["attack"] * timbre.attack, MAX_MODEL_ATTACK)
        changed["release"] = params["release"] * timbre.release
    if timbre.vibrato is not None:
        changed["vib_depth"], changed["vib_hz"] = timbre.vibrato
    return changed


def process(stereo: np.ndarray, sample_rate: int, timbre: Timbre) -> np.ndarray:
    """The part after its EQ and chorus ((samples, 2) float32 in and out)."""
    import pedalboard

    plugins: list[pedalboard.Plugin] = []
    if timbre.eq is not None:
        low, high, peak_hz, peak_db = timbre.eq
        plugins += shelves(low, high)
        plugins.append(pedalboard.PeakFilter(cutoff_frequency_hz=peak_hz, gain_db=peak_db, q=1.0))
    if timbre.chorus is not None:
        rate, depth, mix = timbre.chorus
        plugins.append(
            pedalboard.Chorus(rate_hz=rate, depth=depth, centre_delay_ms=7.0, feedback=0.0, mix=mix)
        )
    return played_through(plugins, stereo, sample_rate)


def shelves(low_db: float, high_db: float) -> list[pedalboard.Plugin]:
    """A low shelf (200 Hz) and a high shelf (4 kHz) of these gains (dB): a part's colour
    here, a part's or a bus's EQ in instrec.synth.production."""
    import pedalboard

    return [
        pedalboard.LowShelfFilter(cutoff_frequency_hz=200, gain_db=low_db),
        pedalboard.HighShelfFilter(cutoff_frequency_hz=4000, gain_db=high_db),
    ]


def played_through(
    plugins: Sequence[pedalboard.Plugin], stereo: np.ndarray, sample_rate: int
) -> np.ndarray:
    """(samples, 2) float32 audio through `plugins` in order (the audio itself if none)."""
    import pedalboard

    if not plugins:
        return stereo
    board = pedalboard.Pedalboard(list(plugins))
    out = board(np.ascontiguousarray(stereo.T, dtype=np.float32), sample_rate)
    return np.ascontiguousarray(out.T)
