"""`instrec <command>`: one entry point, each command's module imported only when used.

A command module provides `add_arguments(parser, command)` and `run(args) -> int`.
Importing lazily keeps `instrec predict` free of the training stack and `--help` fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import select
import sys
from collections.abc import Sequence

from instrec.errors import InstrecError

# errors about a path the user gave: input problems, reported like InstrecError
PATH_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a program stopped by SIGPIPE
TRAINING_COMMANDS = frozenset({"demo", "pretrain", "finetune", "reproduce"})

# command -> (module, one-line help), in the order a newcomer meets them
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "instrec.experiments.demo",
        "render, pre-train, fine-tune, evaluate: the whole pipeline, tiny",
    ),
    "synth": ("instrec.synth.render", "render notes, IRMAS-format music or a labelled corpus"),
    "prepare": ("instrec.data.prepare", "decode a dataset once into a fast clip store"),
    "models": ("instrec.model.zoo", "list the model variants with parameters and MACs"),
    "pretrain": ("instrec.train.command", "pre-train on isolated notes or on rendered music"),
    "finetune": ("instrec.train.command", "fine-tune on polyphonic music (sigmoid over classes)"),
    "evaluate": ("instrec.evaluate", "F1, LRAP, per-class scores and figures for a model"),
    "reproduce": (
        "instrec.experiments.reproduce",
        "run the paper's experiment grid and write its tables",
    ),
    "predict": ("instrec.predict", "name the instruments in audio files or folders"),
    "export": ("instrec.export.command", "export a model to ONNX, verified against PyTorch"),
}


def _top_level_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="instrec",
        description="Predominant instrument recognition in polyphonic music.",
        epilog=f"commands:\n{listing}\n\nRun 'instrec COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=COMMANDS, metavar="COMMAND", help="what to do")
    parser.add_argument("--version", action="version", version=_version())
    return parser


def _version() -> str:
    from importlib.metadata import version

    return f"instrec {version('instrec')}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; expected failures become one line, and a reader that stops early
    (`instrec models | head -1`) ends it quietly."""
    try:
        try:
            return _run_command(list(sys.argv[1:] if argv is None else argv))
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
    except BrokenPipeError:
        if not _stdout_reader_gone():  # another pipe (a worker, a subprocess): not ours to hide
            raise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # what is still buffered goes nowhere, quietly
        os.close(devnull)
        return EXIT_BROKEN_PIPE


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll flags that as an error)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll here, or stdout is not a file
        return False


def _run_command(argv: list[str]) -> int:
    """Parse the command line, run one command, and turn expected failures into one line."""
    top = _top_level_parser()
    if not argv or argv[0].startswith("-"):
        top.parse_args(argv or ["--help"])
        return 0
    command = top.parse_args(argv[:1]).command
    if command in TRAINING_COMMANDS:
        # OpenMP threads that spin while they wait fight the data-loader workers and any
        # other program for a small CPU: with one busy process beside it a fine-tuning
        # took 1.46x as long, on a quiet machine the same either way
        # (benchmarks/results/omp_wait_policy.txt). Set before torch loads; a value the
        # user chose is kept.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    module_name, help_ = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(
        prog=f"instrec {command}",
        description=help_,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    module.add_arguments(parser, command)
    args = parser.parse_args(argv[1:])
    args.command = command
    try:
        return int(module.run(args) or 0)
    except InstrecError as error:
        return _fail(command, str(error))
    except PATH_ERRORS as error:
        if error.filename is None:  # not about a path: a bug, shown with its traceback
            raise
        return _fail(command, _path_error_text(error))
    except KeyboardInterrupt:
        print(f"instrec {command}: interrupted", file=sys.stderr)
        return 130


def _fail(command: str, message: str) -> int:
    print(f"instrec {command}: error: {message}", file=sys.stderr)
    return 2


def _path_error_text(error: OSError) -> str:
    """'PATH: reason', or 'PATH -> PATH2: reason' for a failed rename or link."""
    paths = " -> ".join(os.fsdecode(name) for name in (error.filename, error.filename2) if name)
    return f"{paths}: {error.strerror or error}"


if __name__ == "__main__":
    sys.exit(main())
