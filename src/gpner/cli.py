"""``gpner <verb>``: each verb parses its arguments and calls one importable function."""

from __future__ import annotations

import argparse
import logging
import sys


def _convert(args: argparse.Namespace) -> int:
    from gpner.formats import read, write

    reader_opts = {}
    if args.scheme_in:
        reader_opts["scheme"] = args.scheme_in
    if args.token_sep is not None:
        reader_opts["token_sep"] = args.token_sep
    corpus = read(args.input, args.format, strict=args.strict, **reader_opts)
    writer_opts = {"scheme": args.scheme} if args.scheme else {}
    write(corpus, args.output, args.to, **writer_opts)
    print(corpus.report.summary(), file=sys.stderr)
    print(f"wrote {len(corpus)} records to {args.output}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from gpner import __version__

    parser = argparse.ArgumentParser(prog="gpner", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gpner {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("convert", help="convert annotations between formats",
                         description="Read any supported format (detected unless --format) and "
                         "write another (from the output extension unless --to). Formats: jsonl, "
                         "cluener, cmeee, conll, brat, doccano, label-studio.")
    p.add_argument("input", help="input file, or a BRAT directory")
    p.add_argument("-o", "--output", required=True, help="output file or BRAT directory")
    p.add_argument("--format", help="input format (default: detected)")
    p.add_argument("--to", help="output format (default: from the output extension)")
    p.add_argument("--scheme", help="tag scheme for conll output: bio, iob1, bioes, bmes")
    p.add_argument("--scheme-in", help="tag scheme of a conll input (default: detected)")
    p.add_argument("--token-sep", help="string joining column-file tokens (default: '' for "
                   "CJK, ' ' otherwise)")
    p.add_argument("--strict", action="store_true", help="fail on the first malformed entity")
    p.set_defaults(func=_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING,
                        format="%(levelname)s %(message)s")
    from gpner.records import FormatError

    try:
        return args.func(args)
    except (FormatError, FileNotFoundError, ValueError) as exc:
        print(f"gpner {args.verb}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
