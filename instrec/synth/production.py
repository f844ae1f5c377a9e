"""Production: what a studio does to the parts and the mix after they are played.

Ingredients, each switched on by name (all off by default: none helped in the cross-source
ablation, benchmarks/results/render_ablation):
  parts     per part: a compressor (threshold -30..-10 dB, ratio 1.5-6, attack 1-30 ms,
            release 50-300 ms), EQ (high-pass 20-150 Hz, low and high shelves +-4 dB)
            and a send (0-0.4) to the song's room (pedalboard reverb, size 0.1-0.9,
            damping 0.1-0.9), so the parts sit in one space
  mix       on the finished mix: a tilt EQ (+-3 dB), gentle bus compression (ratio
            1.5-3, threshold 4-12 dB under the mix's peak), stereo width 0.7-1.3x and a
            brick-wall limiter taking 1-6 dB off the peaks
  codec     half the excerpts through an MP3 round trip (LAME VBR quality 2-9), sample
            count and alignment kept
Compressor thresholds are relative to the part peaking at PART_PEAK_DB, so a part is
squeezed alike however loud its instrument renders. The room is linear and shared: each
part's own reverberation is added to it before the part is levelled (see
instrec.synth.ensembles), which sums to one reverb bus over every send while keeping the
leading parts' levels measured on what is heard. Every value is drawn whether its
ingredient is on or not, song-wide values first, then each excerpt's codec, then each
part (drums last), so turning one on never changes another's draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from instrec.synth.options import log_uniform_of, parse_named
from instrec.synth.timbre import played_through, shelves

if TYPE_CHECKING:
    import pedalboard

PRODUCTION_OPTIONS: tuple[str, ...] = ("parts", "mix", "codec")
PART_PEAK_DB = -6.0  # dBFS a part's compressor threshold is relative to (tracking headroom)
CODEC_SHARE = 0.5  # share of excerpts sent through the lossy round trip
CODEC_PEAK = 0.5  # peak (full scale 1) a mix is encoded at, clear of the encoder's clipping


@dataclass(frozen=True)
class PartChain:
    """One part's channel strip."""

    compressor: tuple[float, float, float, float]  # threshold dB, ratio, attack ms, release ms
    eq: tuple[float, float, float]  # high-pass Hz, low shelf dB, high shelf dB
    send: float  # amplitude sent to the room (0-0.4)


@dataclass(frozen=True)
class Bus:
    """The mix bus: tilt, compression, width, limiting."""

    tilt: float  # dB: high shelf +tilt, low shelf -tilt
    compressor: tuple[float, float]  # threshold dB under the mix's peak, ratio
    width: float  # factor on the side (L-R) signal
    limit: float  # dB taken off the mix's peak by the limiter


@dataclass(frozen=True)
class Production:
    """A song's production; None where that ingredient is off."""

    room: tuple[float, float] | None = None  # reverb room size, damping (0-1)
    parts: tuple[PartChain, ...] | None = None  # by part index, drums last
    mix: Bus | None = None
    codec: tuple[float | None, ...] | None = None  # by excerpt: VBR quality, None: lossless

    def record(self, excerpt: int) -> dict[str, object]:
        """What songs.json records with an excerpt: the ingredients that are on, rounded
        (codec: this excerpt's VBR quality, None where it was not encoded)."""
        record = {
            name: _rounded(value)
            for name, value in asdict(self).items()
            if value is not None and name != "codec"
        }
        if self.codec is not None:
            record["codec"] = _rounded(self.codec[excerpt])
        return record


OFF = Production()  # every ingredient off: the parts and the mix as played


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def parse_options(names: Sequence[str]) -> tuple[str, ...]:
    """The ingredients named, in canonical order; 'all' for every one, 'none' for none."""
    return parse_named(names, PRODUCTION_OPTIONS, "production option")


def draw(options: Sequence[str], rng: np.random.Generator, parts: int, excerpts: int) -> Production:
    """A song's production for `parts` parts and `excerpts` excerpts: every value drawn in
    a fixed order, the chosen ones kept."""
    log_uniform = log_uniform_of(rng)
    room = (float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.1, 0.9)))
    bus = Bus(
        float(rng.uniform(-3, 3)),
        (float(rng.uniform(-12, -4)), float(rng.uniform(1.5, 3))),
        float(rng.uniform(0.7, 1.3)),
        float(rng.uniform(1, 6)),
    )
    codec = tuple(
        quality if coin < CODEC_SHARE else None
        for coin, quality in ((rng.random(), float(rng.uniform(2, 9))) for _ in range(excerpts))
    )
    chains = tuple(
        PartChain(
            (
                float(rng.uniform(-30, -10)),
                log_uniform(1.5, 6),
                log_uniform(1, 30),
                log_uniform(50, 300),
            ),
            (log_uniform(20, 150), float(rng.uniform(-4, 4)), float(rng.uniform(-4, 4))),
            float(rng.uniform(0, 0.4)),
        )
        for _ in range(parts)
    )
    on = set(options)
    return Production(
        room if "parts" in on else None,
        chains if "parts" in on else None,
        bus if "mix" in on else None,
        codec if "codec" in on else None,
    )


def process_part(stem: np.ndarray, rate: int, production: Production, part: int) -> np.ndarray:
    """(samples, 2) float32: the part through its channel strip, plus its share of the
    room; the stem itself when `parts` is off."""
    if production.parts is None or production.room is None or _peak_db(stem) < SILENT_DB:
        return stem  # a resting part: a compressor set under -200 dB answers NaN
    import pedalboard

    chain = production.parts[part]
    threshold, ratio, attack, release = chain.compressor
    high_pass, low, high = chain.eq
    dry = played_through(
        [
            pedalboard.Compressor(
                threshold_db=threshold - PART_PEAK_DB + _peak_db(stem),
                ratio=ratio,
                attack_ms=attack,
                release_ms=release,
            ),
            pedalboard.HighpassFilter(cutoff_frequency_hz=high_pass),
            *shelves(low, high),
        ],
        stem,
        rate,
    )
    size, damping = production.room
    room = pedalboard.Reverb(room_size=size, damping=damping, wet_level=1.0, dry_level=0.0)
    return dry + chain.send * played_through([room], dry, rate)


def process_mix(mix: np.ndarray, rate: int, production: Production, excerpt: int) -> np.ndarray:
    """(samples, 2): the mix through the bus and the excerpt's codec (the mix itself when
    both are off); its level is set afterwards."""
    bus, quality = production.mix, None if production.codec is None else production.codec[excerpt]
    if bus is not None:
        mix = _bus(mix, rate, bus)
    if quality is not None:
        mix = codec_round_trip(mix, rate, quality)
    return mix


def _bus(mix: np.ndarray, rate: int, bus: Bus) -> np.ndarray:
    """The mix tilted, compressed, widened, then peak-normalised to 0 dBFS and limited so
    its peaks lie `bus.limit` dB under full scale."""
    if _peak_db(mix) < SILENT_DB:
        return mix
    import pedalboard

    threshold, ratio = bus.compressor
    compressor = pedalboard.Compressor(
        threshold_db=threshold + _peak_db(mix), ratio=ratio, attack_ms=10.0, release_ms=200.0
    )
    mix = played_through([*shelves(-bus.tilt, bus.tilt), compressor], mix, rate)
    mid, side = (mix[:, 0] + mix[:, 1]) / 2, (mix[:, 0] - mix[:, 1]) / 2 * bus.width
    mix = np.stack([mid + side, mid - side], axis=1)
    peak = np.abs(mix).max()
    if peak == 0:
        return mix
    return limited(mix / peak, rate, -bus.limit)


def limited(stereo: np.ndarray, rate: int, ceiling_db: float) -> np.ndarray:
    """(samples, 2) float32 with every sample peak at or under `ceiling_db` dBFS (a
    look-ahead brick-wall limiter, latency compensated, no make-up gain)."""
    import pedalboard

    limiter: pedalboard.Plugin = pedalboard.BrickwallLimiter(ceiling_db=ceiling_db)
    return played_through([limiter], stereo, rate)


def codec_round_trip(stereo: np.ndarray, rate: int, quality: float) -> np.ndarray:
    """(samples, 2) float32 after MP3 encoding and decoding at LAME VBR `quality` (0
    best, 10 worst): same sample count, encoder delay removed, same level."""
    import pedalboard

    peak = np.abs(stereo).max()
    if peak == 0:
        return stereo.astype(np.float32)
    encoder: pedalboard.Plugin = pedalboard.MP3Compressor(vbr_quality=quality)
    return played_through([encoder], stereo * (CODEC_PEAK / peak), rate) * (peak / CODEC_PEAK)


SILENT_DB = -120.0  # audio peaking under this is left as it is (nothing to produce)


def _peak_db(stereo: np.ndarray) -> float:
    """The audio's sample peak (dBFS; -200 for silence)."""
    return float(20 * np.log10(max(float(np.abs(stereo).max()), 1e-10)))
