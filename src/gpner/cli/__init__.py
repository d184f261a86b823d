"""``gpner <verb>``: each verb is a module here with ``add_parser`` (its arguments) and ``run``
(a few lines over an importable function); this module puts them together and turns errors
into one line with their code."""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import import_module

VERBS = ("convert", "train", "distill", "tune", "evaluate", "predict", "calibrate", "select",
         "label-studio", "export", "serve", "render", "demo")


def build_parser() -> argparse.ArgumentParser:
    from gpner import __version__

    parser = argparse.ArgumentParser(prog="gpner", description="GlobalPointer span extraction: "
                                     "nested and flat NER (and relations), trained, evaluated, "
                                     "served and exported. `gpner VERB --help` for each verb.")
    parser.add_argument("--version", action="version", version=f"gpner {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an "
                        "error (by default a user error prints one line with its code)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    for verb in VERBS:
        import_module(f"gpner.cli.{verb.replace('-', '_')}").add_parser(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.INFO,
                        format="%(levelname)s %(message)s")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"gpner {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user; --debug shows the traceback
        if args.debug:
            raise
        print(f"gpner {args.verb}: {describe(exc)}", file=sys.stderr)
        return 3 if unexpected(exc) else 2


def describe(exc: BaseException) -> str:
    """The one line the CLI prints for an error."""
    import errno

    from gpner.errors import GpnerError

    if isinstance(exc, GpnerError):
        return f"error {exc} (see docs/errors.md, {exc.code})"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"error [E601] no space left on the device writing {exc.filename or 'a file'}; "
                "the files written before are intact (see docs/errors.md, E601)")
    if isinstance(exc, PermissionError):
        return f"error [E601] permission denied: {exc.filename} (see docs/errors.md, E601)"
    if unexpected(exc):
        return (f"unexpected error ({type(exc).__name__}: {exc}); this is a gpner bug or an "
                "input it does not check yet: rerun with --debug for the traceback and report it")
    return f"error: {exc}"


def unexpected(exc: BaseException) -> bool:
    """Not one of the errors gpner raises for bad input (those exit 2)."""
    from gpner.errors import GpnerError

    return not isinstance(exc, (GpnerError, ValueError, OSError, ImportError))
