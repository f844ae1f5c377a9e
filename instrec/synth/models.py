"""Instruments synthesised by csound: physical models, FM and formant synthesis.

A *model* is one synthesis method for an instrument (a waveguide clarinet, a bowed string,
Chowning's FM brass ...); a *voice* is a model with its own parameters (breath, reed
stiffness, bow pressure and position, pluck position, body resonances, drawbars,
formants, vibrato) drawn from the model's ranges, so one model yields many instruments.
Models of one *family* implement the same method (csound's `wgclar` and the STK
`Clarinet` are both Cook's clarinet), and a family never straddles a data split.

What a model can stand for, honestly: clarinet, saxophone, flute and bowed strings are
real physical models (no room, no player's noises); the bowed string has no cello body,
so one family serves violin and cello. Acoustic guitar is a plucked string with two body
resonances, or STK's commuted mandolin; electric guitar a Karplus-Strong string with a
pickup comb, drive and tone. Organs are FM (Hammond-like) or additive drawbars, both fair.
Piano is only electric (FM Rhodes and Wurlitzer): no acoustic piano model here (csound's
`prepiano` needs per-register calibration). Trumpet is FM brass (Chowning), since the
waveguide and STK brass models only sound above C#5 here. Voice is FOF formant synthesis
of sung vowels (no words, no consonants).

Every voice's playable keys and tuning are probed before use: a key plays if a held note
sounds above -60 dBFS at its pitch within 60 cents at its attack and, while it still
sounds, a second later (bowed strings, flutes and the saxophone can flip to the octave);
the measured offset is corrected.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from instrec.errors import InstrecError
from instrec.synth.csound import CsoundNote, available, render

PROBE_NOTE, PROBE_STEP = 1.2, 1.3  # s: each probe note, and the time between onsets
# s after a probe onset that are measured: the attack, and later (if still sounding),
# where a bowed string or a flute may have flipped to its octave
PROBE_WINDOWS = ((0.15, 0.4), (0.85, 1.1))
PROBE_VELOCITY = 90
PITCH_FRAME = 0.08  # s: pitch is the median over such frames (vibrato averages out)
PLAYABLE_DB = -60.0
MAX_CENTS = 60.0  # a probe further off its pitch locked onto another mode: not playable

# Formants of sung vowels a, e, i, o, u by voice type (frequency Hz, level dB, bandwidth Hz),
# the classic table of csound's manual (after Dodge and Jerse).
FORMANTS: dict[str, tuple[tuple[tuple[float, float, float], ...], ...]] = {
    "soprano": (
        ((800, 0, 80), (1150, -6, 90), (2900, -32, 120), (3900, -20, 130), (4950, -50, 140)),
        ((350, 0, 60), (2000, -20, 100), (2800, -15, 120), (3600, -40, 150), (4950, -56, 200)),
        ((270, 0, 60), (2140, -12, 90), (2950, -26, 100), (3900, -26, 120), (4950, -44, 120)),
        ((450, 0, 70), (800, -11, 80), (2830, -22, 100), (3800, -22, 130), (4950, -50, 135)),
        ((325, 0, 50), (700, -16, 60), (2700, -35, 170), (3800, -40, 180), (4950, -60, 200)),
    ),
    "alto": (
        ((800, 0, 80), (1150, -4, 90), (2800, -20, 120), (3500, -36, 130), (4950, -60, 140)),
        ((400, 0, 60), (1600, -24, 80), (2700, -30, 120), (3300, -35, 150), (4950, -60, 200)),
        ((350, 0, 50), (1700, -20, 100), (2700, -30, 120), (3700, -36, 150), (4950, -60, 200)),
        ((450, 0, 70), (800, -9, 80), (2830, -16, 100), (3500, -28, 130), (4950, -55, 135)),
        ((325, 0, 50), (700, -12, 60), (2530, -30, 170), (3500, -40, 180), (4950, -64, 200)),
    ),
    "tenor": (
        ((650, 0, 80), (1080, -6, 90), (2650, -7, 120), (2900, -8, 130), (3250, -22, 140)),
        ((400, 0, 70), (1700, -14, 80), (2600, -12, 100), (3200, -14, 120), (3580, -20, 120)),
        ((290, 0, 40), (1870, -15, 90), (2800, -18, 100), (3250, -20, 120), (3540, -30, 120)),
        ((400, 0, 40), (800, -10, 80), (2600, -12, 100), (2800, -12, 120), (3000, -26, 120)),
        ((350, 0, 40), (600, -20, 60), (2700, -17, 100), (2900, -14, 120), (3300, -26, 120)),
    ),
    "bass": (
        ((600, 0, 60), (1040, -7, 70), (2250, -9, 110), (2450, -9, 120), (2750, -20, 130)),
        ((400, 0, 40), (1620, -12, 80), (2400, -9, 100), (2800, -12, 120), (3100, -18, 120)),
        ((250, 0, 60), (1750, -30, 90), (2600, -16, 100), (3050, -22, 120), (3340, -28, 120)),
        ((400, 0, 40), (750, -11, 80), (2400, -21, 100), (2600, -20, 120), (2900, -40, 120)),
        ((350, 0, 40), (600, -20, 80), (2400, -32, 100), (2675, -28, 120), (2950, -36, 120)),
    ),
}
VOICE_TYPES: tuple[str, ...] = tuple(FORMANTS)
VOICE_TYPE_KEYS: dict[str, tuple[int, int]] = {
    "soprano": (60, 84),
    "alto": (53, 77),
    "tenor": (48, 72),
    "bass": (40, 64),
}

# The opening of instrument 1: pitch (p4, tuned by p6), velocity (p5), a delayed vibrato
# on kfreq (1731.234 cents per unit of relative deviation: 1200 / ln 2), and the
# envelope kenv (attack, hold, release after the note ends).
_HEAD = """instr 1
ifreq = cpsmidinn(p4) * p6
iamp = p5 / 127
kvib linseg 0, 0.15, 0, 0.35, 1
kfreq = ifreq * (1 + {vib_depth} / 1731.234 * kvib * oscili:k(1, {vib_hz}, 1))
kenv linsegr 0, {attack}, 1, 1, 1, {release}, 0
kbreath = {pressure} * (1 + {noise} * randi:k(1, 1500))
"""
_TAIL = """out aout * a(kenv)
endin
"""
# STK controller values are 0-128; vibrato rate 128 = 12 Hz.
_STK_VIB = "{vib_hz} * 10.667"

_COMMON: dict[str, tuple[float, float]] = {
    "vib_hz": (4.5, 6.5),
    "vib_depth": (0.0, 15.0),  # cents
    "attack": (0.02, 0.1),
    "release": (0.05, 0.25),
    "pressure": (100.0, 100.0),  # STK breath (0-128); constant unless a model draws it
    "noise": (0.0, 0.0),  # breath noise, relative
}
_PLUCKED: dict[str, tuple[float, float]] = {
    "vib_depth": (0.0, 0.0),
    "attack": (0.001, 0.004),
    "release": (0.05, 0.2),
}


@dataclass(frozen=True)
class Model:
    """One synthesis method for an instrument, with the ranges its voices are drawn from."""

    name: str
    family: str  # synthesis method: all models of a family share a data split
    classes: tuple[str, ...]  # IRMAS classes it stands for
    nsynth_family: str
    body: str  # csound code setting `aout` (may use ifreq, kfreq, iamp, kenv, kbreath)
    ranges: tuple[tuple[str, float, float], ...]  # (parameter, low, high), drawn per voice
    keys: tuple[int, int] = (24, 108)  # the keys probed
    stk: bool = False  # uses an STK opcode (Debian csound-plugins)


@dataclass(frozen=True, order=True)
class ModelVoice:
    """A model with drawn parameters: one distinct instrument."""

    model: str
    index: int
    params: tuple[tuple[str, float], ...]

    @property
    def family(self) -> str:
        return f"csound:{MODELS[self.model].family}"

    @property
    def label(self) -> str:
        return f"csound:{self.model}#{self.index:03d}"

    @property
    def keys(self) -> tuple[int, int]:
        """Lowest and highest key this voice is probed over."""
        voice_type = dict(self.params).get("voice_type")
        if voice_type is not None:
            return VOICE_TYPE_KEYS[VOICE_TYPES[int(voice_type)]]
        return MODELS[self.model].keys


def _model(
    name: str,
    family: str,
    classes: tuple[str, ...],
    nsynth_family: str,
    body: str,
    ranges: dict[str, tuple[float, float]],
    keys: tuple[int, int] = (24, 108),
    stk: bool = False,
) -> Model:
    merged = {**_COMMON, **ranges}
    return Model(
        name,
        family,
        classes,
        nsynth_family,
        body,
        tuple((key, low, high) for key, (low, high) in sorted(merged.items())),
        keys,
        stk,
    )


_MODELS: tuple[Model, ...] = (
    _model(
        "clarinet-wg",
        "clarinet-waveguide",
        ("cla",),
        "reed",
        "aout wgclar iamp * 0.6, kfreq, {stiffness}, {attack}, 0.1, {breath}, {vib_hz}, "
        "{breath_vib}, 1, ifreq * 0.5\n",
        {"stiffness": (-0.4, -0.2), "breath": (0.03, 0.3), "breath_vib": (0.0, 0.08)},
        keys=(36, 96),
    ),
    _model(
        "clarinet-stk",
        "clarinet-waveguide",
        ("cla",),
        "reed",
        "aout STKClarinet ifreq, iamp, 2, {stiffness}, 4, 0, 11, " + _STK_VIB + ", "
        "1, {breath_vib}, 128, kbreath\n",
        {
            "stiffness": (40.0, 100.0),
            "pressure": (85.0, 120.0),
            "noise": (0.02, 0.12),
            "breath_vib": (0.0, 16.0),
            "vib_depth": (0.0, 0.0),
        },
        keys=(36, 96),
        stk=True,
    ),
    _model(
        "saxophone-stk",
        "saxofony",
        ("sax",),
        "reed",
        "aout STKSaxofony ifreq, iamp, 2, {stiffness}, 26, {aperture}, 4, 0, 11, {blow}, "
        "29, " + _STK_VIB + ", 1, {breath_vib}, 128, kbreath\n",
        {
            "stiffness": (45.0, 62.0),
            "aperture": (45.0, 60.0),
            "blow": (28.0, 40.0),
            "pressure": (100.0, 115.0),
            "noise": (0.07, 0.15),
            "breath_vib": (4.0, 16.0),
            "vib_depth": (0.0, 0.0),
        },
        keys=(36, 90),
        stk=True,
    ),
    _model(
        "flute-wg",
        "flute-waveguide",
        ("flu",),
        "flute",
        "aout wgflute iamp * 0.6, kfreq, {jet}, {attack}, 0.1, {breath}, {vib_hz}, "
        "{breath_vib}, 1, ifreq * 0.5\n",
        {"jet": (0.3, 0.4), "breath": (0.02, 0.15), "breath_vib": (0.02, 0.1)},
        keys=(48, 100),
    ),
    _model(
        "flute-stk",
        "flute-waveguide",
        ("flu",),
        "flute",
        "aout STKFlute ifreq, iamp, 2, {jet}, 4, 0, 11, " + _STK_VIB + ", 1, {breath_vib}, "
        "128, kbreath\n",
        {
            "jet": (65.0, 88.0),
            "pressure": (85.0, 105.0),
            "noise": (0.02, 0.15),
            "breath_vib": (0.0, 20.0),
            "vib_depth": (0.0, 0.0),
        },
        keys=(48, 100),
        stk=True,
    ),
    _model(
        "bowed-wg",
        "bowed-string",
        ("vio", "cel"),
        "string",
        "aout wgbow iamp * 0.6, kfreq, {bow_pressure}, {bow_position}, {vib_hz}, 0, 1, "
        "ifreq * 0.5\n",
        {"bow_pressure": (1.8, 3.4), "bow_position": (0.12, 0.2), "vib_depth": (5.0, 25.0)},
        keys=(33, 100),
    ),
    _model(
        "bowed-stk",
        "bowed-string",
        ("vio", "cel"),
        "string",
        "aout STKBowed ifreq, iamp, 2, {bow_pressure}, 4, {bow_position}, 11, "
        + _STK_VIB
        + ", 1, {vib_depth} * 0.15, 128, 110\n",
        {"bow_pressure": (30.0, 100.0), "bow_position": (22.0, 50.0), "vib_depth": (3.0, 14.0)},
        keys=(33, 100),
        stk=True,
    ),
    _model(
        "trumpet-fm",
        "fm-brass",
        ("tru",),
        "brass",
        "aout foscili iamp * 0.5, kfreq, 1, {ratio}, {index} * kenv, 1\n",
        {"index": (2.5, 7.0), "ratio": (0.998, 1.002), "attack": (0.03, 0.09)},
        keys=(48, 90),
    ),
    _model(
        "guitar-wg",
        "plucked-string-waveguide",
        ("gac",),
        "guitar",
        "apl wgpluck2 {pluck}, iamp * 0.6, ifreq, {pickup}, {reflect}\n"
        "aout = apl + {body} * (reson(apl, {body_hz}, 40, 1) + reson(apl, {body_hz} * 2.1, "
        "90, 1))\n",
        {
            **_PLUCKED,
            "pluck": (0.05, 0.4),
            "pickup": (0.05, 0.4),
            "reflect": (0.2, 0.6),
            "body": (0.3, 1.5),
            "body_hz": (90.0, 130.0),
        },
        keys=(36, 84),
    ),
    _model(
        "guitar-mandolin-stk",
        "commuted-mandolin",
        ("gac",),
        "guitar",
        "aout STKMandolin ifreq, iamp, 2, {body_size}, 4, {pluck}, 11, {sustain}, 1, "
        "{detune}, 128, {mic}\n",
        {
            **_PLUCKED,
            "body_size": (20.0, 110.0),
            "pluck": (10.0, 60.0),
            "sustain": (80.0, 120.0),
            "detune": (0.0, 20.0),
            "mic": (20.0, 100.0),
        },
        keys=(36, 84),
        stk=True,
    ),
    _model(
        "guitar-electric-ks",
        "karplus-strong",
        ("gel",),
        "guitar",
        "apl pluck iamp * 0.5, ifreq, ifreq, 0, 1\n"
        "adump delayr 0.05\natap deltap {pickup} / ifreq\ndelayw apl\n"
        "aout butterlp tanh((apl - atap) * {drive}) / tanh({drive}), {tone}\n",
        {**_PLUCKED, "pickup": (0.05, 0.3), "drive": (0.5, 12.0), "tone": (1800.0, 6000.0)},
        keys=(36, 88),
    ),
    _model(
        "organ-fm",
        "fm-organ",
        ("org",),
        "organ",
        "aout fmb3 iamp * 0.4, kfreq, {index}, {crossfade}, {leslie_depth}, {leslie_hz}, "
        "1, 1, 1, 1, 1\n",
        {
            "index": (0.5, 2.0),
            "crossfade": (0.5, 1.4),
            "leslie_depth": (0.01, 0.1),
            "leslie_hz": (0.8, 7.0),
            "vib_depth": (0.0, 0.0),
            "attack": (0.005, 0.03),
        },
        keys=(28, 100),
    ),
    _model(
        "organ-fm-stk",
        "fm-organ",
        ("org",),
        "organ",
        "aout STKBeeThree ifreq, iamp, 2, {index}, 4, {crossfade}, 11, {leslie_hz} * 10.667, "
        "1, {leslie_depth}, 128, 110\n",
        {
            "index": (5.0, 45.0),  # operator 4 feedback: more turns the tone to noise
            "crossfade": (20.0, 90.0),
            "leslie_depth": (0.0, 6.0),
            "leslie_hz": (0.8, 7.0),
            "vib_depth": (0.0, 0.0),
            "attack": (0.005, 0.03),
        },
        keys=(28, 100),
        stk=True,
    ),
    _model(
        "organ-additive",
        "additive-organ",
        ("org",),
        "organ",
        "aout = 0\n"
        + "".join(
            f"aout += (ifreq * {ratio} < sr * 0.45 ? {{bar{n}}} / 8 : 0) * "
            f"oscili:a(iamp * 0.1, kfreq * {ratio}, 1)\n"
            for n, ratio in enumerate((1, 2, 3, 4, 5, 6, 8))
        )
        + "aout = aout * (1 + {tremolo} * oscili:a(1, {leslie_hz}, 1)) + "
        "{click} * iamp * randi:a(1, 6000) * expseg:a(1, 0.005, 0.001, 1, 0.001)\n",
        {
            "bar0": (4.0, 8.0),  # 8': the fundamental (no 16' or 5 1/3' sub-octaves)
            **{f"bar{n}": (0.0, 8.0) for n in range(1, 7)},
            "tremolo": (0.0, 0.25),
            "leslie_hz": (0.8, 7.0),
            "click": (0.0, 0.3),
            "vib_depth": (0.0, 0.0),
            "attack": (0.005, 0.03),
        },
        keys=(28, 100),
    ),
    _model(
        "epiano-fm",
        "fm-electric-piano",
        ("pia",),
        "keyboard",
        "aout fmrhode iamp * 0.5, kfreq, {index}, {crossfade}, {tremolo}, {tremolo_hz}, "
        "1, 1, 1, 1, 1\n",
        {
            **_PLUCKED,
            "index": (0.5, 2.5),
            "crossfade": (1.0, 2.0),
            "tremolo": (0.0, 0.3),
            "tremolo_hz": (2.0, 7.0),
        },
        keys=(28, 100),
    ),
    _model(
        "epiano-rhodey-stk",
        "fm-electric-piano",
        ("pia",),
        "keyboard",
        "aout STKRhodey ifreq, iamp, 2, {index}, 4, {crossfade}, 11, {tremolo_hz} * 10.667, "
        "1, {tremolo}, 128, 100\n",
        {
            **_PLUCKED,
            "index": (30.0, 100.0),
            "crossfade": (30.0, 100.0),
            "tremolo": (0.0, 40.0),
            "tremolo_hz": (2.0, 7.0),
        },
        keys=(28, 100),
        stk=True,
    ),
    _model(
        "epiano-wurley-stk",
        "fm-electric-piano",
        ("pia",),
        "keyboard",
        "aout STKWurley ifreq, iamp, 2, {index}, 4, {crossfade}, 11, {tremolo_hz} * 10.667, "
        "1, {tremolo}, 128, 100\n",
        {
            **_PLUCKED,
            "index": (30.0, 100.0),
            "crossfade": (30.0, 100.0),
            "tremolo": (0.0, 40.0),
            "tremolo_hz": (2.0, 7.0),
        },
        keys=(28, 100),
        stk=True,
    ),
    _model(
        "voice-fof",
        "fof-voice",
        ("voi",),
        "vocal",
        "aout = 0\n"
        + "".join(
            f"aout += fof(ampdb(p{8 + 3 * n}), kfreq, p{7 + 3 * n} * {{shift}}, 0, "
            f"p{9 + 3 * n}, 0.003, 0.02, 0.007, 100, 1, 2, p3 + {{release}} + 0.1)\n"
            for n in range(5)
        )
        + "aout = aout * iamp * 0.1 + {breath} * iamp * butterbp(rand:a(1), p7 * {shift}, "
        "300)\n",
        {
            "voice_type": (0.0, 3.999),
            "shift": (0.92, 1.1),
            "vib_depth": (15.0, 60.0),
            "breath": (0.0, 0.05),
            "attack": (0.04, 0.15),
            "release": (0.08, 0.3),
            "vowels": (1.0, 31.999),  # a set of the five vowels, as bits
        },
    ),
)
MODELS: dict[str, Model] = {model.name: model for model in _MODELS}


def model_names(stk: bool | None = None) -> list[str]:
    """Names of the models; `stk=False` leaves out those that need the STK opcodes."""
    return [m.name for m in _MODELS if stk is None or stk or not m.stk]


@functools.cache
def stk_available() -> bool:
    """Whether csound is installed with the STK opcodes (Debian csound-plugins)."""
    if not available():
        return False
    try:
        render(
            "instr 1\naout STKPlucked 440, 1\nout aout\nendin\n",
            [CsoundNote(0.0, 0.01, 69, 100)],
            64,
            44_100,
        )
    except InstrecError:  # the plugin missing fails the render like any unknown opcode
        return False
    return True


def voice(model: str, index: int) -> ModelVoice:
    """Voice `index` of `model`: its parameters depend on the two alone (seeded)."""
    rng = np.random.default_rng([zlib.crc32(model.encode()), index])
    params = tuple(
        (name, float(round(rng.uniform(low, high), 6))) for name, low, high in MODELS[model].ranges
    )
    return ModelVoice(model, index, params)


def voices(models: Iterable[str], per_model: int) -> list[ModelVoice]:
    """The first `per_model` voices of each model."""
    return [voice(model, index) for model in models for index in range(per_model)]


def orchestra(voice: ModelVoice, overrides: dict[str, float] | None = None) -> str:
    """csound instrument 1 playing `voice`; `overrides` replace some of its parameters."""
    params = {**dict(voice.params), **(overrides or {})}
    model = MODELS[voice.model]
    return (_HEAD + model.body + _TAIL).format(**{k: f"{v:.6g}" for k, v in params.items()})


def note_fields(voice: ModelVoice, key: int, number: int) -> tuple[float, ...]:
    """Extra p-fields of a note: the sung vowel's formants for the FOF voice (vowel
    chosen among the voice's vowels by key and note number), nothing for other models."""
    params = dict(voice.params)
    if "voice_type" not in params:
        return ()
    allowed = [v for v in range(5) if int(params["vowels"]) >> v & 1] or [0]
    vowel = allowed[(key + number) % len(allowed)]
    table = FORMANTS[VOICE_TYPES[int(params["voice_type"])]][vowel]
    return tuple(float(value) for formant in table for value in formant)


def render_notes(
    voice: ModelVoice,
    notes: Sequence[CsoundNote],
    n_samples: int,
    sample_rate: int,
    overrides: dict[str, float] | None = None,
) -> np.ndarray:
    """Mono float32 audio of `notes` played by `voice` (the notes' fields filled in)."""
    filled = [
        CsoundNote(
            n.onset, n.duration, n.key, n.velocity, n.tune, note_fields(voice, n.key, number)
        )
        for number, n in enumerate(notes)
    ]
    return render(orchestra(voice, overrides), filled, n_samples, sample_rate)


def f0(segment: np.ndarray, sample_rate: int, lowest: float = 25.0) -> float:
    """Fundamental frequency (Hz) by YIN (cumulative mean normalised difference, threshold
    0.15, parabolic refinement); 0.0 when the segment has no clear period."""
    x = segment.astype(np.float64)
    width = x.size // 2
    max_lag = min(width, int(sample_rate / lowest))
    if max_lag < 4:
        return 0.0
    size = 1 << int(np.ceil(np.log2(x.size + width)))
    spectrum = np.fft.rfft(x, size) * np.conj(np.fft.rfft(x[:width], size))
    correlation = np.fft.irfft(spectrum, size)[:max_lag]  # sum x[j] x[j + lag], j < width
    energy = np.concatenate([[0.0], np.cumsum(x**2)])
    shifted = energy[np.arange(max_lag) + width] - energy[np.arange(max_lag)]
    difference = energy[width] + shifted - 2 * correlation
    normalised = np.ones(max_lag)
    running = np.cumsum(difference[1:])
    normalised[1:] = difference[1:] * np.arange(1, max_lag) / np.maximum(running, 1e-20)
    below = np.flatnonzero(normalised[2:] < 0.15)
    if below.size == 0:
        return 0.0
    lag = int(below[0]) + 2
    while lag + 1 < max_lag and normalised[lag + 1] < normalised[lag]:
        lag += 1
    if lag + 1 >= max_lag:
        return 0.0
    a, b, c = normalised[lag - 1], normalised[lag], normalised[lag + 1]
    bend = a - 2 * b + c
    return sample_rate / (lag + (0.5 * (a - c) / bend if bend else 0.0))


def probe(voice: ModelVoice, keys: Sequence[int], sample_rate: int) -> dict[int, float | None]:
    """Tuning factor per key (multiply the key's frequency by it), None where the voice
    does not play the key: silent, no clear pitch, or more than MAX_CENTS off."""
    notes = [
        CsoundNote(i * PROBE_STEP, PROBE_NOTE, key, PROBE_VELOCITY) for i, key in enumerate(keys)
    ]
    audio = render_notes(
        voice, notes, round((len(keys) * PROBE_STEP + 0.1) * sample_rate), sample_rate
    )
    tunings: dict[int, float | None] = {}
    for i, key in enumerate(keys):
        start = round(i * PROBE_STEP * sample_rate)
        offsets = pitch_offsets(audio[start:], key, sample_rate, PROBE_WINDOWS)
        tunings[key] = None if offsets is None else float(2 ** (-np.mean(offsets) / 1200))
    return tunings


def pitch_offsets(
    audio: np.ndarray, key: int, sample_rate: int, windows: Sequence[tuple[float, float]]
) -> list[float] | None:
    """Cents off the key in each window (s from the start of `audio`), or None if the note
    is not at its pitch: the first window silent, unpitched or more than MAX_CENTS off, or
    a later one that still sounds off (a note may decay to silence, not change pitch)."""
    offsets = []
    for number, (start, stop) in enumerate(windows):
        segment = audio[round(start * sample_rate) : round(stop * sample_rate)]
        if number and _level_db(segment) <= PLAYABLE_DB:
            continue
        cents = cents_off(segment, key, sample_rate)
        if cents is None or abs(cents) > MAX_CENTS:
            return None
        offsets.append(cents)
    return offsets


def _level_db(segment: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(segment.astype(np.float64) ** 2) + 1e-30))


def cents_off(segment: np.ndarray, key: int, sample_rate: int) -> float | None:
    """How far (cents) the segment's pitch is from the key's; None if it is silent (under
    PLAYABLE_DB) or no clear pitch in most of its frames."""
    if _level_db(segment) <= PLAYABLE_DB:
        return None
    size, hop = round(PITCH_FRAME * sample_rate), round(PITCH_FRAME * sample_rate / 2)
    frames = [segment[i : i + size] for i in range(0, segment.size - size + 1, hop)]
    found = [f for f in (f0(frame, sample_rate) for frame in frames) if f > 0]
    if len(found) * 2 < len(frames) or not found:
        return None
    return float(1200 * np.log2(np.median(found) / (440.0 * 2 ** ((key - 69) / 12))))
