"""csound driven from Python: an orchestra and a note list in, float audio out.

The `csound` program (Debian `csound`; the STK opcodes come with `csound-plugins`) runs
once per render on a generated .csd and writes raw float samples to a pipe, so no Python
binding is needed and any Python version works. A render takes ~0.05 s to start; a 4 s
part then takes another ~0.05 s. csound's own noise generators are seeded with constants,
so the same orchestra and notes always give the same samples (the STK opcodes' breath
noise is seeded from the clock: models keep it at zero and modulate breath with csound's
noise).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instrec.errors import InstrecError

CSOUND = "csound"
KSMPS = 20  # control period in samples: divides both 44.1 kHz and 48 kHz
_INSTALL = "apt-get install csound csound-plugins"
# Tables every orchestra may use: 1 a sine, 2 the rising half of a sigmoid (fof's grain
# envelope).
_TABLES = "f 1 0 65536 10 1\nf 2 0 1024 19 0.5 0.5 270 0.5\n"


@dataclass(frozen=True)
class CsoundNote:
    """One `i 1` statement: times in seconds from the start of the render."""

    onset: float
    duration: float
    key: int  # MIDI key (p4)
    velocity: int  # MIDI velocity 1-127 (p5)
    tune: float = 1.0  # frequency factor (p6): probed tuning correction times detune
    fields: tuple[float, ...] = ()  # further p-fields (p7 on), model-specific


def available() -> bool:
    """Whether the csound program is installed."""
    return shutil.which(CSOUND) is not None


def _score(notes: Sequence[CsoundNote], seconds: float) -> str:
    lines = [_TABLES]
    for note in notes:
        extra = "".join(f" {value:.6g}" for value in note.fields)
        lines.append(
            f"i 1 {note.onset:.6f} {note.duration:.6f} {note.key} {note.velocity} "
            f"{note.tune:.8f}{extra}\n"
        )
    lines.append(f"e {seconds:.6f}\n")
    return "".join(lines)


def render(
    orchestra: str, notes: Sequence[CsoundNote], n_samples: int, sample_rate: int
) -> np.ndarray:
    """Mono float32 audio, (n_samples,), of `notes` played by instrument 1 of `orchestra`.

    The orchestra holds instrument definitions only; the header (rate, control period,
    one channel, 0 dBFS = 1) and the tables are added here.
    """
    header = f"sr = {sample_rate}\nksmps = {KSMPS}\nnchnls = 1\n0dbfs = 1\n"
    csd = (
        "<CsoundSynthesizer>\n<CsInstruments>\n"
        f"{header}{orchestra}\n</CsInstruments>\n<CsScore>\n"
        f"{_score(notes, n_samples / sample_rate)}</CsScore>\n</CsoundSynthesizer>\n"
    )
    command = [CSOUND, "-d", "-m0", "--nodisplays", "--sample-accurate", "-h", "-f"]
    with tempfile.TemporaryDirectory(prefix="instrec-csound-") as folder:
        path = Path(folder) / "render.csd"
        path.write_text(csd, encoding="utf-8")
        try:
            done = subprocess.run(
                [*command, "-o", "stdout", str(path)], capture_output=True, check=False
            )
        except FileNotFoundError:
            raise InstrecError(f"{CSOUND}: not installed ({_INSTALL})") from None
    if done.returncode != 0:
        raise InstrecError(f"{CSOUND}: render failed ({_last_error(done.stderr)})")
    audio = np.frombuffer(done.stdout, dtype="<f4")[:n_samples]
    return np.pad(audio, (0, n_samples - audio.size)).astype(np.float32)


def _last_error(stderr: bytes) -> str:
    """The first line of csound's log that names an error, else its last line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", stderr.decode("utf-8", "replace"))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "unable" in line.lower()]
    return (errors or lines or ["no output"])[0]
