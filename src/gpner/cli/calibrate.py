"""``gpner calibrate``: choose each label's decision threshold on annotated dev data and save
them as the model's decoding defaults (every path that decodes then uses them)."""

from __future__ import annotations

import argparse
import sys

from gpner.cli.options import encoding_option


def add_parser(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("calibrate", help="per-label thresholds chosen on dev data",
                         description="Choose each label's threshold to maximise its strict F1 "
                         "on DEV (an exact search over the distinct scores) and write them into "
                         "the model's decoding defaults: predict, evaluate, serve, ONNX, spaCy, "
                         "the Hugging Face pipeline and Ray use them; --threshold still "
                         "overrides them all.")
    p.add_argument("model", help="model directory (or a run directory)")
    p.add_argument("dev", help="annotated dev data, any format gpner reads")
    p.add_argument("--floor", type=float, default=-10.0, help="lowest threshold considered "
                   "(spans scoring below it are never candidates; default -10, prob 2e-9)")
    p.add_argument("--dry-run", action="store_true", help="print the thresholds, save nothing")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    encoding_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from gpner.data.formats import read
    from gpner.errors import ConfigError
    from gpner.metrics import best_threshold, span_set
    from gpner.model.artifact import resolve_dir
    from gpner.prediction.loading import load

    directory = resolve_dir(args.model)
    model = load(directory)
    if not model.task.span_head:
        raise ConfigError(f"{directory}: a {model.config.head} head has no span scores to "
                          "threshold", code="E305")
    gold = read(args.dev, encoding=args.encoding).records
    default = model.config.decode.threshold
    if not args.floor < default:
        raise ConfigError(f"--floor {args.floor} must be below the model's threshold {default}",
                          code="E303")
    pred = model.predict([r["text"] for r in gold], threshold=args.floor, flat=False,
                         progress=not args.no_progress and sys.stderr.isatty())
    candidates: dict[str, list[tuple[float, bool]]] = {lab: [] for lab in model.labels}
    n_gold = {lab: 0 for lab in model.labels}
    for g, p in zip(gold, pred, strict=True):
        truth = span_set(g)
        for _, _, lab in truth:
            if lab in n_gold:
                n_gold[lab] += 1
        for e in p["entities"]:
            candidates[e["label"]].append((e["score"], (e["start"], e["end"], e["label"])
                                           in truth))
    rows = {}
    for lab in model.labels:
        t, f1 = best_threshold(candidates[lab], n_gold[lab], args.floor, default)
        before = _f1(candidates[lab], n_gold[lab], default)
        rows[lab] = {"threshold": t, "f1": f1, "f1_at_default": before, "gold": n_gold[lab]}
    if not args.dry_run:
        _save(directory, {lab: r["threshold"] for lab, r in rows.items()})
    if args.json:
        print(json.dumps({"model": str(directory), "default": default, "labels": rows},
                         indent=2, ensure_ascii=False))
    else:
        print(f"{'label':<16}{'gold':>6}{'threshold':>11}{'F1 before':>11}{'F1 after':>10}")
        for lab, r in rows.items():
            print(f"{lab:<16}{r['gold']:>6}{r['threshold']:>11.3f}{r['f1_at_default']:>11.4f}"
                  f"{r['f1']:>10.4f}")
        where = "not saved (--dry-run)" if args.dry_run else f"saved in {directory}/config.json"
        print(f"per-label thresholds chosen on {args.dev} (default {default:g}): {where}",
              file=sys.stderr)
    return 0


def _f1(candidates: list[tuple[float, bool]], n_gold: int, threshold: float) -> float:
    tp = sum(ok for sc, ok in candidates if sc > threshold)
    fp = sum(not ok for sc, ok in candidates if sc > threshold)
    return 2 * tp / (2 * tp + fp + n_gold - tp) if n_gold + fp else 0.0


def _save(directory, thresholds: dict[str, float]) -> None:
    """``decode.thresholds`` into the model's config.json, every other key kept, atomically."""
    import json

    from gpner.atomic import atomic_write_text
    from gpner.textfiles import read_model_json

    path = directory / "config.json"
    config = read_model_json(path)
    config.setdefault("decode", {})["thresholds"] = thresholds
    atomic_write_text(path, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
