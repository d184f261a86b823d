"""``gpner calibrate``: choose each label's decision threshold on annotated dev data and save
them as the model's decoding defaults (every path that decodes then uses them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gpner.cli.options import encoding_option


def add_parser(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("calibrate", help="per-label thresholds and calibrated probabilities "
                         "chosen on dev data",
                         description="Choose each label's threshold to maximise its strict F1 "
                         "on DEV (an exact search over the distinct scores), and fit each "
                         "label's map from score to a calibrated probability (Platt: "
                         "temperature and bias by maximum likelihood; or isotonic); write both "
                         "into the model's decoding defaults: predict, evaluate, serve, ONNX, "
                         "spaCy, the Hugging Face pipeline and Ray use them; --threshold still "
                         "overrides the thresholds. Prints the expected calibration error "
                         "before and after, and draws a reliability diagram.")
    p.add_argument("model", help="model directory (or a run directory)")
    p.add_argument("dev", help="annotated dev data, any format gpner reads")
    p.add_argument("--probs", choices=("platt", "isotonic", "none"), default="platt",
                   help="how prob is calibrated (default platt; none keeps sigmoid(2 * score))")
    p.add_argument("--min-prob", type=float, metavar="P", help="decide by probability: each "
                   "label keeps the spans whose (calibrated) prob is at least P, instead of "
                   "the threshold that maximises dev F1")
    p.add_argument("--check", metavar="DATA", help="also score annotated DATA (say, test) "
                   "before and after: F1 and calibration error out of sample")
    p.add_argument("--plot", metavar="PNG", help="the reliability diagram (default: "
                   "MODEL/reliability.png when probabilities are fitted and saved)")
    p.add_argument("--floor", type=float, default=-10.0, help="lowest threshold considered "
                   "(spans scoring below it are never candidates; default -10, prob 2e-9)")
    p.add_argument("--dry-run", action="store_true", help="print the results, save nothing")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    encoding_option(p)
    p.set_defaults(func=run)


Candidates = dict[str, list[tuple[float, bool]]]


def _candidates(model: Any, path: str, floor: float, encoding: str | None, progress: bool
                ) -> tuple[Candidates, dict[str, int]]:
    """Per label: (score, right or not) of every span the model gives it above ``floor``
    (nested decoding: every candidate), and the label's gold span count."""
    from gpner.data.formats import read
    from gpner.metrics import span_set

    gold = read(path, encoding=encoding).records
    pred = model.predict([r["text"] for r in gold], threshold=floor, flat=False,
                         progress=progress)
    candidates: Candidates = {lab: [] for lab in model.labels}
    n_gold = {lab: 0 for lab in model.labels}
    for g, p in zip(gold, pred, strict=True):
        truth = span_set(g)
        for _, _, lab in truth:
            if lab in n_gold:
                n_gold[lab] += 1
        for e in p["entities"]:
            candidates[e["label"]].append((e["score"], (e["start"], e["end"], e["label"])
                                           in truth))
    return candidates, n_gold


def _probs(candidates: Candidates, maps: dict[str, Any] | None
           ) -> tuple[list[float], list[bool], list[float]]:
    """Every candidate's uncalibrated prob, whether it is right, and its calibrated prob."""
    from gpner.calibration import ProbMap, sigmoid

    raw, right, cal = [], [], []
    for lab, cands in candidates.items():
        m = ProbMap(maps[lab]) if maps and lab in maps else None
        for score, ok in cands:
            raw.append(sigmoid(2 * score))
            right.append(ok)
            cal.append(m(score) if m is not None else raw[-1])
    return raw, right, cal


def run(args: argparse.Namespace) -> int:
    import math

    from gpner.calibration import ece, fit
    from gpner.errors import ConfigError
    from gpner.metrics import best_threshold
    from gpner.model.artifact import resolve_dir
    from gpner.prediction.loading import load

    directory = resolve_dir(args.model)
    model = load(directory)
    if not model.task.span_head:
        raise ConfigError(f"{directory}: a {model.config.head} head has no span scores to "
                          "threshold", code="E305")
    if args.min_prob is not None and not 0 < args.min_prob < 1:
        raise ConfigError(f"--min-prob must be in (0, 1), got {args.min_prob}", code="E303")
    default = model.config.decode.threshold
    if not args.floor < default:
        raise ConfigError(f"--floor {args.floor} must be below the model's threshold {default}",
                          code="E303")
    progress = not args.no_progress and sys.stderr.isatty()
    candidates, n_gold = _candidates(model, args.dev, args.floor, args.encoding, progress)
    maps = (None if args.probs == "none" else
            {lab: fit([s for s, _ in c], [ok for _, ok in c], args.probs).to_dict()
             for lab, c in candidates.items()})
    from gpner.calibration import Calibration

    calibration = Calibration(model.labels, maps)
    rows = {}
    for k, lab in enumerate(model.labels):
        if args.min_prob is not None:
            t = calibration.score_for(k, args.min_prob)
            t = max(t, args.floor) if math.isfinite(t) else (1e9 if t > 0 else args.floor)
            f1 = _f1(candidates[lab], n_gold[lab], t)
        else:
            t, f1 = best_threshold(candidates[lab], n_gold[lab], args.floor, default)
        raw, right, cal = _probs({lab: candidates[lab]}, maps)
        rows[lab] = {"threshold": t, "f1": f1, "f1_at_default": _f1(candidates[lab],
                                                                     n_gold[lab], default),
                     "gold": n_gold[lab], "ece_before": ece(raw, right),
                     "ece_after": ece(cal, right)}
    raw, right, cal = _probs(candidates, maps)
    result: dict[str, Any] = {
        "model": str(directory), "default": default, "labels": rows, "probs": args.probs,
        "dev": {"candidates": len(right), "ece_before": ece(raw, right),
                "ece_after": ece(cal, right)}}
    thresholds = {lab: r["threshold"] for lab, r in rows.items()}
    if args.check:
        result["check"] = _check(model, args, maps, thresholds, progress)
    plot = _plot(args, directory, maps, raw, right, cal, result)
    if plot:
        result["plot"] = str(plot)
    if not args.dry_run:
        _save(directory, thresholds, maps)
    _print(args, result, directory)
    return 0


def _check(model: Any, args: argparse.Namespace, maps: dict[str, Any] | None,
           thresholds: dict[str, float], progress: bool) -> dict[str, Any]:
    """F1 and calibration error on other annotated data, before and after."""
    from gpner.calibration import ece

    candidates, n_gold = _candidates(model, args.check, args.floor, args.encoding, progress)
    default = model.config.decode.threshold

    def micro(th: dict[str, float]) -> float:
        tp = fp = 0
        for lab, cands in candidates.items():
            tp += sum(ok for sc, ok in cands if sc > th[lab])
            fp += sum(not ok for sc, ok in cands if sc > th[lab])
        gold = sum(n_gold.values())
        return 2 * tp / (2 * tp + fp + gold - tp) if gold + fp else 0.0

    raw, right, cal = _probs(candidates, maps)
    return {"data": args.check, "candidates": len(right),
            "f1_before": micro({lab: default for lab in candidates}),
            "f1_after": micro(thresholds), "ece_before": ece(raw, right),
            "ece_after": ece(cal, right), "_probs": (raw, right, cal)}


def _plot(args: argparse.Namespace, directory: Path, maps: dict[str, Any] | None,
          raw: list[float], right: list[bool], cal: list[float], result: dict
          ) -> Path | None:
    """The reliability diagram: dev before and after, and the --check data when given."""
    from gpner.calibration import reliability_diagram

    path = Path(args.plot) if args.plot else (None if args.dry_run or maps is None
                                             else directory / "reliability.png")
    if path is None:
        return None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("no reliability diagram: matplotlib is not installed (the 'plot' extra)",
              file=sys.stderr)
        return None
    curves: dict[str, tuple[list[float], list[bool]]] = {"dev, sigmoid(2 score)": (raw, right)}
    if maps is not None:
        curves[f"dev, {args.probs} (fitted here)"] = (cal, right)
    if "check" in result:
        c_raw, c_right, c_cal = result["check"]["_probs"]
        curves["check data, sigmoid(2 score)"] = (c_raw, c_right)
        if maps is not None:
            curves[f"check data, {args.probs}"] = (c_cal, c_right)
    name = directory.parent.name if directory.name == "model" else directory.name  # a run's
    reliability_diagram(path, curves, f"{name}: spans above score {args.floor:g}")
    return path


def _print(args: argparse.Namespace, result: dict, directory: Path) -> None:
    import json

    if "check" in result:
        result["check"].pop("_probs")
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    print(f"{'label':<16}{'gold':>6}{'threshold':>11}{'F1 before':>11}{'F1 after':>10}"
          f"{'ECE before':>12}{'ECE after':>11}")
    for lab, r in result["labels"].items():
        print(f"{lab:<16}{r['gold']:>6}{r['threshold']:>11.3f}{r['f1_at_default']:>11.4f}"
              f"{r['f1']:>10.4f}{r['ece_before']:>12.4f}{r['ece_after']:>11.4f}")
    d = result["dev"]
    print(f"dev: {d['candidates']} candidate spans, ECE {d['ece_before']:.4f} -> "
          f"{d['ece_after']:.4f} ({result['probs']}, fitted on these spans)")
    if "check" in result:
        c = result["check"]
        print(f"{c['data']}: micro F1 {c['f1_before']:.4f} -> {c['f1_after']:.4f}, "
              f"{c['candidates']} candidate spans, ECE {c['ece_before']:.4f} -> "
              f"{c['ece_after']:.4f}")
    where = "not saved (--dry-run)" if args.dry_run else f"saved in {directory}/config.json"
    print(f"per-label thresholds and probabilities chosen on {args.dev} (default threshold "
          f"{result['default']:g}): {where}" + (f"; reliability diagram {result['plot']}"
                                               if result.get("plot") else ""),
          file=sys.stderr)


def _f1(candidates: list[tuple[float, bool]], n_gold: int, threshold: float) -> float:
    tp = sum(ok for sc, ok in candidates if sc > threshold)
    fp = sum(not ok for sc, ok in candidates if sc > threshold)
    return 2 * tp / (2 * tp + fp + n_gold - tp) if n_gold + fp else 0.0


def _save(directory: Path, thresholds: dict[str, float], maps: dict[str, Any] | None) -> None:
    """``decode.thresholds`` and ``decode.calibration`` (removed with ``--probs none``) into
    the model's config.json, every other key kept, atomically."""
    import json

    from gpner.atomic import atomic_write_text
    from gpner.textfiles import read_model_json

    path = directory / "config.json"
    config = read_model_json(path)
    config.setdefault("decode", {})["thresholds"] = thresholds
    if maps is None:
        config["decode"].pop("calibration", None)
    else:
        config["decode"]["calibration"] = maps
    atomic_write_text(path, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
