"""`instrec synth notes|ensembles|corpus`: the project's own data, rendered from real
sampled instruments (General MIDI soundfonts) and real scores (music21's corpus).

notes:     an NSynth-format dataset of isolated notes (instrec.synth.notes)
ensembles: an IRMAS-format dataset of multi-instrument excerpts (instrec.synth.ensembles),
           optionally with a cross-source test set played by held-out instrument families
corpus:    a pre-training corpus of rendered music, every part that sounds labelled per
           1 s clip over a wider class list (instrec.synth.corpus)
Instruments come from soundfonts and csound models (instrec.synth.sources); each part's
timbre can vary (instrec.synth.timbre). Every ingredient is an option with a name, off by
default, so an ablation can switch each one on.

Full scale: `instrec synth notes OUT --max-instruments 0 --pitches all --velocities
25,50,75,100,127 --workers N` renders every pitched preset of the installed soundfonts
(303 with the three Debian ones) at every playable key; `instrec synth ensembles OUT
--composers all --train-songs 1500 --test-songs 300` draws on every multi-part score.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from instrec.errors import InstrecError
from instrec.synth import corpus
from instrec.synth.ensembles import DEFAULT_TEST_SECONDS, render_ensembles
from instrec.synth.models import MODELS
from instrec.synth.notes import DEFAULT_SPLIT_FRACTIONS, DEFAULT_VELOCITIES, render_notes
from instrec.synth.performance import PERFORMANCE_OPTIONS
from instrec.synth.production import PRODUCTION_OPTIONS
from instrec.synth.scores import DEFAULT_COMPOSERS, MULTIPART_COMPOSERS
from instrec.synth.sources import DEFAULT_MODEL_VOICES, DEFAULT_SOURCES, SOURCE_KINDS
from instrec.synth.timbre import TIMBRE_OPTIONS

__all__ = ["add_arguments", "render_ensembles", "render_notes", "run"]


def _numbers(text: str, kind: type = int) -> list:
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Options of `instrec synth`; each says which kind it applies to."""
    parser.add_argument("kind", choices=("notes", "ensembles", "corpus"), help="what to render")
    parser.add_argument("out", type=Path, help="output folder (a partial render there resumes)")
    parser.add_argument(
        "--soundfonts",
        nargs="+",
        metavar="SF",
        help="soundfont files (.sf2/.sf3); default: the installed Debian GM "
        "soundfonts (FluidR3, MuseScore General, TimGM6mb)",
    )
    parser.add_argument(
        "--sources",
        default=",".join(DEFAULT_SOURCES),
        help=f"comma-separated instrument sources, notes and ensembles ({', '.join(SOURCE_KINDS)}, "
        "or all installed here): "
        "soundfonts = --soundfonts; csound-gm = csound's GM bank; musescore-lossless = the "
        "optional lossless MuseScore General; models = csound physical, FM and formant models",
    )
    parser.add_argument(
        "--models",
        default="all",
        help=f"csound models when --sources has models, comma-separated ({', '.join(MODELS)}) "
        "or all (those csound plays here)",
    )
    parser.add_argument(
        "--model-voices",
        type=int,
        default=DEFAULT_MODEL_VOICES,
        help="voices per csound model, each with its own drawn parameters (notes and ensembles)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same files")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    notes = parser.add_argument_group("notes")
    notes.add_argument(
        "--max-instruments",
        type=int,
        default=40,
        help="instruments (presets, model voices) to render, spread over the 11 families (0: all)",
    )
    notes.add_argument(
        "--pitches",
        default="12",
        help="N keys spread over each preset's playable range, 'all', or a "
        "comma-separated list of MIDI keys (21-108)",
    )
    notes.add_argument(
        "--velocities",
        type=_numbers,
        default=",".join(map(str, DEFAULT_VELOCITIES)),
        help="comma-separated MIDI velocities (NSynth: 25,50,75,100,127)",
    )
    notes.add_argument(
        "--split-fractions",
        type=lambda t: _numbers(t, float),
        default=",".join(map(str, DEFAULT_SPLIT_FRACTIONS)),
        help="train,valid,test shares of instruments (recording-disjoint)",
    )
    ensembles = parser.add_argument_group(
        "ensembles (--composers, --drums, --timbre: also corpus; --holdout-from: all three)"
    )
    ensembles.add_argument(
        "--train-songs",
        type=int,
        default=33,
        help="scores rendered as training songs (classes dealt in turn)",
    )
    ensembles.add_argument(
        "--test-songs",
        type=int,
        default=15,
        help="scores rendered as testing songs (never in training)",
    )
    ensembles.add_argument(
        "--train-excerpts", type=int, default=5, help="3 s excerpts per training song"
    )
    ensembles.add_argument("--test-excerpts", type=int, default=2, help="excerpts per testing song")
    ensembles.add_argument(
        "--test-seconds",
        type=lambda t: _numbers(t, float),
        default=",".join(map(str, DEFAULT_TEST_SECONDS)),
        help="min,max length of a testing excerpt in seconds",
    )
    ensembles.add_argument(
        "--composers",
        default=",".join(DEFAULT_COMPOSERS),
        help="music21 corpus composers, comma-separated, or 'all' "
        f"({','.join(MULTIPART_COMPOSERS)})",
    )
    ensembles.add_argument(
        "--background-db",
        type=float,
        default=10.0,
        help="how much quieter (dB) unlabelled parts are than leading ones",
    )
    ensembles.add_argument(
        "--drums", type=float, default=0.3, help="share of songs with a drum kit (0-1)"
    )
    ensembles.add_argument(
        "--timbre",
        default="none",
        help=f"per-part timbre variation, comma-separated ({', '.join(TIMBRE_OPTIONS)}), "
        "all or none",
    )
    ensembles.add_argument(
        "--performance",
        default="none",
        help="how parts are played, comma-separated "
        f"({', '.join(PERFORMANCE_OPTIONS)}), all or none (ensembles and corpus)",
    )
    ensembles.add_argument(
        "--production",
        default="none",
        help="what is done to parts and the mix, comma-separated "
        f"({', '.join(PRODUCTION_OPTIONS)}), all or none (ensembles and corpus)",
    )
    ensembles.add_argument(
        "--holdout-share",
        type=float,
        default=0.0,
        help="share of each class's recording/synthesis families held out of training and "
        "the in-source test (0: none); chosen over every installed source with --family-seed",
    )
    ensembles.add_argument(
        "--family-seed", type=int, default=0, help="seed of the held-out families"
    )
    ensembles.add_argument(
        "--holdout-from",
        type=Path,
        help="hold out the families held out by an earlier render (its families.json); "
        "notes and corpus then render no instrument of those families (also: no preset "
        "replaying their samples)",
    )
    ensembles.add_argument(
        "--cross-source-songs",
        type=int,
        default=0,
        help="test songs whose labelled parts play held-out families only, written to "
        "OUT/cross-source/ (scores taken from the far end of the seeded order)",
    )

    music = parser.add_argument_group("corpus")
    music.add_argument(
        "--renditions",
        type=int,
        default=corpus.DEFAULT_RENDITIONS,
        help="excerpts rendered, dealt over the scores in a seeded order (each score played "
        "by new instruments every time it comes round)",
    )
    music.add_argument(
        "--seconds",
        type=int,
        default=corpus.DEFAULT_SECONDS,
        help="length of a rendition: that many labelled 1 s clips",
    )
    music.add_argument(
        "--valid-share",
        type=float,
        default=corpus.DEFAULT_VALID_SHARE,
        help="share of the scores kept for validation",
    )
    music.add_argument(
        "--exclude-from",
        type=Path,
        nargs="+",
        help="'instrec synth ensembles' folders whose test and cross-source scores the "
        "corpus must not play",
    )


def _pitch_choice(text: str) -> int | list[int] | None:
    if text == "all":
        return None
    values = _numbers(text)
    return values[0] if len(values) == 1 and "," not in text else values


def run(args: argparse.Namespace) -> int:
    """Render, then print what was written."""
    common = {
        "soundfonts": args.soundfonts,
        "sources_used": args.sources.split(","),
        "model_names": None if args.models == "all" else args.models.split(","),
        "model_voices": args.model_voices,
        "holdout_from": args.holdout_from,
        "seed": args.seed,
        "workers": args.workers,
        "progress": not args.no_progress,
    }
    composers = MULTIPART_COMPOSERS if args.composers == "all" else args.composers.split(",")
    music = {  # what corpus and ensembles share
        "composers": composers,
        "timbre_options": args.timbre.split(","),
        "performance_options": args.performance.split(","),
        "production_options": args.production.split(","),
        "drums": args.drums,
    }
    if args.kind == "corpus":
        out = corpus.render_corpus(
            args.out,
            renditions=args.renditions,
            seconds=args.seconds,
            exclude_from=args.exclude_from,
            valid_share=args.valid_share,
            **music,
            **common,
        )
        manifest = corpus.MANIFEST
    elif args.kind == "notes":
        try:
            pitches = _pitch_choice(args.pitches)
        except argparse.ArgumentTypeError as error:
            raise InstrecError(f"--pitches: {error}") from None
        out = render_notes(
            args.out,
            max_instruments=args.max_instruments or None,
            pitches=pitches,
            velocities=args.velocities,
            split_fractions=args.split_fractions,
            **common,
        )
        manifest = "render-notes.json"
    else:
        if len(args.test_seconds) != 2:
            raise InstrecError(f"--test-seconds takes min,max (got {args.test_seconds})")
        out = render_ensembles(
            args.out,
            train_songs=args.train_songs,
            test_songs=args.test_songs,
            train_excerpts=args.train_excerpts,
            test_excerpts=args.test_excerpts,
            test_seconds=tuple(args.test_seconds),
            background_db=args.background_db,
            holdout_share=args.holdout_share,
            family_seed=args.family_seed,
            cross_source_songs=args.cross_source_songs,
            **music,
            **common,
        )
        manifest = "render-ensembles.json"
    summary = json.loads((out / manifest).read_text(encoding="utf-8"))["summary"]
    print(f"{args.kind} written to {out}")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0
