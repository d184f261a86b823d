"""``gpner evaluate``: a model's precision, recall and F1 on annotated data, or a prediction file
scored against a gold file (``gpner evaluate GOLD PRED``), each in any format gpner reads."""

from __future__ import annotations

import argparse
import sys

from gpner.cli.options import encoding_option, positive
from gpner.errors import ConfigError
from gpner.textfiles import json_line


def add_parser(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("evaluate", help="precision, recall and F1 of a model on data, or of "
                         "a prediction file against a gold file",
                         description="gpner evaluate MODEL DATA scores a model's predictions on "
                         "annotated DATA; gpner evaluate GOLD PRED scores a prediction file "
                         "written by any system against a gold file (both in any format gpner "
                         "reads, records paired by text or --id-field).")
    p.add_argument("model", help="model directory (or a run directory), or a gold file")
    p.add_argument("data", help="annotated data (with a model), or the prediction file (with "
                   "a gold file); any format gpner convert reads")
    p.add_argument("--format", help="format of DATA, or of GOLD (default: detected)")
    p.add_argument("--pred-format", help="format of the prediction file (default: detected)")
    p.add_argument("--scheme", "--scheme-in", dest="scheme", help="tag scheme of tag-file "
                   "inputs: bio, iob1, bioes, bmes (default: detected per file)")
    p.add_argument("--id-field", help="pair gold and predicted records by this field (e.g. id) "
                   "instead of by text")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--flat", action="store_true", default=None, help="flat decoding")
    p.add_argument("--threshold", type=float, help="score threshold (default: the model's)")
    p.add_argument("--errors", metavar="OUT.jsonl", help="write every false positive and false "
                   "negative with its scenario and context")
    p.add_argument("--compare", metavar="OTHER", help="also score another model (or, with a "
                   "gold file, another prediction file) on the same data, with a paired "
                   "bootstrap estimate of the difference")
    p.add_argument("--bootstrap", type=positive, default=1000, help="bootstrap samples")
    p.add_argument("--score-anyway", action="store_true", help="score gold data with labels "
                   "the model does not know, or with no gold entity (refused by default: the "
                   "number would mislead)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    encoding_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    from gpner.atomic import atomic_write_text
    from gpner.data.formats import read_any
    from gpner.metrics import errors, evaluate, paired_bootstrap, schemas
    from gpner.prediction.loading import load

    if _is_gold_file(args.model):
        return _evaluate_files(args)
    reader_opts = {"scheme": args.scheme} if args.scheme else {}
    corpus = read_any(args.data, args.format, encoding=args.encoding, **reader_opts)
    gold = corpus.records
    texts = [r["text"] for r in gold]
    opts = dict(flat=args.flat, threshold=args.threshold, progress=not args.no_progress)
    model = load(args.model)
    rel = model.task.has_relations
    warnings = meaningful(gold, model.config.relations if rel else model.labels, args.data,
                          args.score_anyway, relations=rel)
    pred = model.predict(texts, **opts)
    if model.task.has_relations:
        return _evaluate_relations(args, gold, pred, corpus.report)
    result = evaluate(gold, pred)
    result.update(schemas(gold, pred))
    result["data"] = corpus.report.as_dict()
    if warnings:
        result["warnings"] = warnings
    if args.errors:
        lines = [json_line(e) + "\n" for e in errors(gold, pred)]
        atomic_write_text(args.errors, "".join(lines))
        print(f"wrote {len(lines)} false positives and negatives to {args.errors}",
              file=sys.stderr)
    if args.compare:
        other = load(args.compare).predict(texts, **opts)
        result["compare"] = {"a": args.model, "b": args.compare,
                             **paired_bootstrap(gold, pred, other, samples=args.bootstrap)}
    _show(args, result, [corpus.report])
    return 0


def _show(args: argparse.Namespace, result: dict, reports: list) -> None:
    """Print the result (a table, or JSON with ``--json``) and what each file's reading found."""
    import json

    from gpner.metrics import format_table

    for report in reports:  # on stderr: the JSON on stdout stays one object
        for rule in report.rules:
            print(f"rule: {rule}", file=sys.stderr)
        print(report.summary(), file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    if "schemas" in result:
        from gpner.metrics import format_schemas

        print(format_table(result))
        print()
        print(format_schemas(result))
    else:
        from gpner.metrics import format_relations

        print(format_relations(result))
    c = result.get("compare")
    if c:
        print(f"\nA {c['a']}: F1 {c['f1_a']:.4f}\nB {c['b']}: F1 {c['f1_b']:.4f}\n"
              f"B - A: {c['delta']:+.4f} (95% CI {c['ci95'][0]:+.4f} to {c['ci95'][1]:+.4f};"
              f" paired bootstrap over {c['records']} records, {c['samples']} samples: "
              f"p = {c['p_value']:.4f})")


def meaningful(gold: list, labels: list[str] | None, source: str, anyway: bool,
               relations: bool = False) -> list[str]:
    """What would make the score mislead: gold labels the model does not know, no gold entity
    (for a relation model, which scores triples: relation labels, no gold relation). Refused
    (E115) unless ``anyway``; then returned as warnings (also printed)."""
    from collections import Counter

    from gpner.errors import DataError

    key, one = ("relations", "relation") if relations else ("entities", "entity")
    counts = Counter(e["label"] for r in gold for e in r.get(key) or [])
    problems = []
    if labels is not None:
        unknown = {lab: n for lab, n in counts.items() if lab not in set(labels)}
        if unknown:
            by_case = {x.lower(): x for x in labels}
            named = ", ".join(f"{lab!r} ({n}" + (f"; the model says {by_case[lab.lower()]!r}"
                                                 if lab.lower() in by_case else "") + ")"
                              for lab, n in sorted(unknown.items()))
            problems.append(f"{sum(unknown.values())} of {sum(counts.values())} gold {key} "
                            f"have labels the model does not know: {named}; the model's "
                            f"labels are {list(labels)}. Every one would count as missed")
    if not counts:
        problems.append(f"the gold data has no {one} in {len(gold)} records: "
                        "precision, recall and F1 would be 0 whatever the predictions")
    if problems and not anyway:
        raise DataError(f"{source}: " + "; and ".join(problems) + ". Convert the labels, or "
                        "pass --score-anyway to score it regardless", code="E115")
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    return problems


def _is_gold_file(path: str) -> bool:
    """Whether the first argument is data (a gold file or BRAT directory), not a model."""
    from pathlib import Path

    from gpner.errors import ModelNotFound
    from gpner.model.artifact import resolve_dir

    try:
        resolve_dir(path)
        return False
    except ModelNotFound:
        return Path(path).exists()


def _evaluate_files(args: argparse.Namespace) -> int:
    """``gpner evaluate GOLD PRED [--compare PRED2]``: two files, no model."""

    from gpner.atomic import atomic_write_text
    from gpner.metrics import align, errors, paired_bootstrap, score_files

    if args.flat or args.threshold is not None:
        raise ConfigError("--flat and --threshold decode a model's scores; a prediction file "
                          "is scored as it is", code="E305")
    opts = {"scheme": args.scheme} if args.scheme else {}
    result, gold, pred = score_files(args.model, args.data, gold_format=args.format,
                                     pred_format=args.pred_format, id_field=args.id_field,
                                     encoding=args.encoding, **opts)
    warnings = meaningful(gold.records, None, args.model, args.score_anyway,
                          relations="schemas" not in result)
    if warnings:
        result["warnings"] = warnings
    reports = [gold.report, pred.report]
    relations = "schemas" not in result
    if relations and (args.errors or args.compare):
        raise ConfigError("--errors and --compare are for entities; relation data is scored "
                          "without them yet", code="E305")
    if args.errors:
        lines = [json_line(e) + "\n" for e in errors(gold.records,
                                                                          pred.records)]
        atomic_write_text(args.errors, "".join(lines))
        print(f"wrote {len(lines)} false positives and negatives to {args.errors}",
              file=sys.stderr)
    if args.compare:
        from gpner.data.formats import read_any

        other = read_any(args.compare, args.pred_format, encoding=args.encoding, **opts)
        reports.append(other.report)
        paired = align(gold.records, other.records, args.id_field, (args.model, args.compare))
        result["compare"] = {"a": args.data, "b": args.compare, **paired_bootstrap(
            gold.records, pred.records, paired, samples=args.bootstrap)}
    _show(args, result, reports)
    return 0


def _evaluate_relations(args: argparse.Namespace, gold: list, pred: list, report) -> int:
    """``gpner evaluate`` for a relation model: triple metrics (strict and partial, per
    relation, by overlap class and triples per sentence) and the entity metrics."""
    from gpner.metrics import evaluate_relations

    if args.errors or args.compare:
        raise ConfigError("--errors and --compare are for NER models; a relation model's "
                          "evaluation has no error listing or comparison yet", code="E305")
    result = evaluate_relations(gold, pred)
    result["data"] = report.as_dict()
    _show(args, result, [report])
    return 0
