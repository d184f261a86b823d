"""Records -> training examples: windows with token-level gold spans (and relations), the
length buckets they are batched in, and the collator that turns examples into a batch of CPU
tensors with the task's targets.

Long texts are cut into overlapping windows of at most ``max_length`` tokens (never truncated,
:mod:`gpner.text.windows`); every gold span lies inside some window unless it is wider than the
overlap, which is reported. Everything that cannot be used is counted in a
:class:`~gpner.records.Report`.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from gpner.contracts import Featurizer, Task, Window
from gpner.errors import ArgumentTypeError, DataError
from gpner.model.network import as_tensors
from gpner.records import Record, Report
from gpner.text.alignment import TokenSpan, align_entities
from gpner.text.tokenization import Encoding
from gpner.text.windows import content_size, place_spans, window_bounds


@dataclass
class Example:
    """One training window and its gold: spans in window tokens with label ids, and (relation
    data) the relations between them."""

    window: Window
    spans: list[TokenSpan]  # window-local token indices, label ids
    # relation data: (index of the subject in spans, index of the object, relation id)
    relations: list[tuple[int, int, int]] = field(default_factory=list)
    doc: int = 0  # the record it was cut from
    gold: bool = True  # False: an unlabeled text, which learns from a teacher only
    # distillation: the teachers' targets, rows (K, 4) (label, i, j, prob) in window tokens,
    # and for a relation student the link rows {"heads": (K, 4), "tails": (K, 4)}
    soft: Any = None
    soft_links: Any = None

    def __len__(self) -> int:
        return len(self.window)


def read_data(source: str | Path | Sequence[Record], encoding: str | None = None
              ) -> tuple[list[Record], Report]:
    """Records from a path in any supported format, or a list of records as is."""
    if isinstance(source, (str, Path)):
        from gpner.data.formats import read

        corpus = read(source, encoding=encoding)
        for rule in corpus.report.rules:  # how the file was read: visible before training
            logging.getLogger("gpner").info("rule: %s", rule)
        if not corpus.records:
            raise DataError(f"{source}: no records to train or evaluate on "
                            f"({corpus.report.summary()})", code="E112")
        return corpus.records, corpus.report
    if isinstance(source, dict) or not hasattr(source, "__len__"):
        raise ArgumentTypeError(f"training data should be a path or a list of records, got "
                                f"{type(source).__name__}")
    return list(source), Report("<records>", records=len(source))


def make_examples(records: Sequence[Record], featurizer: Featurizer, labels: Sequence[str],
                  max_length: int, report: Report, misaligned: str = "skip",
                  flat_only: bool = False, stride: int | None = None,
                  relations: Sequence[str] | None = None) -> list[Example]:
    """Encode records into windows with gold spans; problems are counted in ``report``.

    ``flat_only`` (tag heads): overlapping gold spans keep the earliest, longest one and count the
    rest as ``nested span (tag heads cannot represent it)``. ``relations`` (relation labels, for
    relation extraction): each window also gets the relations whose two entities it holds; a
    relation that no window holds whole, or whose entity was skipped, is counted.
    """
    label_id = {lab: k for k, lab in enumerate(labels)}
    rel_id = {lab: k for k, lab in enumerate(relations or ())}
    size = content_size(featurizer, max_length)
    examples: list[Example] = []
    for doc, rec in enumerate(records):
        text = rec["text"]
        enc = featurizer.encode(text)
        spans, links = _gold(rec, doc, enc, label_id, rel_id if relations is not None else None,
                             report, misaligned, flat_only)
        report.records += 1
        report.entities += sum(sp is not None for sp in spans)
        report.relations += len(links)
        placed = [sp is None for sp in spans]  # a skipped entity has no place to be in
        linked = [False] * len(links)
        for start, end in window_bounds(len(enc), size, stride):
            win = featurizer.window(text, enc, start, end)
            local, where = place_spans(spans, win)
            for k in where:
                placed[k] = True
            inside = []
            for n, (h, t, p) in enumerate(links):
                if h in where and t in where:
                    inside.append((where[h], where[t], p))
                    linked[n] = True
            examples.append(Example(win, local, inside, doc=doc))
        for k, ok in enumerate(placed):
            if not ok:
                sp = spans[k]
                assert sp is not None
                report.problem(None, "entity wider than the window overlap",
                               f"record {doc}: {labels[int(sp.label)]} of {sp.end - sp.start} "
                               "tokens; raise max_length")
        for n, ok in enumerate(linked):
            if not ok:
                h, t, p = links[n]
                head, tail = spans[h], spans[t]  # (both placed: _relations keeps no other)
                assert head is not None and tail is not None
                report.problem(None, "relation wider than a window",
                               f"record {doc}: {(relations or [])[p]} between tokens "
                               f"{head.start} and {tail.start}; raise max_length")
    return examples


def _gold(rec: Record, doc: int, enc: Encoding, label_id: dict[str, int],
          rel_id: dict[str, int] | None, report: Report, misaligned: str, flat_only: bool
          ) -> tuple[list[TokenSpan | None], list[tuple[int, int, int]]]:
    """A record's gold spans in text tokens with label ids (None where an entity was skipped:
    relations index this list) and its relations as (span index, span index, relation id)."""
    text = rec["text"]
    known: list[Any] = []
    for e in rec.get("entities", []):
        if e["label"] in label_id:
            known.append(e)
        else:
            known.append(None)
            report.problem(None, "label not in training data",
                           f"record {doc}: {e['label']} {text[e['start']:e['end']]!r}")
    named = align_entities(text, [e for e in known if e is not None], enc, report, misaligned,
                           keep_places=rel_id is not None)
    links = _relations(rec, known, named, rel_id, report, doc) if rel_id is not None else []
    if flat_only:  # tag heads (never with relations: the config refuses them)
        named = _flatten(named, report, doc, text, enc)
    spans: list[TokenSpan | None] = [
        None if sp is None else TokenSpan(sp.start, sp.end, label_id[str(sp.label)])
        for sp in named]
    return spans, links


def _relations(rec: Record, known: list, spans: list, rel_id: dict[str, int], report: Report,
               doc: int) -> list[tuple[int, int, int]]:
    """The record's relations as (span index, span index, relation id); ``known`` has None for
    entities of unknown labels, ``spans`` None for entities that did not align."""
    span_of, k = {}, 0
    for n, e in enumerate(known):  # record entity index -> index in spans
        if e is not None:
            span_of[n] = k
            k += 1
    out = []
    for r in rec.get("relations", []):
        h, t = span_of.get(r["head"]), span_of.get(r["tail"])
        if r["label"] not in rel_id:
            report.problem(None, "relation label not in training data", f"record {doc}: "
                                                                        f"{r['label']}")
        elif h is None or t is None or spans[h] is None or spans[t] is None:
            report.problem(None, "relation on a skipped entity", f"record {doc}: {r['label']}")
        else:
            out.append((h, t, rel_id[r["label"]]))
    return out


def _flatten(spans: list[TokenSpan], report: Report, doc: int, text: str, enc: Encoding
             ) -> list[TokenSpan]:
    """The earliest, then longest, of overlapping spans; the others counted."""
    kept, reach = [], -1
    for sp in sorted(spans, key=lambda s: (s.start, -s.end)):
        if sp.start < reach:
            s, e = enc.offsets[sp.start][0], enc.offsets[sp.end - 1][1]
            report.problem(None, "nested span (tag heads cannot represent it)",
                           f"record {doc}: {sp.label} {text[s:e]!r}")
            continue
        kept.append(sp)
        reach = sp.end
    return kept


def length_buckets(examples: Sequence[Any], batch_size: int, seed: int | None = None,
                   epoch: int = 0) -> list[list[int]]:
    """Index batches of similar length (little padding).

    Training (``seed`` given): shuffle, sort within chunks of 50 batches, shuffle the batches;
    the order depends only on (seed, epoch), so a resumed run sees the same batches.
    Evaluation (``seed=None``): sorted by length, longest first.
    Examples without gold (distillation's unlabeled texts) are batched apart from the others,
    so that a batch either has gold or learns from its teachers alone.
    """
    idx = list(range(len(examples)))
    if seed is None:
        idx.sort(key=lambda k: -len(examples[k]))
        return [idx[k:k + batch_size] for k in range(0, len(idx), batch_size)]
    rng = random.Random(seed * 100003 + epoch)
    rng.shuffle(idx)
    chunk = batch_size * 50
    out: list[list[int]] = []
    groups = [idx]
    if not all(getattr(examples[k], "gold", True) for k in idx):
        groups = [[k for k in idx if examples[k].gold], [k for k in idx if not examples[k].gold]]
    for group in groups:
        for c in range(0, len(group), chunk):
            part = sorted(group[c:c + chunk], key=lambda k: len(examples[k]))
            out.extend(part[k:k + batch_size] for k in range(0, len(part), batch_size))
    rng.shuffle(out)
    return out


class Collator:
    """Examples -> one batch: the featurizer's inputs plus the task's targets, CPU tensors only
    (so a batch can be pinned, moved to any device or exported)."""

    def __init__(self, featurizer: Featurizer, task: Task):
        self.featurizer, self.task = featurizer, task

    def __call__(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        batch = as_tensors(self.featurizer.collate([ex.window for ex in examples]))
        batch.update(self.task.targets([ex.spans for ex in examples], batch,
                                       [ex.relations for ex in examples]))
        if examples and examples[0].soft is not None:  # distillation: teacher rows (P, 5)
            batch["soft"] = _rows([ex.soft for ex in examples])
            batch["gold"] = torch.tensor(all(ex.gold for ex in examples))
            if examples[0].soft_links is not None:
                for kind in ("heads", "tails"):
                    batch[f"soft_{kind}"] = _rows([ex.soft_links[kind] for ex in examples])
        return batch


def _rows(per_example: Sequence[np.ndarray]) -> torch.Tensor:
    """Each example's rows (K, 4) with its batch index first: (P, 5) float32."""
    rows = [np.hstack([np.full((len(r), 1), b), r]) for b, r in enumerate(per_example)]
    return torch.from_numpy(np.vstack(rows).astype(np.float32))


def max_span_width(examples: Sequence[Example]) -> int:
    """Widest gold span in tokens (the learned decoding cap)."""
    return max((sp.end - sp.start for ex in examples for sp in ex.spans), default=1)


def has_overlaps(records: Sequence[Record]) -> bool:
    from gpner.records import is_nested

    return any(is_nested(r) for r in records)
