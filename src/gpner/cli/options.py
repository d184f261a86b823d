"""Options that several verbs share, and the argument types they parse with."""

from __future__ import annotations

import argparse


def decoding_options(p: argparse.ArgumentParser) -> None:
    """--flat/--nested and --threshold (read back with :func:`flat_choice`)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--flat", action="store_true", help="non-overlapping entities only")
    g.add_argument("--nested", action="store_true", help="all spans above the threshold")
    p.add_argument("--threshold", type=float, help="score threshold (default: the model's)")


def encoding_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoding", help="text encoding of the input files (default utf-8, a BOM "
                   "dropped), e.g. gbk, gb18030, big5, utf-16, latin-1")


def run_options(p: argparse.ArgumentParser, overrides_help: str) -> None:
    """What the verbs that train share: --no-progress, --encoding, and key=value settings."""
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    encoding_option(p)
    p.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)


def positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def flat_choice(args: argparse.Namespace) -> bool | None:
    return True if args.flat else (False if args.nested else None)
