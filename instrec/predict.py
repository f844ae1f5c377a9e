"""`instrec predict`: audio files or folders -> the instruments that lead them.

The command over instrec.tagging (whisper's transcribe CLI to its model): arguments,
progress, skipped-file messages, and where the report and timelines go.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from instrec.atomic import (
    atomic_path,
    check_writable,
    claim,
    refuse_inputs_as_output,
    refuse_to_overwrite,
    write_text_atomic,
    writing,
)
from instrec.errors import InstrecError
from instrec.tagging.formats import format_csv, format_json, format_table, timeline_csv
from instrec.tagging.tagger import Prediction, Tagger, find_audio, load_model

SKIPPED_EXIT_CODE = 3  # `instrec predict` exit status when some input was skipped


MODEL_SUFFIXES = (".pt", ".onnx")


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(
        "paths",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="audio files or folders (recursive); a first PATH that is a .pt or .onnx model "
        "file is taken as --model, as in earlier versions",
    )
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help="a shipped model's name (see 'instrec models') or a model file (.pt from "
        "training, .onnx from export); None: the default shipped model",
    )
    parser.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="output format"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="probability an instrument needs; None: the one saved with the model",
    )
    parser.add_argument(
        "--top-k", type=int, default=None, help="report at most this many instruments per file"
    )
    parser.add_argument(
        "--timeline",
        type=Path,
        default=None,
        metavar="DIR",
        help="write per-window probabilities (CSV) and an activity plot (PNG) per file here",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="write the report to this file, not stdout"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing --output / --timeline files"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads; None: what the library chooses"
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="run the network once over each file and pool every window from those frames "
        "(about 2x faster for wide receptive fields; window edges then see the neighbouring "
        "audio instead of evaluation's zero padding, which moves probabilities a little: "
        "see docs/prediction.md)",
    )


def run(args: argparse.Namespace) -> int:
    """Tag every input and write the report; the outputs are claimed and checked first,
    so a clash or an unwritable place fails before any tagging."""
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise InstrecError(f"--threshold must be within 0..1, got {args.threshold}")
    for option, value in (("--top-k", args.top_k), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise InstrecError(f"{option} must be at least 1, got {value}")
    _model_from_paths(args)
    with contextlib.ExitStack() as claims:
        if args.output is not None:
            claims.enter_context(claim(args.output))
            refuse_to_overwrite(args.output, args.overwrite)
            models = [] if args.model is None else [Path(args.model)]
            refuse_inputs_as_output(args.output, [*models, *args.paths])
        if args.timeline is not None:
            claims.enter_context(claim(args.timeline))
            check_writable(args.timeline)
        return _tag(args)


def _model_from_paths(args: argparse.Namespace) -> None:
    """`instrec predict MODEL PATH...` (the earlier form): a first path that is a model
    file, followed by more paths, is the model."""
    first = args.paths[0]
    named = first.suffix.lower() in MODEL_SUFFIXES and first.is_file()
    if args.model is None and len(args.paths) > 1 and named:
        args.model, args.paths = first, args.paths[1:]


def _tag(args: argparse.Namespace) -> int:
    tagger = load_model(args.model, args.threads, args.fast)
    threshold = tagger.threshold if args.threshold is None else args.threshold
    plots = _timeline_paths(args.paths, args.timeline, args.overwrite) if args.timeline else {}
    predictions = []
    for p in _progress(tagger.predict_files(args.paths, threshold, args.top_k)):
        predictions.append(p)
        if p.error is not None:
            print(f"instrec predict: skipped {p.path}: {p.error}", file=sys.stderr)
        elif p.padded:
            print(
                f"instrec predict: {p.path}: {p.duration_s} s long, padded to 1 s", file=sys.stderr
            )
        if p.error is None and args.timeline:
            _write_timeline(p, tagger, threshold, plots[p.path])
    if args.format == "json":
        text = format_json(predictions, timeline=args.timeline is not None)
    elif args.format == "csv":
        text = format_csv(predictions, tagger.classes)
    else:
        text = format_table(predictions, threshold)
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(args.output, text)
    skipped = sum(p.error is not None for p in predictions)
    if skipped:
        print(f"instrec predict: skipped {skipped} of {len(predictions)} inputs", file=sys.stderr)
        return SKIPPED_EXIT_CODE
    return 0


def _progress(predictions: Iterator[Prediction]) -> Iterator[Prediction]:
    from tqdm import tqdm

    return iter(tqdm(predictions, desc="tagging", unit="file", disable=None, leave=False))


def _timeline_paths(
    paths: Sequence[Path], folder: Path, overwrite: bool
) -> dict[str, tuple[Path, Path]]:
    """A distinct (DIR/<stem>.csv, DIR/<stem>.png) per audio file (song, song-2, ...);
    refuses to overwrite."""
    stems: dict[str, tuple[Path, Path]] = {}
    taken: set[str] = set()
    for path, problem in find_audio(paths):
        if problem is not None:
            continue
        stem, n = path.stem, 1
        while stem in taken:
            n += 1
            stem = f"{path.stem}-{n}"
        taken.add(stem)
        stems[str(path)] = (folder / f"{stem}.csv", folder / f"{stem}.png")
        for existing in stems[str(path)]:
            refuse_to_overwrite(existing, overwrite)
    return stems


def _write_timeline(
    prediction: Prediction, tagger: Tagger, threshold: float, paths: tuple[Path, Path]
) -> None:
    from instrec.tagging.timeline import timeline_figure  # matplotlib: only when asked for

    table, plot = paths
    write_text_atomic(table, timeline_csv(prediction, tagger.classes))
    figure = timeline_figure(prediction, tagger.classes, threshold)
    with writing(plot), atomic_path(plot) as temp:
        figure.savefig(temp, format="png", dpi=120, bbox_inches="tight")
