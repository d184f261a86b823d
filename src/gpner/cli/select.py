"""``gpner select``: the texts of a pool worth labelling next, with pre-annotations, in an
annotation tool's import format."""

from __future__ import annotations

import argparse
import json
import sys

from gpner.cli.options import encoding_option, positive


def add_parser(verbs: argparse._SubParsersAction) -> None:
    from gpner.active import STRATEGIES

    p = verbs.add_parser(
        "select", help="choose the pool texts worth labelling next (active learning)",
        description="Stream over POOL (text lines, JSON lines or any format gpner reads) in "
        "bounded memory and write the N texts worth labelling first under --by (uncertainty: "
        "the least certain span; margin: the smallest margin between a span's two likeliest "
        "readings; entropy: the spans' summed entropy; random), best first, each with the "
        "model's pre-annotation, in the import format of --to.")
    p.add_argument("model", help="model directory (or a run directory)")
    p.add_argument("pool", help="the unlabelled texts")
    p.add_argument("-n", type=positive, default=500, help="texts to choose (default 500)")
    p.add_argument("--by", choices=STRATEGIES, default="uncertainty")
    p.add_argument("-o", "--output", required=True, help="the chosen texts")
    p.add_argument("--to", choices=("jsonl", "label-studio", "doccano"), default="jsonl",
                   help="jsonl: gpner records with a gpner_select field; label-studio: import "
                   "tasks with gpner's prediction; doccano: JSONL with label spans")
    p.add_argument("--exclude", nargs="+", default=[], metavar="FILE", help="files of texts "
                   "already labelled (any format gpner reads): never chosen")
    p.add_argument("--format", help="the pool's format (default: detected)")
    p.add_argument("--floor", type=float, default=-5.0, help="spans scoring above it are the "
                   "candidates the strategies look at (default -5: prob 4.5e-5)")
    p.add_argument("--seed", type=int, default=0, help="for --by random")
    p.add_argument("--batch-size", type=positive, default=32)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    encoding_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gpner.active import SelectReport, label_studio_task, select
    from gpner.atomic import atomic_write_text
    from gpner.data.formats import read
    from gpner.prediction.loading import load
    from gpner.prediction.stream import InputReport, detect_kind, output_record, read_inputs
    from gpner.textfiles import json_line

    exclude: set[str] = set()
    for path in args.exclude:
        exclude.update(r["text"] for r in read(path, encoding=args.encoding).records)
    model = load(args.model)
    kind = detect_kind(args.pool, args.format, args.encoding)
    inputs = InputReport(args.pool)
    items = ((k, it.text, it.fields) for k, it in enumerate(
        read_inputs(args.pool, kind, inputs, encoding=args.encoding), 1))
    if not args.no_progress and sys.stderr.isatty():
        from tqdm.auto import tqdm

        items = tqdm(items, unit="text", desc=f"select ({args.by})", mininterval=0.5)
    report = SelectReport()
    chosen = select(model, items, args.n, args.by, args.floor, args.seed, exclude,
                    args.batch_size, report)
    version = Path(args.model).resolve().name
    if args.to == "label-studio":
        text = json.dumps([label_studio_task(c, version, args.by) for c in chosen],
                          ensure_ascii=False, indent=1) + "\n"
    elif args.to == "doccano":
        text = "".join(json_line({"text": c.record["text"], "label": [
            [e["start"], e["end"], e["label"]] for e in c.record["entities"]]}) + "\n"
            for c in chosen)
    else:
        from gpner.prediction.stream import Item

        text = "".join(json_line({**output_record(Item(c.record["text"], c.fields), c.record),
                                  "gpner_select": {"by": args.by, "score": round(c.score, 6),
                                                   "rank": rank, "input": c.line}}) + "\n"
                       for rank, c in enumerate(chosen, 1))
    atomic_write_text(args.output, text)
    print(f"{inputs.summary()}; {report.excluded} already labelled (excluded); chose "
          f"{len(chosen)} by {args.by}; wrote {args.output} ({args.to})", file=sys.stderr)
    return 0
