"""The grid's data: NSynth and IRMAS as distributed, or notes and music rendered at a
preset's size, each prepared once into a clip store (a rerun finds them cached). The
music pre-training corpus is always rendered (there is no real one), and only when an
experiment needs it."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from instrec.data.store import ClipStore
from instrec.errors import InstrecError
from instrec.experiments.grid import Stores, say
from instrec.experiments.presets import Preset


def _store_ready(path: Path) -> bool:
    try:
        ClipStore.open(path)
    except InstrecError:
        return False
    return True


def prepare_store(dataset: str, root: Path, out: Path, workers: int, *extra: str) -> Path:
    """`instrec prepare DATASET ROOT --out OUT`, skipped when OUT already holds a store."""
    if _store_ready(out):
        say(f"store {out}: cached")
        return out
    from instrec.data import prepare

    say(f"prepare {dataset} from {root} -> {out}")
    parser = argparse.ArgumentParser()
    prepare.add_arguments(parser, "prepare")
    args = parser.parse_args(
        [dataset, str(root), "--out", str(out), "--workers", str(workers), "--force", *extra]
    )
    prepare.run(args)
    return out


def describe_store(path: Path) -> str:
    """`PATH (N items: train a, valid b, test c)`: how much data a number rests on."""
    store = ClipStore.open(path)
    splits = ", ".join(f"{split} {n}" for split, n in store.header["splits"].items())
    return f"`{path}` ({len(store)} {store.kind} items: {splits})"


def _limit(preset: Preset, dataset: str) -> list[str]:
    limit = preset.limits[dataset]
    return [] if limit is None else ["--limit", str(limit)]


def real_stores(nsynth: Path, irmas: Path, data: Path, preset: Preset, workers: int) -> Stores:
    """Stores from NSynth and IRMAS as distributed (capped by the preset's limits)."""
    return Stores(
        prepare_store("nsynth", nsynth, data / "nsynth", workers, *_limit(preset, "nsynth")),
        prepare_store(
            "irmas-train", irmas, data / "irmas-train", workers, *_limit(preset, "irmas-train")
        ),
        prepare_store(
            "irmas-test", irmas, data / "irmas-test", workers, *_limit(preset, "irmas-test")
        ),
        make_corpus=functools.partial(rendered_corpus, data, preset, workers, None),
    )


def _rendered(folder: Path, manifest: str) -> bool:
    try:
        return json.loads((folder / manifest).read_text())["summary"] is not None
    except (OSError, ValueError, KeyError, TypeError):
        return False


def rendered_stores(data: Path, preset: Preset, workers: int) -> Stores:
    """Render notes and ensembles at the preset's size (once), then prepare the stores."""
    from instrec.synth.ensembles import render_ensembles
    from instrec.synth.notes import render_notes

    notes, music = data / "rendered-notes", data / "rendered-music"
    if _rendered(notes, "render-notes.json"):
        say(f"rendered notes {notes}: cached")
    else:
        say(f"render notes -> {notes}")
        render_notes(notes, workers=workers, **preset.notes)
    if _rendered(music, "render-ensembles.json"):
        say(f"rendered music {music}: cached")
    else:
        say(f"render ensembles -> {music}")
        render_ensembles(music, workers=workers, **preset.music)
    return Stores(
        prepare_store("nsynth", notes, data / "notes", workers),
        prepare_store("irmas-train", music, data / "music-train", workers),
        prepare_store("irmas-test", music, data / "music-test", workers),
        make_corpus=functools.partial(rendered_corpus, data, preset, workers, music),
    )


def rendered_corpus(data: Path, preset: Preset, workers: int, ensembles: Path | None) -> Path:
    """Render the music pre-training corpus at the preset's size (once; never a score of
    the rendered `ensembles`' test songs), then prepare its store."""
    from instrec.data.corpus import MANIFEST
    from instrec.synth.corpus import render_corpus

    corpus = data / "rendered-corpus"
    if _rendered(corpus, MANIFEST):
        say(f"rendered corpus {corpus}: cached")
    else:
        say(f"render corpus -> {corpus}")
        render_corpus(corpus, workers=workers, exclude_from=ensembles, **preset.corpus)
    return prepare_store("corpus", corpus, data / "corpus", workers)
