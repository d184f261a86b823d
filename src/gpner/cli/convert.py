"""``gpner convert``: read annotations in any supported format and write another."""

from __future__ import annotations

import argparse
import sys

from gpner.cli.options import encoding_option


def add_parser(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("convert", help="convert annotations between formats",
                         description="Read any supported format (detected unless --format) and "
                         "write another (from the output extension unless --to), printing the "
                         "format and the first record as read. Reads: jsonl, cluener, cmeee, "
                         "conll, brat, doccano, label-studio, casrel, spo, tokens, tsv, wordtag, "
                         "prodigy, spacy, pubtator, dygie; writes: jsonl, cluener, cmeee, conll, "
                         "brat, doccano, label-studio, casrel, pubtator, dygie (docs/formats.md).")
    p.add_argument("input", help="input file, or a BRAT directory")
    p.add_argument("-o", "--output", required=True, help="output file or BRAT directory")
    p.add_argument("--format", help="input format (default: detected)")
    p.add_argument("--to", help="output format (default: from the output extension)")
    p.add_argument("--scheme", help="tag scheme for conll output: bio, iob1, bioes, bmes")
    p.add_argument("--scheme-in", help="tag scheme of a conll input (default: detected)")
    p.add_argument("--token-sep", help="string joining column-file tokens (default: '' for "
                   "CJK, ' ' otherwise)")
    p.add_argument("--documents", action="store_true", help="column files: one record per "
                   "-DOCSTART- document (sentences joined by newlines), not per sentence")
    p.add_argument("--token-pattern", help="column files: a regular expression whose first "
                   "group is the token text, for tokens with an annotation glued on (Weibo NER: "
                   "'(.+?)\\d+$')")
    p.add_argument("--tag-names", help="token JSON with integer tags (a Hugging Face export): "
                   "the tag names in id order, comma-separated (O,B-PER,I-PER,...)")
    p.add_argument("--tags", help="wordtag files: word tags to entity types (default "
                   "nr=PER,ns=LOC,nt=ORG)")
    p.add_argument("--inclusive-end", action="store_true", help="tsv files: span ends are the "
                   "last character, not one past it")
    p.add_argument("--offsets", choices=("text", "chars"), help="tsv files whose text is "
                   "space-separated characters: whether the offsets count the spaced text or "
                   "the characters alone (default: decided from the offsets)")
    p.add_argument("--unit", choices=("document", "sentence"), help="dygie files: one record "
                   "per document (default; coreference clusters kept) or per sentence")
    p.add_argument("--strict", action="store_true", help="fail on the first malformed entity")
    p.add_argument("--drop-relations", action="store_true", help="write the entities of relation "
                   "data to a format that cannot hold relations (without it, such a write is "
                   "refused)")
    encoding_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpner.data.formats import canonical, detect_format, preview, read, write

    reader_opts: dict = {}
    for key, value in (("scheme", args.scheme_in), ("token_sep", args.token_sep),
                       ("documents", args.documents or None),
                       ("token_pattern", args.token_pattern), ("tags", args.tags),
                       ("inclusive_end", args.inclusive_end or None),
                       ("offsets", args.offsets), ("unit", args.unit),
                       ("tag_names", args.tag_names)):
        if value is not None:
            reader_opts[key] = value
    fmt = canonical(args.format) if args.format else detect_format(args.input, args.encoding)
    corpus = read(args.input, fmt, strict=args.strict, encoding=args.encoding, **reader_opts)
    # what was understood, at a glance: a wrong reading shows here, before anyone trains on it
    print(f"format: {fmt}" + (" (given)" if args.format else " (detected; --format to "
                              "override)"), file=sys.stderr)
    for rule in corpus.report.rules:
        print(f"rule: {rule}", file=sys.stderr)
    shown = preview(corpus.records)
    if shown:
        print(f"first record: {shown}", file=sys.stderr)
    writer_opts = {"scheme": args.scheme} if args.scheme else {}
    dropped = write(corpus, args.output, args.to, drop_relations=args.drop_relations,
                    **writer_opts)
    print(corpus.report.summary(), file=sys.stderr)
    if dropped:
        print(f"dropped {dropped} relations (--drop-relations)", file=sys.stderr)
    print(f"wrote {len(corpus)} records to {args.output}", file=sys.stderr)
    return 0
