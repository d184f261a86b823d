"""Strict entity-level metrics: a prediction counts only with the exact start, end and label.

Entities are compared as sets of (start, end, label) per text, so nested and overlapping spans
are scored correctly and duplicates count once.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

from gpner.records import Record


def _prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn,
            "support": tp + fn}


def span_set(record: Record) -> set[tuple[int, int, str]]:
    return {(e["start"], e["end"], e["label"]) for e in record.get("entities", [])}


def evaluate(gold: Sequence[Record], pred: Sequence[Record],
             labels: Iterable[str] | None = None) -> dict:
    """Micro P/R/F1, macro F1 and a per-label table for aligned lists of gold/predicted records.

    Returns ``{"precision", "recall", "f1", "macro_f1", "tp", "fp", "fn", "support",
    "per_label": {label: {"precision", "recall", "f1", "tp", "fp", "fn", "support"}}}``.
    Macro F1 averages over ``labels`` (default: every label in gold or predictions).
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold records but {len(pred)} predictions")
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for n, (g, p) in enumerate(zip(gold, pred)):
        if g.get("text") is not None and p.get("text") is not None and g["text"] != p["text"]:
            raise ValueError(f"record {n}: gold and prediction texts differ")
        gs, ps = span_set(g), span_set(p)
        for _, _, lab in gs & ps:
            tp[lab] += 1
        for _, _, lab in ps - gs:
            fp[lab] += 1
        for _, _, lab in gs - ps:
            fn[lab] += 1
    names = sorted(set(labels) if labels is not None else set(tp) | set(fp) | set(fn))
    per_label = {lab: _prf(tp[lab], fp[lab], fn[lab]) for lab in names}
    result = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    result["macro_f1"] = sum(v["f1"] for v in per_label.values()) / len(names) if names else 0.0
    result["per_label"] = per_label
    return result


def format_table(result: dict) -> str:
    """A plain-text table: one row per label, then micro and macro."""
    rows = [f"{'label':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for lab, v in result["per_label"].items():
        rows.append(f"{lab:<16}{v['precision']:>10.4f}{v['recall']:>10.4f}{v['f1']:>10.4f}"
                    f"{v['support']:>9}")
    rows.append(f"{'micro':<16}{result['precision']:>10.4f}{result['recall']:>10.4f}"
                f"{result['f1']:>10.4f}{result['support']:>9}")
    rows.append(f"{'macro':<16}{'':>10}{'':>10}{result['macro_f1']:>10.4f}")
    return "\n".join(rows)
