"""``gpner evaluate``: a model's precision, recall and F1 on annotated data."""

from __future__ import annotations

import argparse
import sys

from gpner.cli.options import encoding_option, positive
from gpner.errors import ConfigError


def add_parser(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("evaluate", help="precision, recall and F1 of a model on data")
    p.add_argument("model", help="model directory (or a run directory)")
    p.add_argument("data", help="annotated data, any format gpner convert reads")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--flat", action="store_true", default=None, help="flat decoding")
    p.add_argument("--threshold", type=float, help="score threshold (default: the model's)")
    p.add_argument("--errors", metavar="OUT.jsonl", help="write every false positive and false "
                   "negative with its scenario and context")
    p.add_argument("--compare", metavar="OTHER_MODEL", help="also score another model on the "
                   "same data, with a paired bootstrap estimate of the difference")
    p.add_argument("--bootstrap", type=positive, default=1000, help="bootstrap samples")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    encoding_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from gpner.atomic import atomic_write_text
    from gpner.data.formats import read
    from gpner.metrics import (
        errors,
        evaluate,
        format_schemas,
        format_table,
        paired_bootstrap,
        schemas,
    )
    from gpner.prediction.loading import load

    corpus = read(args.data, encoding=args.encoding)
    gold = corpus.records
    texts = [r["text"] for r in gold]
    opts = dict(flat=args.flat, threshold=args.threshold, progress=not args.no_progress)
    model = load(args.model)
    pred = model.predict(texts, **opts)
    if model.task.has_relations:
        return _evaluate_relations(args, gold, pred, corpus.report)
    result = evaluate(gold, pred)
    result.update(schemas(gold, pred))
    result["data"] = corpus.report.as_dict()
    if args.errors:
        lines = [json.dumps(e, ensure_ascii=False) + "\n" for e in errors(gold, pred)]
        atomic_write_text(args.errors, "".join(lines))
        print(f"wrote {len(lines)} false positives and negatives to {args.errors}",
              file=sys.stderr)
    if args.compare:
        other = load(args.compare).predict(texts, **opts)
        result["compare"] = {"a": args.model, "b": args.compare,
                             **paired_bootstrap(gold, pred, other, samples=args.bootstrap)}
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(format_table(result))
        print()
        print(format_schemas(result))
        c = result.get("compare")
        if c:
            print(f"\nA {c['a']}: F1 {c['f1_a']:.4f}\nB {c['b']}: F1 {c['f1_b']:.4f}\n"
                  f"B - A: {c['delta']:+.4f} (95% CI {c['ci95'][0]:+.4f} to {c['ci95'][1]:+.4f};"
                  f" paired bootstrap over {c['records']} records, {c['samples']} samples: "
                  f"p = {c['p_value']:.4f})")
        print(corpus.report.summary(), file=sys.stderr)
    return 0


def _evaluate_relations(args: argparse.Namespace, gold: list, pred: list, report) -> int:
    """``gpner evaluate`` for a relation model: triple metrics (strict and partial, per
    relation, by overlap class and triples per sentence) and the entity metrics."""
    import json

    from gpner.metrics import evaluate_relations, format_relations

    if args.errors or args.compare:
        raise ConfigError("--errors and --compare are for NER models; a relation model's "
                          "evaluation has no error listing or comparison yet", code="E305")
    result = evaluate_relations(gold, pred)
    result["data"] = report.as_dict()
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(format_relations(result))
        print(report.summary(), file=sys.stderr)
    return 0
