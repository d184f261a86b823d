"""Records -> training windows with token-level gold spans, and length-bucketed batches.

Long texts are cut into overlapping windows of at most ``max_length`` tokens (never truncated);
every gold span lies inside some window unless it is wider than the overlap, which is reported.
Everything that cannot be used is counted in a :class:`~gpner.records.Report`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator, Sequence

from gpner.alignment import align_entities
from gpner.features import Window
from gpner.records import Record, Report


def window_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """Token ranges covering [0, n): windows of ``size`` overlapping by half a window."""
    if n <= size:
        return [(0, n)]
    step = max(1, size // 2)
    bounds, start = [], 0
    while True:
        end = min(start + size, n)
        bounds.append((start, end))
        if end == n:
            return bounds
        start += step


@dataclass
class Example:
    window: Window
    spans: list[tuple[int, int, int]]  # (type, i, j): window-local token indices, j inclusive
    doc: int  # index of the source record

    def __len__(self) -> int:
        return len(self.window["offsets"])


def make_examples(records: Sequence[Record], featurizer, labels: Sequence[str],
                  max_length: int, report: Report, misaligned: str = "skip",
                  flat_only: bool = False) -> list[Example]:
    """Encode records into windows with gold spans; problems are counted in ``report``.

    ``flat_only`` (tag heads): overlapping gold spans keep the earliest, longest one and count the
    rest as ``nested span (tag heads cannot represent it)``.
    """
    label_id = {lab: k for k, lab in enumerate(labels)}
    size = max_length - featurizer.num_special
    if size < 2:
        raise ValueError(f"max_length {max_length} leaves no room for tokens")
    examples: list[Example] = []
    for doc, rec in enumerate(records):
        text = rec["text"]
        enc = featurizer.encode(text)
        known = []
        for e in rec.get("entities", []):
            if e["label"] in label_id:
                known.append(e)
            else:
                report.problem(None, "label not in training data",
                               f"record {doc}: {e['label']} {text[e['start']:e['end']]!r}")
        spans = align_entities(text, known, enc, report, misaligned)
        if flat_only:
            spans = _flatten(spans, report, doc, text, enc)
        report.records += 1
        report.entities += len(spans)
        bounds = window_bounds(len(enc), size)
        placed = [False] * len(spans)
        for start, end in bounds:
            win = featurizer.window(text, enc, start, end)
            local = []
            for k, (i, j, lab) in enumerate(spans):
                if start <= i and j < end:
                    local.append((label_id[lab], i - start + win["prefix"],
                                  j - start + win["prefix"]))
                    placed[k] = True
            examples.append(Example(win, local, doc))
        for k, ok in enumerate(placed):
            if not ok:
                i, j, lab = spans[k]
                report.problem(None, "entity wider than the window overlap",
                               f"record {doc}: {lab} of {j - i + 1} tokens; raise max_length")
    return examples


def _flatten(spans, report: Report, doc: int, text: str, enc) -> list:
    kept, reach = [], -1
    for i, j, lab in sorted(spans, key=lambda s: (s[0], -s[1])):
        if i <= reach:
            s, e = enc.offsets[i][0], enc.offsets[j][1]
            report.problem(None, "nested span (tag heads cannot represent it)",
                           f"record {doc}: {lab} {text[s:e]!r}")
            continue
        kept.append((i, j, lab))
        reach = j
    return kept


def batches(examples: Sequence[Example], batch_size: int, seed: int | None = None,
            epoch: int = 0) -> list[list[int]]:
    """Index batches of similar length (little padding).

    Training (``seed`` given): shuffle, sort within chunks of 50 batches, shuffle the batches;
    the order depends only on (seed, epoch), so a resumed run sees the same batches.
    Evaluation (``seed=None``): sorted by length, longest first.
    """
    idx = list(range(len(examples)))
    if seed is None:
        idx.sort(key=lambda k: -len(examples[k]))
        return [idx[k:k + batch_size] for k in range(0, len(idx), batch_size)]
    rng = random.Random(seed * 100003 + epoch)
    rng.shuffle(idx)
    chunk = batch_size * 50
    out: list[list[int]] = []
    for c in range(0, len(idx), chunk):
        part = sorted(idx[c:c + chunk], key=lambda k: len(examples[k]))
        out.extend(part[k:k + batch_size] for k in range(0, len(part), batch_size))
    rng.shuffle(out)
    return out


def max_span_width(examples: Sequence[Example]) -> int:
    """Widest gold span in tokens (the learned decoding cap)."""
    return max((j - i + 1 for ex in examples for _, i, j in ex.spans), default=1)


def has_overlaps(records: Sequence[Record]) -> bool:
    from gpner.records import is_nested

    return any(is_nested(r) for r in records)


def iter_windows(texts: Sequence[str], featurizer, max_length: int
                 ) -> Iterator[tuple[int, Window, object]]:
    """(text index, window, full encoding) for prediction."""
    size = max_length - featurizer.num_special
    for n, text in enumerate(texts):
        enc = featurizer.encode(text)
        for start, end in window_bounds(len(enc), size):
            yield n, featurizer.window(text, enc, start, end), enc
