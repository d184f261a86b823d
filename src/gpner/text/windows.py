"""Windows over texts of any length, and every rule about spans and window edges.

A text is encoded whole, then cut into windows of at most ``size`` content tokens that start
every ``stride`` tokens (half a window by default): nothing is ever truncated, and a span of up
to ``size - stride`` tokens lies whole inside some window wherever it is.

* cut: :func:`window_bounds` (the token ranges; a featurizer makes each a
  :class:`~gpner.contracts.Window` of arrays);
* place (training): :func:`place_spans` moves gold spans into each window that holds them whole;
* the edge rule (prediction): a span touching a window's inner edge may be a piece of a longer
  one that the edge cut, so it is dropped when another window holds it with context on both
  sides (:func:`uncut`);
* merge (prediction): :class:`MergedSpans` gathers a text's windows into text tokens, one span
  per (label, start, end) with its best score, and the triples whose two spans both survived.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from gpner.contracts import Window
from gpner.text.alignment import TokenSpan

if TYPE_CHECKING:
    from gpner.contracts import Featurizer, WindowSpans

SpanKey = tuple[int, int, int]  # (label id, start, end) in text tokens
LinkKey = tuple[int, int, int, int, int]  # (s_start, s_end, o_start, o_end, relation id)


def window_bounds(n: int, size: int, stride: int | None = None) -> list[tuple[int, int]]:
    """Token ranges covering [0, n): windows of ``size`` tokens starting every ``stride`` tokens
    (default half a window). A span of up to ``size - stride`` tokens lies whole inside some
    window wherever it is."""
    step = size // 2 if stride is None else stride
    if not 1 <= step <= size:
        raise ValueError(f"stride must be between 1 and the window's {size} tokens, got {stride}")
    if n <= size:
        return [(0, n)]
    bounds, start = [], 0
    while True:
        end = min(start + size, n)
        bounds.append((start, end))
        if end == n:
            return bounds
        start += step


def content_size(featurizer: Featurizer, max_length: int) -> int:
    """Content tokens per window: ``max_length`` less the model's special tokens."""
    size = max_length - featurizer.num_special
    if size < 2:
        raise ValueError(f"max_length {max_length} leaves no room for tokens")
    return size


# ---------------------------------------------------------------- place (training)

def place_spans(spans: Sequence[TokenSpan | None], win: Window
                ) -> tuple[list[TokenSpan], dict[int, int]]:
    """The gold spans (text tokens; None for a skipped one) that ``win`` holds whole, moved to
    window tokens, and where each went: ``{index in spans: index in the window's list}``."""
    shift = -win.shift  # text token -> window token
    local: list[TokenSpan] = []
    where: dict[int, int] = {}
    for k, sp in enumerate(spans):
        if sp is not None and win.start <= sp.start and sp.end <= win.end:
            where[k] = len(local)
            local.append(TokenSpan(sp.start + shift, sp.end + shift, sp.label))
    return local, where


# ---------------------------------------------------------------- the edge rule (prediction)

def uncut(spans: Sequence[TokenSpan], win: Window, bounds: Sequence[tuple[int, int]],
          n: int) -> list[TokenSpan]:
    """A window's spans (text tokens) less those touching one of its inner edges that another
    window holds with context on both sides: such a span may be a piece of a longer one cut by
    the edge, and the other window sees it whole. ``bounds`` (sorted by start) are the text's
    windows, ``n`` its length in tokens."""
    if len(bounds) < 2:
        return list(spans)
    out = []
    for sp in spans:
        cut = (sp.start == win.start > 0) or (sp.end == win.end < n)
        if not (cut and held_elsewhere(sp.start, sp.end, win, bounds, n)):
            out.append(sp)
    return out


def held_elsewhere(i: int, j: int, win: Window, bounds: Sequence[tuple[int, int]], n: int
                   ) -> bool:
    """Whether a window other than ``win`` holds tokens [i, j) with context on both sides (or
    the text's own ends). Only windows starting at or before i can: scanned back from the last
    of them while they still reach i, so a long text's thousands of windows cost nothing."""
    k = bisect_right(bounds, (i, n + 1)) - 1
    while k >= 0 and bounds[k][1] > i:
        s, e = bounds[k]
        if (s, e) != (win.start, win.end) and (s < i or s == 0) and (j < e or e == n):
            return True
        k -= 1
    return False


# ---------------------------------------------------------------- merge (prediction)

def spans_from_rows(rows: np.ndarray, v: np.ndarray) -> list[TokenSpan]:
    """rows (K, 3) of (label, start, end), scores (K,) -> spans sorted by (start, end, label).
    Sorted on the arrays, and only then made into objects: a barely trained model can have
    thousands of candidates per text."""
    if not len(rows):
        return []
    order = np.lexsort((rows[:, 0], rows[:, 2], rows[:, 1]))
    return [TokenSpan(i, j, c, s) for (c, i, j), s in zip(rows[order].tolist(),
                                                          v[order].tolist(), strict=True)]


def merge_best(found: dict[SpanKey, float], spans: Sequence[TokenSpan], shift: int) -> None:
    """Add one window's spans to a text's ``found``, moved by ``shift`` tokens into the text's
    coordinates; a span found by several overlapping windows keeps its best score."""
    for sp in spans:
        key = (int(sp.label), sp.start + shift, sp.end + shift)
        old = found.get(key)
        if old is None or sp.score > old:
            found[key] = sp.score


@dataclass
class MergedSpans:
    """A text's spans gathered from its windows, in text tokens.

    A text with one window keeps that window's arrays as they are (``rows``): no edge cuts a
    span there, and a barely trained model's thousands of candidates cost no object each. A
    text with several windows merges them span by span into ``found`` (one score per
    (label, start, end), the best), after the edge rule. ``links`` holds the best score of each
    triple whose two spans both survived.
    """

    found: dict[SpanKey, float] = field(default_factory=dict)
    rows: tuple[np.ndarray, np.ndarray] | None = None  # (K, 3) (label, start, end), (K,)
    links: dict[LinkKey, float] = field(default_factory=dict)

    def add(self, decoded: WindowSpans, win: Window, bounds: Sequence[tuple[int, int]],
            n: int) -> None:
        """One window's decoded spans and triples; ``bounds`` are all the text's windows and
        ``n`` its length in tokens."""
        shift = win.shift
        rows = decoded.rows + np.array([0, shift, shift], dtype=decoded.rows.dtype)
        if len(bounds) < 2:
            self.rows = (rows, decoded.scores.astype(np.float64))
            alive = None  # the text's only window: every span survives
        else:
            kept = uncut(spans_from_rows(rows, decoded.scores), win, bounds, n)
            merge_best(self.found, kept, 0)
            alive = {(sp.start, sp.end) for sp in kept}
        for t in decoded.triples:  # a triple counts where both its spans do
            key = (t.s_start + shift, t.s_end + shift, t.o_start + shift, t.o_end + shift,
                   t.label)
            if alive is not None and (key[:2] not in alive or key[2:4] not in alive):
                continue
            if t.score > self.links.get(key, float("-inf")):
                self.links[key] = t.score

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All spans as rows (K, 3) int64 of (label, start, end) and scores (K,) float64."""
        if self.rows is not None:
            return self.rows
        found = self.found
        rows = np.array(list(found), dtype=np.int64).reshape(-1, 3)
        return rows, np.fromiter(found.values(), dtype=np.float64, count=len(found))
