"""Multi-part scores from music21's bundled corpus, as plain note lists per part.

music21's own MIDI export can put every part on one channel as a piano, so we read the
notes ourselves and leave channels, programs and timing to the renderer. Times stay in
quarter notes here; the renderer picks a tempo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from instrec.errors import InstrecError

# Composers of music21's corpus with multi-part score files under MAX_SCORE_BYTES (music21 10).
MULTIPART_COMPOSERS: tuple[str, ...] = (
    "bach", "beethoven", "chopin", "cpebach", "handel", "haydn", "johnson_j_r", "joplin",
    "liliuokalani", "lusitano", "monteverdi", "mozart", "palestrina", "schumann_clara",
    "schumann_robert", "trecento", "verdi",
)  # fmt: skip
# The default: four-to-six-voice chorales and masses, which parse in ~0.5 s a work.
DEFAULT_COMPOSERS: tuple[str, ...] = ("bach", "palestrina")
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn")
MAX_SCORE_BYTES = 60_000  # larger files (whole quartets) take minutes to parse
MIN_PART_NOTES = 8  # a part with fewer notes is dropped (cues, empty staves)
DEFAULT_VELOCITY = 80  # MIDI velocity of a note without a dynamic


@dataclass(frozen=True)
class ScoreNote:
    onset: float  # quarter notes from the start of the work
    duration: float  # quarter notes
    pitch: int  # MIDI key
    velocity: int


@dataclass(frozen=True)
class Score:
    work: str  # corpus path, e.g. "bach/bwv66.6.mxl"
    parts: tuple[tuple[ScoreNote, ...], ...]  # highest part first

    @property
    def quarters(self) -> float:
        return max(n.onset + n.duration for part in self.parts for n in part)


def multipart_works(composers: Sequence[str] = DEFAULT_COMPOSERS) -> list[str]:
    """Corpus score files of these composers, composers taken in turn (so a short list
    spans them all). Parsing decides whether a work really has two parts or more."""
    from music21 import corpus

    files: dict[str, list[str]] = {composer: [] for composer in sorted(set(composers))}
    for path in corpus.corpora.CoreCorpus().getPaths(fileExtensions=SCORE_SUFFIXES):
        work = _corpus_relative(str(path))
        composer = work.split("/")[0]
        if composer in files and Path(path).stat().st_size <= MAX_SCORE_BYTES:
            files[composer].append(work)
    missing = [composer for composer, works in files.items() if not works]
    if missing:
        raise InstrecError(f"music21 corpus: no score files by {', '.join(missing)}")
    by_composer = [sorted(works) for works in files.values()]
    longest = max((len(w) for w in by_composer), default=0)
    return [w[i] for i in range(longest) for w in by_composer if i < len(w)]


def _corpus_relative(path: str) -> str:
    """'bach/bwv1.6.mxl' from the absolute path: a work name independent of the install."""
    parts = Path(path).parts
    return "/".join(parts[len(parts) - 1 - parts[::-1].index("corpus") + 1 :])


def read_score(work: str) -> Score:
    """Parse one corpus work into note lists, highest part first (by mean pitch)."""
    from music21 import corpus

    try:
        parsed = corpus.parse(work)
    except Exception as error:  # music21 raises many unrelated types for bad files
        raise InstrecError(f"music21 corpus {work}: cannot parse ({error})") from None
    parts = [p for p in (_part_notes(part) for part in parsed.parts) if len(p) >= MIN_PART_NOTES]
    if len(parts) < 2:
        raise InstrecError(f"music21 corpus {work}: fewer than two parts with notes")
    parts.sort(key=lambda notes: -sum(n.pitch for n in notes) / len(notes))
    return Score(work, tuple(parts))


def _part_notes(part: object) -> tuple[ScoreNote, ...]:
    """Every sounding pitch of a part, ties merged, grace notes dropped."""
    notes = []
    for element in part.stripTies().flatten().notes:  # type: ignore[attr-defined]
        duration = float(element.duration.quarterLength)
        if duration <= 0:
            continue
        velocity = element.volume.velocity if element.volume.velocity else DEFAULT_VELOCITY
        onset = float(element.offset)
        for pitch in element.pitches:
            if 0 <= pitch.midi <= 127:
                notes.append(ScoreNote(onset, duration, int(pitch.midi), int(velocity)))
    return tuple(sorted(notes, key=lambda n: (n.onset, n.pitch)))
