"""The ``rlgen`` command line. It only parses arguments and calls rlgen's Python API.

One module per command group, each with ``register(subparsers)``: ``train`` (train, eval, envs), ``bench``,
``imitation`` (demos collect/info/mix, imitate) and ``gen`` (gen train/sample/eval); what they share is in
``common``, which imports none of them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rlgen.cli import bench, gen, imitation, train
from rlgen.cli.common import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlgen",
        description="rlgen: reinforcement learning on Gymnasium where generative models do real work "
        "(VIME exploration, GAIL imitation, the 2016 generative models).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (train, bench, imitation, gen):  # the order of `rlgen --help`
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # named by the command's own parser, whose usage shows what it takes
        command_parser(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    return run_command(args)


def command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the command ``args`` runs (the one that set its ``func``); ``parser`` if none did."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found = command_parser(sub, args)
                if found is not sub or sub.get_default("func") is getattr(args, "func", None):
                    return found
    return parser
