"""Class lists and the General MIDI maps that tie rendered instruments to them.

IRMAS codes are the task's output classes; NSynth families and sources are the
vocabulary of the isolated-note data; the GM tables say which soundfont program
plays which of them when we render our own data.
"""

from __future__ import annotations

IRMAS_CLASSES: tuple[str, ...] = (
    "cel", "cla", "flu", "gac", "gel", "org", "pia", "sax", "tru", "vio", "voi",
)  # fmt: skip
IRMAS_NAMES: dict[str, str] = {
    "cel": "cello",
    "cla": "clarinet",
    "flu": "flute",
    "gac": "acoustic guitar",
    "gel": "electric guitar",
    "org": "organ",
    "pia": "piano",
    "sax": "saxophone",
    "tru": "trumpet",
    "vio": "violin",
    "voi": "voice",
}
IRMAS_GENRES: tuple[str, ...] = ("cla", "cou_fol", "jaz_blu", "lat_sou", "pop_roc")

NSYNTH_FAMILIES: tuple[str, ...] = (
    "bass", "brass", "flute", "guitar", "keyboard", "mallet",
    "organ", "reed", "string", "synth_lead", "vocal",
)  # fmt: skip
NSYNTH_SOURCES: tuple[str, ...] = ("acoustic", "electronic", "synthetic")
NSYNTH_QUALITIES: tuple[str, ...] = (
    "bright", "dark", "distortion", "fast_decay", "long_release",
    "multiphonic", "nonlinear_env", "percussive", "reverb", "tempo-synced",
)  # fmt: skip


def _span(first: int, last: int, value: str) -> dict[int, str]:
    return {program: value for program in range(first, last + 1)}


# GM program (0-127) -> NSynth family. Programs absent here are not rendered as notes:
# unpitched percussion (47, 113, 115-119), the orchestra hit (55) and sound effects
# (96-103, 120-127).
GM_PROGRAM_FAMILY: dict[int, str] = {
    **_span(0, 7, "keyboard"),
    **_span(8, 15, "mallet"),
    **_span(16, 20, "organ"),
    **_span(21, 23, "reed"),  # accordion, harmonica, bandoneon: free reeds
    **_span(24, 31, "guitar"),
    **_span(32, 39, "bass"),
    **_span(40, 46, "string"),
    **_span(48, 51, "string"),
    **_span(52, 54, "vocal"),
    **_span(56, 63, "brass"),
    **_span(64, 71, "reed"),
    **_span(72, 79, "flute"),
    **_span(80, 95, "synth_lead"),
    **_span(104, 107, "guitar"),  # sitar, banjo, shamisen, koto: plucked strings
    108: "mallet",
    109: "reed",
    110: "string",
    111: "reed",
    112: "mallet",
    114: "mallet",
}

_SYNTHETIC = {38, 39, 50, 51, 54, 62, 63, *range(80, 96)}
_ELECTRONIC = {2, 4, 5, 16, 17, 18, *range(26, 32), *range(33, 38)}


def gm_program_source(program: int) -> str:
    """NSynth's instrument_source for a GM program: how the sound is produced."""
    if program in _SYNTHETIC:
        return "synthetic"
    if program in _ELECTRONIC:
        return "electronic"
    return "acoustic"


# IRMAS class -> GM programs that play it in rendered ensembles.
IRMAS_GM_PROGRAMS: dict[str, tuple[int, ...]] = {
    "cel": (42,),
    "cla": (71,),
    "flu": (73, 72),
    "gac": (24, 25),
    "gel": (26, 27, 29, 30),
    "org": (16, 17, 19),
    "pia": (0, 1, 2),
    "sax": (64, 65, 66, 67),
    "tru": (56, 59),
    "vio": (40, 110),
    "voi": (52, 53, 54),
}
# Unlabelled accompaniment programs (IRMAS leaves bass, drums and synths unannotated).
ACCOMPANIMENT_GM_PROGRAMS: dict[str, tuple[int, ...]] = {
    "bass": (32, 33, 34, 35),
    "pad": (88, 89, 90, 91, 94),
}
# Pads that most GM banks fill with choir samples ("Pad 4 (choir)", "Pad 7 (halo)"): never
# rendered as unlabelled accompaniment, which must not sound like a labelled voice.
CHOIR_PAD_GM_PROGRAMS: tuple[int, ...] = (91, 94)
GM_PERCUSSION_CHANNEL = 9  # channel 10 in 1-based MIDI numbering
GM_PERCUSSION_BANK = 128  # soundfont bank that holds drum kits


def irmas_index(code: str) -> int:
    """Position of an IRMAS code in the class order used everywhere."""
    try:
        return IRMAS_CLASSES.index(code)
    except ValueError:
        known = ", ".join(IRMAS_CLASSES)
        raise ValueError(f"unknown IRMAS class {code!r} (known: {known})") from None


# The music pre-training corpus (instrec synth corpus) labels every part that sounds, over
# a wider class list: IRMAS's eleven (played by the programs and models the rendered
# ensembles use, so pre-training learns the distinctions fine-tuning needs), the
# accompaniment IRMAS leaves unannotated (bass, pads, drum kits), and the other pitched
# General MIDI programs in groups that sound alike (NSynth's families where they are not
# IRMAS classes). Programs a corpus never plays: those that would blur a class (honky-tonk
# and electric pianos beside "pia" and csound's FM pianos, rock and reed organs, muted
# guitar and harmonics, the voice lead), unpitched percussion and sound effects.
CORPUS_GM_PROGRAMS: dict[str, tuple[int, ...]] = {
    "strings": (41, 43, 44, 45, 48, 49, 50, 51),  # viola, contrabass, tremolo, pizzicato, sections
    "plucked": (46, 104, 105, 106, 107),  # harp, sitar, banjo, shamisen, koto
    "brass": (57, 58, 60, 61, 62, 63),  # trombone, tuba, French horn, brass sections
    "reed": (21, 22, 23, 68, 69, 70, 109, 111),  # free reeds, oboe, cor anglais, bassoon, ...
    "pipe": (74, 75, 76, 77, 78, 79),  # recorder, pan flute, bottle, shakuhachi, whistle, ocarina
    "keyboard": (6, 7),  # harpsichord, clavinet
    "mallet": (8, 9, 10, 11, 12, 13, 14, 15, 108, 112, 114),  # celesta ... steel drums
    "synth_lead": (80, 81, 82, 83, 84, 86, 87),
}
CORPUS_DRUMS = "drums"  # a GM drum kit on channel 10
CORPUS_CLASSES: tuple[str, ...] = (
    *IRMAS_CLASSES,
    *ACCOMPANIMENT_GM_PROGRAMS,
    CORPUS_DRUMS,
    *CORPUS_GM_PROGRAMS,
)
