"""`instrec export`: a model file to an fp32 ONNX graph, or an int8 one calibrated on audio."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from instrec.atomic import claim, refuse_inputs_as_output
from instrec.export.int8 import export_int8
from instrec.export.onnx_graph import export_onnx


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("model", type=Path, help="model file (.pt) written by training")
    parser.add_argument(
        "--onnx", type=Path, required=True, help="where to write the ONNX graph (.onnx)"
    )
    parser.add_argument(
        "--audio",
        type=Path,
        nargs="*",
        default=[],
        help="audio files to verify the export on; none: a synthetic chord",
    )
    parser.add_argument(
        "--int8",
        type=Path,
        nargs="+",
        metavar="AUDIO",
        help="write an int8 graph instead, calibrated on these audio files or folders (a "
        "few minutes of music like the music to tag); prints how far it moves file "
        "probabilities from fp32, measured on --audio (or on the calibration files)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --onnx file")


def run(args: argparse.Namespace) -> int:
    """Export with --onnx claimed first: a second export to the same file, or an
    unwritable place, fails before any work."""
    with claim(args.onnx):
        refuse_inputs_as_output(args.onnx, [args.model, *args.audio, *(args.int8 or [])])
        return _export(args)


def _export(args: argparse.Namespace) -> int:
    if args.int8:
        int8 = export_int8(args.model, args.onnx, args.int8, args.audio, args.overwrite)
        where = "held-out" if args.audio else "calibration (in-sample: pass --audio for held-out)"
        print(
            f"int8 against fp32 on {len(int8.measured_on)} {where} files: file probabilities "
            f"move {int8.mean_change:.4f} on average, {int8.max_change:.3f} at most; "
            f"{int8.flipped:.1%} of decisions flip ({int8.calibration_windows} calibration "
            "windows)",
            file=sys.stderr,
        )
        print(f"wrote {int8.path}")
        return 0
    report = export_onnx(args.model, args.onnx, args.audio, args.overwrite)
    for name, difference in report.differences.items():
        print(f"max |onnx - torch| logit, {name}: {difference:.2e}", file=sys.stderr)
    print(f"wrote {report.path}")
    return 0
