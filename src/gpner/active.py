"""Active-learning selection (``gpner select``): the texts of a pool worth labelling next.

One forward pass per text gives both its pre-annotation (the model's own decoding) and its
candidate spans (every span scoring above ``floor``, nested), from which a strategy scores the
text; the higher the score, the sooner it is worth labelling. The pool is streamed: only the
``n`` best texts so far are held (a heap), so a pool of any size runs in bounded memory.

Strategies, over a text's candidate spans with probabilities p (calibrated when the model has
maps, :mod:`gpner.calibration`):

* ``uncertainty``: 1 - 2 min |p - 0.5|: the least certain span decides (Prodigy's ``ner.teach``
  asks about the spans nearest 0.5);
* ``margin``: 1 - the smallest margin at a position: between the two likeliest labels of one
  span, or between the span and no entity (|2p - 1|) when one label claims it;
* ``entropy``: the sum of the spans' binary entropies (bits): the total uncertainty of the text;
* ``random``: a seeded draw per text (the baseline every strategy should beat).

A text without candidates scores 0 (random aside): the model is sure it holds nothing.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

from gpner.records import Entity, Record

STRATEGIES = ("uncertainty", "margin", "entropy", "random")


def text_score(candidates: Sequence[Entity], by: str, draw: float = 0.0) -> float:
    """How much labelling this text is worth under strategy ``by`` (``draw``: its random
    number, for ``random``)."""
    if by == "random":
        return draw
    if not candidates:
        return 0.0
    if by == "uncertainty":
        return 1.0 - 2.0 * min(abs(e["prob"] - 0.5) for e in candidates)
    if by == "entropy":
        return sum(_entropy(e["prob"]) for e in candidates)
    if by == "margin":
        at: dict[tuple[int, int], list[float]] = {}
        for e in candidates:
            at.setdefault((e["start"], e["end"]), []).append(e["prob"])
        margins = []
        for probs in at.values():
            probs.sort(reverse=True)
            rival = max(probs[1] if len(probs) > 1 else 0.0, 1.0 - probs[0])
            margins.append(abs(probs[0] - rival))
        return 1.0 - min(margins)
    raise ValueError(f"by must be one of {', '.join(STRATEGIES)}, got {by!r}")


def _entropy(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


@dataclass(order=True)
class Chosen:
    """A text in the running best: ordered by score, then earlier input first."""

    score: float
    order: int  # -line: of equal scores, the earlier line ranks higher
    line: int = field(compare=False)
    record: Record = field(compare=False)
    fields: dict[str, Any] | None = field(compare=False, default=None)


class Best:
    """The ``n`` highest-scoring items seen (a min-heap of size ``n``)."""

    def __init__(self, n: int):
        self.n = n
        self.heap: list[Chosen] = []

    def offer(self, item: Chosen) -> None:
        if len(self.heap) < self.n:
            heapq.heappush(self.heap, item)
        elif item > self.heap[0]:
            heapq.heapreplace(self.heap, item)

    def ranked(self) -> list[Chosen]:
        return sorted(self.heap, reverse=True)


@dataclass
class SelectReport:
    """What the pool held: texts read, excluded as already labelled, bad input lines."""

    read: int = 0
    excluded: int = 0
    scored: int = 0


def select(predictor: Any, items: Iterable[tuple[int, str, dict[str, Any] | None]], n: int,
           by: str = "uncertainty", floor: float = -5.0, seed: int = 0,
           exclude: set[str] | frozenset[str] = frozenset(), batch_size: int = 32,
           report: SelectReport | None = None) -> list[Chosen]:
    """The ``n`` texts of ``items`` ((line, text, the input's other fields)) worth labelling
    first under ``by``, best first, each with its pre-annotation (the model's decoding)."""
    if by not in STRATEGIES:
        raise ValueError(f"by must be one of {', '.join(STRATEGIES)}, got {by!r}")
    report = report or SelectReport()
    best = Best(n)
    for line, fields, record, candidates, draw in _predicted(predictor, items, floor, exclude,
                                                             batch_size, report, seed):
        best.offer(Chosen(text_score(candidates, by, draw), -line, line, record, fields))
        report.scored += 1
    return best.ranked()


def _predicted(predictor: Any, items: Iterable[tuple[int, str, dict[str, Any] | None]],
               floor: float, exclude: set[str] | frozenset[str], batch_size: int,
               report: SelectReport, seed: int
               ) -> Iterator[tuple[int, dict[str, Any] | None, Record, list[Entity], float]]:
    """Per text (in the order its windows finish): its line, fields, pre-annotation and
    candidate spans, from one forward pass (the windows decoded at the lower of ``floor`` and
    the model's threshold), and its random draw (drawn in input order: a seed gives one
    sample of the pool)."""
    threshold, per = predictor.cut(None)
    low = min(floor, threshold)
    flat = bool(predictor.config.decode.flat)
    keep = per if per is not None else threshold
    meta: dict[int, tuple[int, dict[str, Any] | None, float]] = {}
    rng = random.Random(seed)

    def texts() -> Iterator[str]:
        k = 0
        for line, text, fields in items:
            report.read += 1
            if text in exclude:
                report.excluded += 1
                continue
            meta[k] = (line, fields, rng.random())
            k += 1
            yield text

    def out(doc: Any) -> tuple[int, dict[str, Any] | None, Record, list[Entity], float]:
        line, fields, draw = meta.pop(doc.index)
        record = predictor.record(doc, flat, keep)
        cands = predictor.record(doc, False, floor)["entities"]
        return line, fields, record, cands, draw

    from gpner.prediction.predictor import _chunks

    # the buffers and batches gpner predict makes (longest windows first, batch_size each), so
    # a pre-annotation is the record gpner predict gives with the same batch size
    buffer: list[Any] = []
    for doc, win in predictor.featurize(texts()):
        if win is None:
            yield out(doc)
            continue
        buffer.append((doc, win))
        if len(buffer) >= 16 * batch_size:
            for chunk in _chunks(buffer, batch_size):
                for done in predictor.run_windows(chunk, low):
                    yield out(done)
            buffer.clear()
    for chunk in _chunks(buffer, batch_size):
        for done in predictor.run_windows(chunk, low):
            yield out(done)


def label_studio_task(c: Chosen, model_version: str, by: str) -> dict[str, Any]:
    """A Label Studio import task with gpner's pre-annotation as a prediction: a ``labels``
    result per entity (nested ones apart) with its prob as score, the text's selection score
    as the prediction's score."""
    r = c.record
    result: list[dict[str, Any]] = [
        {"id": f"e{k}", "from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": e["start"], "end": e["end"], "text": r["text"][e["start"]:e["end"]],
                   "labels": [e["label"]]}, "score": e["prob"]}
        for k, e in enumerate(r["entities"])]
    result += [{"type": "relation", "from_id": f"e{x['head']}", "to_id": f"e{x['tail']}",
                "direction": "right", "labels": [x["label"]], "score": x["prob"]}
               for x in r.get("relations") or []]
    data = {**(c.fields or {}), "text": r["text"]}
    data.pop("entities", None)
    data.pop("relations", None)
    return {"data": data, "predictions": [{"model_version": model_version, "score": c.score,
                                           "result": result}],
            "meta": {"gpner_select": {"by": by, "score": c.score, "line": c.line}}}
