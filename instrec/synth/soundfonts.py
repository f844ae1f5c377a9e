"""Which sampled instruments the installed General MIDI soundfonts hold.

An instrument is a (soundfont, bank, program) preset. The preset table is read from the
file's own header (RIFF `pdta` chunk, the same in .sf2 and MuseScore's .sf3), so listing
the ~900 presets of several soundfonts takes milliseconds and loads no audio.

Soundfonts share recordings (MuseScore General reuses FluidR3 samples; variation banks
reuse their program's samples), so each preset also gets a *recording key*: the sample
that plays its key 60, identified by original pitch and loop points, which survive the
sf2 -> sf3 (Ogg) recompression unchanged. Presets with the same key are one recording
family and must land in the same data split.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from instrec.errors import InstrecError
from instrec.labels import GM_PERCUSSION_BANK, GM_PROGRAM_FAMILY, gm_program_source

# Debian's packages, best first (fluid-soundfont-gm, musescore-general-soundfont-small,
# timgm6mb-soundfont); MuseScore_General.sf3 is an alternatives link to the Lite file.
DEFAULT_SOUNDFONTS: tuple[str, ...] = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
)
# Further GM soundfonts, used when asked for by name: csound's GM bank (Debian
# csound-soundfont; it mostly replays TimGM6mb's recordings) and the 478 MB lossless
# MuseScore General (musescore-general-soundfont-lossless: orchestral sections, another
# grand piano).
EXTRA_SOUNDFONTS: dict[str, tuple[str, str]] = {
    "csound-gm": ("/usr/share/sounds/sf2/sf_GMbank.sf2", "csound-soundfont"),
    "musescore-lossless": (
        "/usr/share/sounds/sf2/MuseScore_General.sf2",
        "musescore-general-soundfont-lossless (bash scripts/setup.sh --lossless)",
    ),
}
_KEY_RANGE, _INSTRUMENT, _SAMPLE_ID = 43, 41, 53  # SoundFont 2.04 generator numbers
_CENTRE_KEY = 60  # the key whose sample names a preset's recording

RecordingKey = tuple[int, int, int]  # (original MIDI pitch, loop start, loop end in frames)


@dataclass(frozen=True, order=True)
class Preset:
    """One playable instrument: a soundfont preset and what it plays."""

    soundfont: str  # absolute path of the .sf2/.sf3 file
    bank: int
    program: int  # GM program 0-127
    name: str  # the preset's name in the soundfont
    recording: RecordingKey | None  # sample playing key 60 (None: preset plays nothing)
    samples: frozenset[RecordingKey]  # every sample any of its zones plays

    @property
    def family(self) -> str | None:
        """NSynth family of its GM program; None for drums, effects and percussion."""
        if self.bank == GM_PERCUSSION_BANK:
            return None
        return GM_PROGRAM_FAMILY.get(self.program)

    @property
    def source(self) -> str:
        return gm_program_source(self.program)

    @property
    def label(self) -> str:
        return f"{Path(self.soundfont).name}:{self.bank:03d}:{self.program:03d} {self.name}"


def resolve_soundfonts(paths: Sequence[str | Path] | None = None) -> list[str]:
    """Absolute, de-duplicated soundfont paths; the installed defaults when `paths` is None.

    Links are resolved, so MuseScore_General.sf3 -> MuseScore_General_Lite.sf3 counts once.
    """
    if paths is None:
        found = [p for p in DEFAULT_SOUNDFONTS if Path(p).is_file()]
        if not found:
            raise InstrecError(
                "no soundfont installed (apt-get install fluid-soundfont-gm timgm6mb-soundfont "
                "musescore-general-soundfont-small)"
            )
        paths = found
    resolved: list[str] = []
    for path in paths:
        if not Path(path).is_file():
            raise InstrecError(f"{path}: no such soundfont file")
        real = str(Path(path).resolve())
        if real not in resolved:
            resolved.append(real)
    return resolved


def read_presets(path: str | Path) -> list[Preset]:
    """Every preset of a soundfont, with the samples it plays."""
    path = str(Path(path).resolve())
    try:
        with open(path, "rb") as handle:
            tables = _pdta_tables(handle)
        return _presets(path, tables)
    except (OSError, struct.error, KeyError, IndexError) as error:
        raise InstrecError(f"{path}: not a readable SoundFont ({error})") from None


def note_presets(soundfonts: Sequence[str]) -> list[Preset]:
    """Presets that play pitched notes of an NSynth family, duplicates dropped.

    Excluded: the percussion bank, GM sound effects and unpitched percussion programs
    (no family in GM_PROGRAM_FAMILY), presets with no samples, and a preset that plays
    exactly the samples of an earlier preset of the same soundfont (MuseScore's "Expr."
    banks are such copies).
    """
    kept: list[Preset] = []
    for soundfont in soundfonts:
        seen: set[frozenset[RecordingKey]] = set()
        for preset in sorted(read_presets(soundfont), key=lambda p: (p.bank, p.program)):
            if preset.family is None or not preset.samples or preset.samples in seen:
                continue
            seen.add(preset.samples)
            kept.append(preset)
    return kept


def recording_families(presets: Sequence[Preset]) -> dict[Preset, str]:
    """Each preset's recording family: presets linked, directly or through others, by
    any sample they share form one family, named "sf:" + the smallest member's label.

    Stricter than the key-60 recording (csound's GM bank shares some of TimGM6mb's
    samples without sharing its key 60 one); meant for the few presets that play one
    role (e.g. the clarinets), since across all of a GM bank shared layers chain
    unrelated instruments together.
    """
    parent = list(range(len(presets)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_user: dict[RecordingKey, int] = {}
    for index, preset in enumerate(presets):
        for sample in preset.samples:
            other = first_user.setdefault(sample, index)
            parent[root(index)] = root(other)
    members: dict[int, list[str]] = {}
    for index, preset in enumerate(presets):
        members.setdefault(root(index), []).append(preset.label)
    return {preset: f"sf:{min(members[root(i)])}" for i, preset in enumerate(presets)}


def _chunks(handle: BinaryIO, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(id, size, data offset) of each RIFF chunk up to `end`.

    RIFF pads odd-sized chunks to even length, but MuseScore's .sf3 writer does not: when
    the unpadded position already holds a chunk id, it is taken as is.
    """
    while handle.tell() + 8 <= end:
        chunk_id, size = struct.unpack("<4sI", handle.read(8))
        start = handle.tell()
        yield chunk_id, size, start
        handle.seek(start + size)
        if size & 1 and not handle.read(4).isalpha():
            handle.seek(start + size + 1)
        else:
            handle.seek(start + size)


def _pdta_tables(handle: BinaryIO) -> dict[str, bytes]:
    riff, size, form = struct.unpack("<4sI4s", handle.read(12))
    if riff != b"RIFF" or form != b"sfbk":
        raise KeyError("no RIFF sfbk header")
    for chunk_id, chunk_size, start in _chunks(handle, 8 + size):
        if chunk_id == b"LIST" and handle.read(4) == b"pdta":
            return {
                sub_id.decode("ascii"): handle.read(sub_size)
                for sub_id, sub_size, _ in _chunks(handle, start + chunk_size)
            }
    raise KeyError("no pdta chunk")


def _records(data: bytes, fmt: str) -> list[tuple]:
    size = struct.calcsize(fmt)
    return [struct.unpack_from(fmt, data, i) for i in range(0, len(data) - size + 1, size)]


def _text(raw: bytes) -> str:
    return raw.split(b"\0")[0].decode("latin-1").strip()


def _presets(path: str, tables: dict[str, bytes]) -> list[Preset]:
    phdr = _records(tables["phdr"], "<20sHHHIII")
    pbag, pgen = _records(tables["pbag"], "<HH"), _records(tables["pgen"], "<HH")
    inst = _records(tables["inst"], "<20sH")
    ibag, igen = _records(tables["ibag"], "<HH"), _records(tables["igen"], "<HH")
    shdr = _records(tables["shdr"], "<20sIIIIIBbHH")
    compressed = path.endswith(".sf3")  # sf3 loop points are already relative to the sample

    def recording(sample: int) -> RecordingKey:
        _, start, _, loop_start, loop_end, _, pitch, *_ = shdr[sample]
        offset = 0 if compressed else start
        return (pitch, loop_start - offset, loop_end - offset)

    def zones(instrument: int) -> Iterator[tuple[int, int, int]]:
        """(low key, high key, sample index) of an instrument's zones."""
        for bag in range(inst[instrument][1], inst[instrument + 1][1]):
            low, high, sample = 0, 127, None
            for oper, amount in igen[ibag[bag][0] : ibag[bag + 1][0]]:
                if oper == _KEY_RANGE:
                    low, high = amount & 0xFF, amount >> 8
                elif oper == _SAMPLE_ID:
                    sample = amount
            if sample is not None:
                yield low, high, sample

    presets = []
    for index in range(len(phdr) - 1):  # the last record is the terminal "EOP"
        name, program, bank, first_bag = phdr[index][:4]
        instruments = [
            amount
            for bag in range(first_bag, phdr[index + 1][3])
            for oper, amount in pgen[pbag[bag][0] : pbag[bag + 1][0]]
            if oper == _INSTRUMENT
        ]
        found = [zone for instrument in instruments for zone in zones(instrument)]
        centre = min(
            found,
            key=lambda z: (not z[0] <= _CENTRE_KEY <= z[1], abs((z[0] + z[1]) / 2 - _CENTRE_KEY)),
            default=None,
        )
        presets.append(
            Preset(
                soundfont=path,
                bank=bank,
                program=program,
                name=_text(name),
                recording=recording(centre[2]) if centre else None,
                samples=frozenset(recording(z[2]) for z in found),
            )
        )
    return presets
