"""`instrec pretrain` and `instrec finetune`: a config, a clip store and a run directory."""

from __future__ import annotations

import argparse

from instrec.train.config import builtin_names, load_config
from instrec.train.fit import finetune, pretrain


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    default = "pretrain" if command == "pretrain" else "finetune"
    parser.add_argument(
        "--config",
        default=default,
        help=f"a YAML config file or a built-in name ({', '.join(builtin_names())})",
    )
    parser.add_argument("--data", required=True, help="the clip store to train on")
    if command == "pretrain":
        parser.add_argument(
            "--init",
            default=None,
            help="start from this pre-trained model file (or run directory) instead of random "
            "weights, with a new head for --data's labels: notes, then music",
        )
    if command == "finetune":
        parser.add_argument(
            "--init",
            required=True,
            help="a pre-trained model file (or its run directory), a shipped model's name "
            "(see 'instrec models': adapts it to your classes), or 'scratch' for random "
            "weights (then the config's model section picks the architecture)",
        )
        parser.add_argument(
            "--fraction",
            type=float,
            default=None,
            help="train on this share of the training songs, drawn per class with the seed "
            "(same as --set data.fraction=F)",
        )
    parser.add_argument("--out", required=True, help="the run directory to create")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set trainer.epochs=2 (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=None, help="same as --set seed=N")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (same config and data)",
    )


def run(args: argparse.Namespace) -> int:
    overrides = list(args.set)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if getattr(args, "fraction", None) is not None:
        overrides.append(f"data.fraction={args.fraction}")
    config = load_config(args.config, overrides)
    if args.command == "pretrain":
        pretrain(config, args.data, args.out, resume=args.resume, init=args.init)
    else:
        finetune(config, args.data, args.init, args.out, resume=args.resume)
    return 0
