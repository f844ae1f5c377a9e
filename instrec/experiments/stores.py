"""The grid's data: NSynth and IRMAS as distributed, or notes and music rendered at a
preset's size, each prepared once into a clip store (a rerun finds them cached). The
music pre-training corpus is always rendered (there is no real one), and only when an
experiment needs it.

Rendered data comes with a cross-source benchmark (instrec.synth.benchmark): test songs
whose labelled instruments come from families that no training data plays. It is
rendered first, and its families.json keeps those families out of the notes, the music
and the corpus."""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from instrec.atomic import write_text_atomic
from instrec.data.store import ClipStore
from instrec.errors import InstrecError
from instrec.experiments.grid import Stores, say
from instrec.experiments.presets import Preset

BENCHMARK_FOLDER = "rendered-cross-source"  # in OUT/data/PRESET, beside its store


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
        make_corpus=functools.partial(rendered_corpus, data, preset, workers, ()),
    )


# in a folder rendered here: the preset's options it was rendered for, so that a rerun
# after the preset changed refuses the folder instead of training on what it no longer says
REQUEST = "reproduce-request.json"
# preset option -> the renderer manifest's name for it (folders rendered before REQUEST)
MANIFEST_NAMES = {
    "timbre_options": "timbre",
    "performance_options": "performance",
    "production_options": "production",
}


def _requested(requested: dict[str, Any]) -> dict[str, Any]:
    """The options a preset asks of a render, as recorded: JSON, named lists spelled out as
    the renderer records them (`all` becomes every name)."""
    from instrec.synth import performance, production, timbre

    parsers = {
        "timbre_options": timbre.parse_options,
        "performance_options": performance.parse_options,
        "production_options": production.parse_options,
    }
    spelled = {k: list(parsers[k](v)) if k in parsers else v for k, v in requested.items()}
    return dict(json.loads(json.dumps(spelled, sort_keys=True, default=str)))


def _rendered(folder: Path, manifest: str, requested: dict[str, Any]) -> bool:
    """Whether `folder` holds a finished render of the preset's `requested` options. A
    finished render of other options is refused, naming what differs: reusing it would
    train on data the preset no longer describes."""
    try:
        recorded = json.loads((folder / manifest).read_text())
        if recorded["summary"] is None:
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    wanted = _requested(requested)
    try:
        earlier = json.loads((folder / REQUEST).read_text())
    except (OSError, ValueError):  # rendered before requests were kept: its manifest's names
        options = recorded.get("options") or {}
        asked = wanted.keys() | MANIFEST_NAMES.keys()
        earlier = {
            k: options[MANIFEST_NAMES.get(k, k)]
            for k in asked
            if MANIFEST_NAMES.get(k, k) in options
        }
        wanted = {k: v for k, v in wanted.items() if k in earlier}

    def value(options: dict[str, Any], name: str) -> Any:
        return options.get(name, [] if name in MANIFEST_NAMES else None)  # named lists: none

    names = sorted(set(earlier) | set(wanted))
    differing = [k for k in names if value(earlier, k) != value(wanted, k)]
    if differing:
        what = "; ".join(
            f"{k}: {value(earlier, k)!r} there, {value(wanted, k)!r} now" for k in differing
        )
        raise InstrecError(
            f"{folder}: rendered with other options than the preset now asks ({what}); "
            "choose a new --out, or delete this folder and the stores prepared from it"
        )
    return True


def _keep_request(folder: Path, requested: dict[str, Any]) -> None:
    write_text_atomic(folder / REQUEST, json.dumps(_requested(requested), indent=1) + "\n")


def rendered_stores(data: Path, preset: Preset, workers: int) -> Stores:
    """Render the cross-source benchmark, then notes and ensembles without its held-out
    families, at the preset's size (once), then prepare the stores."""
    from instrec.synth.ensembles import render_ensembles
    from instrec.synth.notes import render_notes

    music_options = {"seed": 0, **preset.music}  # render_ensembles' default seed
    cross_source, families = _cross_source(
        data, workers, music_options["seed"], preset.cross_source_songs
    )
    notes, music = data / "rendered-notes", data / "rendered-music"
    if _rendered(notes, "render-notes.json", preset.notes):
        say(f"rendered notes {notes}: cached")
    else:
        say(f"render notes -> {notes}")
        render_notes(notes, workers=workers, holdout_from=families, **preset.notes)
        _keep_request(notes, preset.notes)
    if _rendered(music, "render-ensembles.json", music_options):
        say(f"rendered music {music}: cached")
    else:
        say(f"render ensembles -> {music}")
        render_ensembles(music, workers=workers, holdout_from=families, **music_options)
        _keep_request(music, music_options)
    return Stores(
        prepare_store("nsynth", notes, data / "notes", workers),
        prepare_store("irmas-train", music, data / "music-train", workers),
        prepare_store("irmas-test", music, data / "music-test", workers),
        make_corpus=functools.partial(
            rendered_corpus, data, preset, workers, (music, families.parent), families
        ),
        cross_source=cross_source,
    )


def _cross_source(data: Path, workers: int, seed: int, songs: int) -> tuple[Path, Path]:
    """Render the cross-source benchmark of `songs` songs (once; `seed`: the music's, so
    that no score is both) and prepare it; returns (its store, its families.json)."""
    from instrec.synth.benchmark import (
        BENCHMARK_CLASSES,
        cross_source_folder,
        families_file,
        render_cross_source,
    )

    rendered = data / BENCHMARK_FOLDER
    labels = rendered / "labels.csv"  # written once every song is rendered
    if labels.is_file() and families_file(rendered).is_file():
        say(f"rendered cross-source benchmark {rendered}: cached")
    else:
        say(f"render cross-source benchmark -> {rendered}")
        render_cross_source(rendered, seed=seed, workers=workers, songs=songs)
    store = prepare_store(
        "folder", cross_source_folder(rendered), data / "cross-source", workers,
        "--csv", str(labels), "--classes", BENCHMARK_CLASSES,
    )  # fmt: skip
    return store, families_file(rendered)


def rendered_corpus(
    data: Path,
    preset: Preset,
    workers: int,
    ensembles: Sequence[Path],
    holdout_from: Path | None = None,
) -> Path:
    """Render the music pre-training corpus at the preset's size (once; never a score of
    the rendered `ensembles`' test or cross-source songs, nor a family `holdout_from`'s
    families.json holds out), then prepare its store."""
    from instrec.data.corpus import MANIFEST
    from instrec.synth.corpus import render_corpus

    corpus = data / "rendered-corpus"
    if _rendered(corpus, MANIFEST, preset.corpus):
        say(f"rendered corpus {corpus}: cached")
    else:
        say(f"render corpus -> {corpus}")
        render_corpus(
            corpus,
            workers=workers,
            exclude_from=list(ensembles) or None,
            holdout_from=holdout_from,
            **preset.corpus,
        )
        _keep_request(corpus, preset.corpus)
    return prepare_store("corpus", corpus, data / "corpus", workers)
