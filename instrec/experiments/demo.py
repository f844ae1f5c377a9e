"""`instrec demo`: the whole paper in miniature, on data the project renders itself.

Renders a few hundred isolated notes, a few dozen ensembles and a small cross-source
benchmark, prepares the clip stores, pre-trains the tiny model on the notes, fine-tunes
it and a randomly initialised twin on the ensembles, evaluates both on the rendered test
files and across sources and prints Table II (random vs pre-trained). It is `instrec
reproduce --experiments table2,fig3 --preset tiny --seeds 1`: the same cells, cache and
report, so a rerun skips every finished step. About 5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import time

from instrec.experiments.report import table2
from instrec.experiments.reproduce import add_job_arguments, job_from_args, reproduce

EXPERIMENTS = "table2,fig3"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Options of `instrec demo`."""
    parser.add_argument(
        "--seeds", type=int, default=1, help="seeds per cell (3 gives mean ± std, 3x the time)"
    )
    add_job_arguments(parser, "runs/demo")


def run(args: argparse.Namespace) -> int:
    """Run the demo grid and print its table and where the report is."""
    started = time.perf_counter()
    job = job_from_args(args, EXPERIMENTS, "tiny", args.seeds)
    path, outcome, results = reproduce(job)
    minutes = (time.perf_counter() - started) / 60
    print()
    print(
        f"Table II in miniature: tiny models on rendered data, IRMAS-style test files "
        f"({args.threshold_from} threshold); not the paper's scale, see the caveat in the report"
    )
    print()
    print(table2(results["table2"]))
    print(
        f"{outcome.ran} steps ran, {outcome.cached} were cached, {len(outcome.failed)} "
        f"failed; {minutes:.1f} min"
    )
    print(f"report (tables, per-instrument F1 chart, the paper's numbers): {path}")
    return 1 if outcome.failed else 0
