"""``gpner demo``: generate a corpus, train, evaluate and tag, with no download."""

from __future__ import annotations

import argparse
import sys

from gpner.textfiles import json_line


def add_parser(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("demo", help="generate a corpus, train, evaluate and tag (no download)")
    p.add_argument("--output", "-o", default="runs/demo", help="where data and model go")
    p.add_argument("--relations", action="store_true", help="the relation-extraction demo "
                   "(entities and triples, GPLinker)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    from gpner.data.demo import RELATION_SAMPLES, SAMPLES, write_corpus
    from gpner.data.formats import read
    from gpner.metrics import format_relations, format_table
    from gpner.prediction.loading import load
    from gpner.training.config import load_config
    from gpner.training.trainer import train

    out = args.output
    if args.relations:
        paths, what = write_corpus(f"{out}/data", relations=True), "entities and relations"
        samples, table = RELATION_SAMPLES, format_relations
    else:
        paths, what, samples, table = write_corpus(f"{out}/data"), "nested", SAMPLES, format_table
    print(f"[1/4] demo corpus (Chinese + English, {what}): {paths['train']}, {paths['dev']}, "
          f"{paths['test']}", file=sys.stderr)
    cfg = load_config(None, ["epochs=20" if args.relations else "epochs=12", *args.overrides])
    print(f"[2/4] gpner train --train {paths['train']} --dev {paths['dev']} --output {out}/run",
          file=sys.stderr)
    # the demo regenerates its data, so it replaces its own previous run
    summary = train(paths["train"], paths["dev"], f"{out}/run", cfg, progress=not args.no_progress,
                    overwrite=True)
    print(f"      best dev F1 {summary['best_dev_f1']:.4f} at epoch {summary['best_epoch']} "
          f"({summary['minutes']} min)", file=sys.stderr)
    model = load(f"{out}/run")
    print(f"[3/4] gpner evaluate {out}/run {paths['test']}", file=sys.stderr)
    result = model.evaluate(read(paths["test"]).records)
    print(table(result))
    print("[4/4] gpner predict (sample sentences)", file=sys.stderr)
    for record in model.predict(samples):
        print(json_line(record))
    return 0
