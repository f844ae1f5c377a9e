"""Rendering speed: seconds of audio rendered per wall-clock second on one core.

notes:     NSynth notes (4 s, 48 kHz rendered, decimated to 16 kHz, wav written), with
           and without each preset's playable-range probe (88 keys x 0.5 s).
ensembles: IRMAS excerpts (44.1 kHz stereo, parts rendered apart and mixed, wav
           written), including score parsing, and the synthesis alone; with today's
           sources, with csound models, with per-part timbre variation, performance,
           production, and with all of them.
Run: python benchmarks/render_throughput.py  (one process; the machine's other load
counts, so run it on a quiet machine).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from instrec.synth import ensembles, models, notes
from instrec.synth.scores import DEFAULT_COMPOSERS
from instrec.synth.soundfonts import note_presets, resolve_soundfonts


def bench_notes(out: Path, n_presets: int = 12) -> None:
    presets = note_presets(resolve_soundfonts())
    picked = [presets[i] for i in np.linspace(0, len(presets) - 1, n_presets).astype(int)]
    for preset in picked:  # load samples (first use of a preset decodes/reads them)
        notes.render_note(preset, 60, 100)
    start = time.perf_counter()
    for preset in picked:
        notes.playable_pitches(preset)
    probe = time.perf_counter() - start
    tasks = [
        notes.NoteTask(p, i, f"bench_{i:03d}", "train", 12, (50, 100), out)
        for i, p in enumerate(picked)
    ]
    start = time.perf_counter()
    count = sum(len(notes._render_instrument(t).examples) for t in tasks)
    total = time.perf_counter() - start
    audio = count * notes.NOTE_SECONDS
    print(f"notes      {count} notes of {len(picked)} presets, {audio:.0f} s of audio")
    print(f"  with probing:    {audio / total:7.0f} audio s per wall s per core")
    print(f"  without probing: {audio / (total - probe):7.0f} audio s per wall s per core")


ENSEMBLE_CONFIGS: dict[str, dict[str, Any]] = {
    "default (soundfonts, no variation)": {},
    "+ csound models": {"sources_used": ("soundfonts", "models")},
    "+ timbre variation (all)": {"timbre_options": ("all",)},
    "+ models + timbre + csound GM bank": {
        "sources_used": ("soundfonts", "csound-gm", "models"),
        "timbre_options": ("all",),
    },
    "+ performance (all: comping and grooves too)": {"performance_options": ("all",)},
    "+ production (all)": {"production_options": ("all",)},
    "everything": {
        "sources_used": ("all",),
        "timbre_options": ("all",),
        "performance_options": ("all",),
        "production_options": ("all",),
    },
}


def bench_ensembles(out: Path, name: str, options: dict[str, Any], songs: int = 6) -> None:
    synthesis = 0.0

    def timed(function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal synthesis
            started = time.perf_counter()
            result = function(*args, **kwargs)
            synthesis += time.perf_counter() - started
            return result

        return wrapper

    fluid, csound = ensembles.Synth.render, models.render  # every synth, every csound run
    ensembles.Synth.render = timed(fluid)  # type: ignore[method-assign]
    models.render = timed(csound)
    start = time.perf_counter()
    try:
        ensembles.render_ensembles(
            out, train_songs=songs, test_songs=2, composers=DEFAULT_COMPOSERS, progress=False,
            **options,
        )  # fmt: skip
    finally:
        ensembles.Synth.render, models.render = fluid, csound  # type: ignore[method-assign]
    total = time.perf_counter() - start
    audio = sum(soundfile.info(p).frames for p in out.rglob("*.wav")) / 44_100
    print(f"ensembles  {name}: {songs + 2} songs, {audio:.0f} s of excerpts")
    print(
        f"  whole pipeline:  {audio / total:7.1f} audio s per wall s per core "
        "(parse, probe, render each part, level, mix, write)"
    )
    print(f"  synthesis share: {synthesis / total:7.0%} of the time (libfluidsynth + csound)")


def main() -> None:
    print(f"cores on this machine: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        bench_notes(Path(tmp))
    with tempfile.TemporaryDirectory() as tmp:  # music21's parse cache, soundfont samples
        ensembles.render_ensembles(Path(tmp) / "out", train_songs=6, test_songs=2, progress=False)
    print("ensembles  (after a warm-up render of the same songs, so no order effects)")
    for name, options in ENSEMBLE_CONFIGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            bench_ensembles(Path(tmp) / "out", name, options)


if __name__ == "__main__":
    main()
