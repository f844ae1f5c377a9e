"""The cross-source benchmark: test songs played by instrument families no training uses.

80 songs (numbered 5001-5080, one excerpt each) whose labelled parts are played only by
*held-out families*: about a third of each class's recording or synthesis families over
every installed source (instrec.synth.sources.holdout, family seed 0), rendered plainly
(no timbre, performance or production), so that a training ingredient can only help by
teaching something that carries over, not by matching the test's own treatment. Even
songs choose the threshold (split `valid`), odd songs are scored (`test`); out/labels.csv
says so for the folder reader (`instrec prepare folder`).

Training data keeps off the held-out families with `holdout_from=families_file(out)`
(render_ensembles, render_notes, render_corpus), and the music corpus off the benchmark's
scores with `exclude_from=out`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from instrec.atomic import write_text_atomic
from instrec.synth.ensembles import SPLIT_FOLDERS, render_ensembles

BENCHMARK_OPTIONS: dict[str, Any] = {
    "sources_used": ("all",),
    "holdout_share": 0.34,
    "family_seed": 0,
    "train_songs": 0,
    "test_songs": 0,
    "test_excerpts": 1,
}
SONGS = 80  # cross-source songs (5001-5080): even ones pick thresholds, odd ones are scored
BENCHMARK_CLASSES = "cel,cla,flu,gac,gel,org,pia,sax,tru,vio,voi"  # what it is scored on
LABELS = "labels.csv"


def cross_source_folder(out: Path) -> Path:
    """The benchmark's wavs (and their .txt labels)."""
    return Path(out) / SPLIT_FOLDERS["cross-source"]


def families_file(out: Path) -> Path:
    """Every family's split: what training renders must hold out (`holdout_from`)."""
    return Path(out) / "families.json"


def render_cross_source(
    out: Path,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
    songs: int = SONGS,
    treatment: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Render the benchmark of `songs` songs into `out` (unless its songs.json says it is
    done; a partial render resumes), write out/labels.csv and return `out`. `treatment`:
    render_ensembles' timbre/performance/production options (default: none, the plain
    benchmark); the held-out families are the same whatever they are.

    `seed` must be the seed of the training music it is compared with: render_ensembles
    draws train and test songs from the front of a seeded score order and cross-source
    songs from its back, so only with the same seed do their scores never overlap.
    """
    out = Path(out)
    if not (out / "songs.json").exists():
        options = {**BENCHMARK_OPTIONS, "cross_source_songs": songs, **(treatment or {})}
        render_ensembles(out, seed=seed, workers=workers, progress=progress, **options)
    write_text_atomic(out / LABELS, _labels_table(cross_source_folder(out)))
    return out


def _labels_table(folder: Path) -> str:
    """labels.csv of the folder reader: each wav's codes (from its .txt), split by song
    parity (even: valid, odd: test), grouped by song number."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["path", "labels", "split", "group"])
    for wav in sorted(folder.glob("*.wav")):
        song = int(wav.name.split()[0])
        codes = wav.with_suffix(".txt").read_text(encoding="utf-8").split()
        split = "valid" if song % 2 == 0 else "test"
        writer.writerow([wav.name, ";".join(codes), split, str(song)])
    return text.getvalue()
