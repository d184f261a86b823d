"""Strict entity-level metrics: a prediction counts only with the exact start, end and label.

Entities are compared as sets of (start, end, label) per text, so nested and overlapping spans
are scored correctly and duplicates count once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence, cast

from gpner.records import Corpus, Record


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
    for n, (g, p) in enumerate(zip(gold, pred, strict=True)):
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


# --- the field's vocabulary: MUC/SemEval-2013-style schemas, as the nervaluate package reports

SCENARIOS = ("correct", "type", "boundary", "boundary+type", "missed", "spurious")
# what each scenario counts as, per schema: (correct, incorrect, partial) or missed/spurious
_SCHEMA_OF = {
    "strict": {"correct": "cor", "type": "inc", "boundary": "inc", "boundary+type": "inc"},
    "exact": {"correct": "cor", "type": "cor", "boundary": "inc", "boundary+type": "inc"},
    "partial": {"correct": "cor", "type": "cor", "boundary": "par", "boundary+type": "par"},
    "type": {"correct": "cor", "type": "inc", "boundary": "cor", "boundary+type": "inc"},
}


def match(gold: Sequence[tuple[int, int, str]], pred: Sequence[tuple[int, int, str]]
          ) -> list[tuple[str, int | None, int | None]]:
    """Pair the gold and predicted spans (start, end, label) of one text, one to one.

    Returns ``(scenario, gold index, pred index)`` for every span: ``correct`` (same boundaries
    and label), ``type`` (same boundaries, other label), ``boundary`` (overlapping, same label),
    ``boundary+type`` (overlapping, other label), ``missed`` (gold left unpaired), ``spurious``
    (prediction left unpaired). Pairs are taken best first — exact, then same boundaries, then
    same label with the largest overlap, then any overlap — so in nested data a prediction pairs
    with the gold span it matches best, and every span is counted once.
    """
    cands = []
    for gi, (gs, ge, gl) in enumerate(gold):
        for pi, (ps, pe, pl) in enumerate(pred):
            overlap = min(ge, pe) - max(gs, ps)
            if overlap <= 0:
                continue
            same_bounds, same_label = (gs, ge) == (ps, pe), gl == pl
            rank = (0 if same_bounds and same_label else 1 if same_bounds else
                    2 if same_label else 3)
            cands.append((rank, -overlap, gi, pi))
    cands.sort()
    kinds = ("correct", "type", "boundary", "boundary+type")
    out: list[tuple[str, int | None, int | None]] = []
    g_used, p_used = set(), set()
    for rank, _, gi, pi in cands:
        if gi not in g_used and pi not in p_used:
            g_used.add(gi)
            p_used.add(pi)
            out.append((kinds[rank], gi, pi))
    out += [("missed", gi, None) for gi in range(len(gold)) if gi not in g_used]
    out += [("spurious", None, pi) for pi in range(len(pred)) if pi not in p_used]
    return out


def schemas(gold: Sequence[Record], pred: Sequence[Record]) -> dict:
    """Strict, exact (boundaries only), partial (overlap counts half) and type (any overlap
    with the right label) schemas with correct/incorrect/partial/missed/spurious counts and
    P/R/F1; the scenario counts (boundary vs type errors); and the type confusion of spans whose
    boundaries are right (gold label -> predicted label -> count).

    possible = cor + inc + par + mis (every gold span), actual = cor + inc + par + spu (every
    prediction); P = (cor + 0.5 par) / actual, R = (cor + 0.5 par) / possible (par is 0 except
    in the partial schema).
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold records but {len(pred)} predictions")
    scen: Counter[str] = Counter()
    confusion: dict[str, Counter] = {}
    for g, p in zip(gold, pred, strict=True):
        gs, ps = sorted(span_set(g)), sorted(span_set(p))
        for kind, gi, pi in match(gs, ps):
            scen[kind] += 1
            if kind == "type" and gi is not None and pi is not None:
                confusion.setdefault(gs[gi][2], Counter())[ps[pi][2]] += 1
    out: dict = {}
    for name, of in _SCHEMA_OF.items():
        c = Counter({"cor": 0, "inc": 0, "par": 0})
        for kind, to in of.items():
            c[to] += scen[kind]
        mis, spu = scen["missed"], scen["spurious"]
        possible = c["cor"] + c["inc"] + c["par"] + mis
        actual = c["cor"] + c["inc"] + c["par"] + spu
        hits = c["cor"] + 0.5 * c["par"]
        p_ = hits / actual if actual else 0.0
        r_ = hits / possible if possible else 0.0
        out[name] = {"correct": c["cor"], "incorrect": c["inc"], "partial": c["par"],
                     "missed": mis, "spurious": spu, "possible": possible, "actual": actual,
                     "precision": p_, "recall": r_,
                     "f1": 2 * p_ * r_ / (p_ + r_) if p_ + r_ else 0.0}
    return {"schemas": out, "scenarios": {k: scen[k] for k in SCENARIOS},
            "type_confusion": {g: dict(sorted(c.items())) for g, c in sorted(confusion.items())}}


def errors(gold: Sequence[Record], pred: Sequence[Record], context: int = 30
           ) -> Iterable[dict]:
    """Every false negative and false positive (strict) with its scenario, the span it was
    paired with, and ``context`` characters around it (the mention marked with [[ ]])."""
    for k, (g, p) in enumerate(zip(gold, pred, strict=True)):
        text = g.get("text", "")
        gs, ps = sorted(span_set(g)), sorted(span_set(p))
        for kind, gi, pi in match(gs, ps):
            if kind == "correct":
                continue
            for side, idx, other in (("false_negative", gi, pi), ("false_positive", pi, gi)):
                if idx is None:
                    continue
                s, e, lab = (gs if side == "false_negative" else ps)[idx]
                item = {"record": k, "kind": side, "scenario": kind, "start": s, "end": e,
                        "label": lab, "text": text[s:e],
                        "context": text[max(0, s - context):s] + "[[" + text[s:e] + "]]"
                        + text[e:e + context]}
                if "id" in g:
                    item["id"] = g["id"]
                if other is not None:
                    os_, oe, ol = (ps if side == "false_negative" else gs)[other]
                    item["paired_with"] = {"start": os_, "end": oe, "label": ol,
                                           "text": text[os_:oe]}
                yield item


def paired_bootstrap(gold: Sequence[Record], pred_a: Sequence[Record],
                     pred_b: Sequence[Record], samples: int = 1000, seed: int = 0) -> dict:
    """Strict micro F1 of two systems on the same records, and a paired bootstrap over records
    (Koehn 2004; Berg-Kirkpatrick et al. 2012): ``samples`` resamples with replacement, the F1
    difference b - a on each. ``p_value``: the share of resamples where the difference does not
    have the observed sign (1 when b and a tie); ``ci95``: the 2.5 and 97.5 percentiles."""
    import numpy as np

    def counts(pred: Sequence[Record]) -> np.ndarray:
        rows = []
        for g, p in zip(gold, pred, strict=True):
            gs, ps = span_set(g), span_set(p)
            rows.append((len(gs & ps), len(ps - gs), len(gs - ps)))
        return np.array(rows, dtype=np.int64).reshape(-1, 3)

    for name, pred in (("a", pred_a), ("b", pred_b)):
        if len(pred) != len(gold):
            raise ValueError(f"{len(gold)} gold records but {len(pred)} predictions from {name}")
    ca, cb = counts(pred_a), counts(pred_b)

    def f1(c: np.ndarray) -> np.ndarray:  # c: (..., 3) summed counts -> F1
        tp, fp, fn = c[..., 0], c[..., 1], c[..., 2]
        den = 2 * tp + fp + fn
        return np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)

    fa, fb = float(f1(ca.sum(0))), float(f1(cb.sum(0)))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(gold), size=(samples, len(gold)))
    delta = f1(cb[idx].sum(1)) - f1(ca[idx].sum(1))  # (samples,)
    observed = fb - fa
    if observed > 0:
        p = float(np.mean(delta <= 0))
    elif observed < 0:
        p = float(np.mean(delta >= 0))
    else:
        p = 1.0
    lo, hi = np.percentile(delta, [2.5, 97.5])
    return {"f1_a": fa, "f1_b": fb, "delta": observed, "p_value": p,
            "ci95": [float(lo), float(hi)], "samples": samples, "records": len(gold)}


def format_schemas(result: dict) -> str:
    """The schemas as a plain-text table, then the scenario counts."""
    rows = [f"{'schema':<10}{'correct':>9}{'incorrect':>11}{'partial':>9}{'missed':>8}"
            f"{'spurious':>10}{'precision':>11}{'recall':>8}{'f1':>8}"]
    for name, v in result["schemas"].items():
        rows.append(f"{name:<10}{v['correct']:>9}{v['incorrect']:>11}{v['partial']:>9}"
                    f"{v['missed']:>8}{v['spurious']:>10}{v['precision']:>11.4f}"
                    f"{v['recall']:>8.4f}{v['f1']:>8.4f}")
    s = result["scenarios"]
    rows.append("errors: " + ", ".join(f"{k} {s[k]}" for k in SCENARIOS[1:]))
    return "\n".join(rows)


# --- relation extraction: triples (subject, relation, object)

OVERLAP_CLASSES = ("Normal", "EPO", "SEO")
COUNT_BINS = ("0", "1", "2", "3", "4", ">=5")


def triple_set(record: Record, partial: bool = False) -> set[tuple]:
    """A record's triples. Strict: ``(s_start, s_end, relation, o_start, o_end)``, both entity
    spans exact. Partial (WebNLG*): ``(last word of the subject, relation, last word of the
    object)`` compared as text, as the WebNLG* papers score."""
    text, ents = record["text"], record.get("entities", [])
    out: set[tuple] = set()
    for r in record.get("relations", []):
        s, o = ents[r["head"]], ents[r["tail"]]
        if partial:
            out.add((_last_word(text[s["start"]:s["end"]]), r["label"],
                     _last_word(text[o["start"]:o["end"]])))
        else:
            out.add((s["start"], s["end"], r["label"], o["start"], o["end"]))
    return out


def _last_word(mention: str) -> str:
    words = mention.split()
    return words[-1] if words else mention


def overlap_classes(record: Record) -> set[str]:
    """The CopyRE/CasRel classes of a gold record, entities compared by their text: EPO when
    an ordered (subject, object) pair has two or more relations, SEO when, pairs merged, an
    entity takes part in two or more pairs, Normal when neither (a sentence can be EPO and SEO)."""
    text, ents = record["text"], record.get("entities", [])
    pairs: Counter = Counter()
    for r in record.get("relations", []):
        s, o = ents[r["head"]], ents[r["tail"]]
        pairs[(text[s["start"]:s["end"]], text[o["start"]:o["end"]])] += 1
    classes = set()
    if any(n > 1 for n in pairs.values()):
        classes.add("EPO")
    seen: Counter = Counter(e for pair in pairs for e in set(pair))
    if any(n > 1 for n in seen.values()):
        classes.add("SEO")
    return classes or {"Normal"}


def _count_bin(n: int) -> str:
    return str(n) if n < 5 else ">=5"


def _triple_scores(gold: Sequence[Record], pred: Sequence[Record], partial: bool) -> dict:
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    groups: dict[str, Counter] = {}  # "overlap:EPO" / "count:2" -> tp, fp, fn

    def add(name: str, t: int, f: int, n: int) -> None:
        c = groups.setdefault(name, Counter())
        c["tp"] += t
        c["fp"] += f
        c["fn"] += n

    at = 1 if partial else 2  # where the relation label sits in a triple key
    for g, p in zip(gold, pred, strict=True):
        gs, ps = triple_set(g, partial), triple_set(p, partial)
        for x in gs & ps:
            tp[x[at]] += 1
        for x in ps - gs:
            fp[x[at]] += 1
        for x in gs - ps:
            fn[x[at]] += 1
        t, f, n = len(gs & ps), len(ps - gs), len(gs - ps)
        for cls in overlap_classes(g):
            add(f"overlap:{cls}", t, f, n)
        add(f"count:{_count_bin(len(g.get('relations', [])))}", t, f, n)
    names = sorted(set(tp) | set(fp) | set(fn))
    per_label = {lab: _prf(tp[lab], fp[lab], fn[lab]) for lab in names}
    result = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    result["macro_f1"] = sum(v["f1"] for v in per_label.values()) / len(names) if names else 0.0
    result["per_label"] = per_label

    def table(prefix: str, keys: Sequence[str]) -> dict:
        out = {}
        for k in keys:
            c = groups.get(f"{prefix}:{k}")
            if c is not None:
                out[k] = _prf(c["tp"], c["fp"], c["fn"])
                out[k]["sentences"] = 0
        return out

    result["by_overlap"] = table("overlap", OVERLAP_CLASSES)
    result["by_count"] = table("count", COUNT_BINS)
    for g in gold:  # sentences per breakdown row
        for cls in overlap_classes(g):
            result["by_overlap"][cls]["sentences"] += 1
        result["by_count"][_count_bin(len(g.get("relations", [])))]["sentences"] += 1
    return result


def evaluate_relations(gold: Sequence[Record], pred: Sequence[Record]) -> dict:
    """Triple-level micro P/R/F1 for aligned gold/predicted records with ``relations``.

    Top level: strict triples (both entity spans and the relation exact), with ``macro_f1``,
    ``per_label`` (per relation), ``by_overlap`` (Normal / EPO / SEO sentences, see
    :func:`overlap_classes`) and ``by_count`` (sentences with 0, 1, 2, 3, 4, >= 5 gold triples),
    each row with its ``sentences``. ``partial``: the same for last-word triples (WebNLG*).
    ``entities``: the strict entity metrics of :func:`evaluate`. Duplicate triples count once.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold records but {len(pred)} predictions")
    for n, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if g.get("text") is not None and p.get("text") is not None and g["text"] != p["text"]:
            raise ValueError(f"record {n}: gold and prediction texts differ")
    result = _triple_scores(gold, pred, partial=False)
    result["partial"] = _triple_scores(gold, pred, partial=True)
    result["entities"] = evaluate(gold, pred)
    return result


def format_relations(result: dict) -> str:
    """Plain-text tables: per relation, micro and macro, then the partial-match line, the
    breakdowns by overlap class and by triples per sentence, and the entity line."""
    lines = [format_table(result), ""]
    pm = result["partial"]
    lines.append(f"{'partial match':<16}{pm['precision']:>10.4f}{pm['recall']:>10.4f}"
                 f"{pm['f1']:>10.4f}{pm['support']:>9}  (last word of each entity)")
    for name, key in (("overlap class", "by_overlap"), ("triples/sentence", "by_count")):
        lines += ["", f"{name:<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"
                      f"{'sentences':>11}"]
        for k, v in result[key].items():
            lines.append(f"{k:<16}{v['precision']:>10.4f}{v['recall']:>10.4f}{v['f1']:>10.4f}"
                         f"{v['support']:>9}{v['sentences']:>11}")
    e = result["entities"]
    lines += ["", f"{'entities':<16}{e['precision']:>10.4f}{e['recall']:>10.4f}{e['f1']:>10.4f}"
                  f"{e['support']:>9}"]
    return "\n".join(lines)


# --- scoring two files: gold and another system's predictions

def align(gold: Sequence[Record], pred: Sequence[Record], key: str | None = None,
          names: tuple[str, str] = ("gold", "prediction")) -> list[Record]:
    """The predictions in gold's order, paired by the field ``key`` (e.g. ``"id"``) or by text.

    Records with the same text pair in order. A gold record with no partner, or a prediction
    left over, is an error naming the record, its number and text (E114): a comparison that
    silently skipped records would not be one.
    """
    from gpner.errors import DataError

    def field(r: Record) -> Any:
        return cast(dict, r).get(key or "text")  # any field the files carry

    def ident(r: Record, side: str, n: int) -> Any:
        if key is not None and key not in r:
            raise DataError(f"{names[side == 'pred']}: record {n + 1} has no field {key!r} "
                            "(--id-field)", code="E114")
        return json_key(field(r))

    pending: dict[Any, list[int]] = {}
    for n, p in enumerate(pred):
        pending.setdefault(ident(p, "pred", n), []).append(n)
    out = []
    for n, g in enumerate(gold):
        queue = pending.get(ident(g, "gold", n))
        if not queue:
            by = f"{key} {field(g)!r}" if key else "text"
            raise DataError(f"{names[0]}: record {n + 1} ({g['text'][:60]!r}) has no prediction "
                            f"with the same {by} in {names[1]}", code="E114")
        p = pred[queue.pop(0)]
        if key is not None and p["text"] != g["text"]:
            raise DataError(f"{names[0]}: record {n + 1} ({key} {field(g)!r}): the "
                            f"prediction's text differs ({p['text'][:60]!r} against "
                            f"{g['text'][:60]!r})", code="E114")
        out.append(p)
    left = sorted(i for q in pending.values() for i in q)
    if left:
        raise DataError(f"{names[1]}: {len(left)} predictions pair with no gold record, the "
                        f"first record {left[0] + 1} ({pred[left[0]]['text'][:60]!r})",
                        code="E114")
    return out


def json_key(value: Any) -> Any:
    """A hashable form of a JSON value (ids may be numbers, strings or lists)."""
    import json

    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def score_files(gold: str | Path, pred: str | Path, *, gold_format: str | None = None,
                pred_format: str | None = None, id_field: str | None = None,
                encoding: str | None = None, **options: Any) -> tuple[dict, Corpus, Corpus]:
    """Score a prediction file against a gold file, each in any format gpner reads.

    Returns ``(result, gold_corpus, pred_corpus)``: ``result`` as :func:`evaluate` with the
    schemas of :func:`schemas` (or :func:`evaluate_relations` when gold has relations), the
    predictions aligned to gold by ``id_field`` or text (:func:`align`). ``options`` go to both
    readers (``scheme`` for tag files).
    """
    from gpner.data.formats import read_any

    g = read_any(gold, gold_format, encoding=encoding, **options)
    p = read_any(pred, pred_format, encoding=encoding, **options)
    aligned = align(g.records, p.records, id_field, (str(gold), str(pred)))
    if any(r.get("relations") for r in g.records):
        result = evaluate_relations(g.records, aligned)
    else:
        result = evaluate(g.records, aligned)
        result.update(schemas(g.records, aligned))
    result["data"] = g.report.as_dict()
    result["predictions"] = p.report.as_dict()
    return result, g, Corpus(aligned, p.report)


# --- choosing a threshold per label

def best_threshold(candidates: Sequence[tuple[float, bool]], n_gold: int, floor: float,
                   default: float) -> tuple[float, float]:
    """The threshold that maximises one label's strict F1, and that F1, by an exact search over
    the distinct scores (not a grid). ``candidates``: (score, correct) of every span the model
    gives the label above ``floor``; ``n_gold``: the label's gold spans. A span is kept when its
    score is above the threshold; spans of equal score are kept or dropped together. The
    threshold returned is halfway between the lowest kept score and the next lower one (the
    floor below the last), so it keeps exactly the chosen spans; of equal F1s the highest
    threshold (fewest spans) wins. A label with no gold span gets ``default``, raised above its
    highest candidate: any span of it would be a false positive."""
    if n_gold == 0:
        return max([default, *(sc for sc, _ in candidates)]), 0.0
    scores = sorted({sc for sc, _ in candidates}, reverse=True)
    right: dict[float, int] = {}
    wrong: dict[float, int] = {}
    for sc, ok in candidates:
        (right if ok else wrong)[sc] = (right if ok else wrong).get(sc, 0) + 1
    best_f1, best_t = 0.0, max(default, scores[0]) if scores else default
    tp = fp = 0
    for k, sc in enumerate(scores):
        tp += right.get(sc, 0)
        fp += wrong.get(sc, 0)
        f1 = 2 * tp / (2 * tp + fp + (n_gold - tp))
        if f1 > best_f1:
            lower = scores[k + 1] if k + 1 < len(scores) else floor
            best_f1, best_t = f1, (sc + lower) / 2
    return best_t, best_f1
