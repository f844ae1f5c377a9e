"""Rendering speed: seconds of audio rendered per wall-clock second on one core.

notes:     NSynth notes (4 s, 48 kHz rendered, decimated to 16 kHz, wav written), with
           and without each preset's playable-range probe (88 keys x 0.5 s).
ensembles: IRMAS excerpts (44.1 kHz stereo, parts rendered apart and mixed, wav
           written), including score parsing, and the synthesis alone.
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

from instrec.data import ensembles, notes
from instrec.synth.scores import multipart_works
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


def bench_ensembles(out: Path, songs: int = 6) -> None:
    fonts = resolve_soundfonts()
    tasks = ensembles.plan_songs(
        out,
        multipart_works(),
        train_songs=songs,
        test_songs=2,
        train_excerpts=5,
        test_excerpts=2,
        drums=0.3,
        soundfonts=fonts,
        test_seconds=(5.0, 20.0),
        background_db=10.0,
        seed=0,
    )
    for task in tasks:
        task.paths[0].parent.mkdir(parents=True, exist_ok=True)
    synth = ensembles._synth()
    rendered = 0.0
    original = synth.render

    def counting(*args: Any, **kwargs: Any) -> np.ndarray:
        nonlocal rendered
        started = time.perf_counter()
        result = original(*args, **kwargs)
        rendered += time.perf_counter() - started
        return result

    synth.render = counting  # type: ignore[method-assign]
    start = time.perf_counter()
    for task in tasks:
        ensembles.render_song(task)
    total = time.perf_counter() - start
    audio = sum(soundfile.info(p).frames for p in out.rglob("*.wav")) / 44_100
    print(f"ensembles  {len(tasks)} songs, {audio:.0f} s of excerpts")
    print(
        f"  whole pipeline:  {audio / total:7.1f} audio s per wall s per core "
        "(parse, probe, render each part, level, mix, write)"
    )
    print(f"  synthesis share: {rendered / total:7.0%} of the time")


def main() -> None:
    print(f"cores on this machine: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        bench_notes(Path(tmp))
    with tempfile.TemporaryDirectory() as tmp:
        bench_ensembles(Path(tmp))


if __name__ == "__main__":
    main()
