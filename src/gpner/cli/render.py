"""``gpner render``: data or predictions drawn as a standalone HTML page."""

from __future__ import annotations

import argparse
import sys

from gpner.cli.options import decoding_options, encoding_option, flat_choice, positive


def add_parser(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("render", help="draw data or predictions as a standalone HTML page",
                         description="gpner render DATA -o page.html draws a file's entities "
                         "(gold data or saved predictions); gpner render MODEL DATA -o page.html "
                         "draws the model's predictions on DATA's texts, and with --compare the "
                         "gold entities beside them, differences marked.")
    p.add_argument("source", help="a data file, or a model directory")
    p.add_argument("data", nargs="?", help="after a model: the data whose texts it tags")
    p.add_argument("-o", "--output", required=True, help="the HTML file to write")
    p.add_argument("--compare", action="store_true", help="gold beside predicted (a model and "
                   "annotated data)")
    p.add_argument("--errors-only", action="store_true", help="with --compare: only records "
                   "with a missing or spurious entity")
    p.add_argument("--limit", type=positive, default=1000, help="records on the page")
    encoding_option(p)
    decoding_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpner.serving.pages import render

    out = render(args.source, args.output, args.data, compare_gold=args.compare,
                 limit=args.limit, errors_only=args.errors_only, flat=flat_choice(args),
                 threshold=args.threshold, encoding=args.encoding)
    print(f"wrote {out['output']}: {out['records']} of {out['of']} records"
          + (f", {out['errors']} errors" if args.compare else ""), file=sys.stderr)
    return 0
