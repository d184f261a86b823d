"""Character spans <-> token spans, through the offsets of an :class:`~gpner.tokenization.Encoding`.

A gold span aligns when its start is the start of a token and its end is the end of a token.
A boundary inside a token (``"Berlin"`` annotated inside the single token ``"Berliner"``) cannot be
represented by a span model over those tokens: it is counted and reported, and either skipped or
expanded to the enclosing tokens, never silently dropped. A predicted token span maps back to
exact offsets in the original string.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Iterable

from gpner.records import Entity, Report
from gpner.tokenization import Encoding

TokenSpan = tuple[int, int, str]  # (first token, last token inclusive, label)


class Alignment:
    """Maps between character offsets and token indices of one encoding."""

    def __init__(self, encoding: Encoding):
        self.encoding = encoding
        self.starts: dict[int, int] = {}  # char offset -> first token starting there
        self.ends: dict[int, int] = {}  # char offset -> last token ending there
        self._tok: list[int] = []  # spannable token indices, by position
        for t, ((s, e), ok) in enumerate(zip(encoding.offsets, encoding.spannable)):
            if ok:
                self.starts.setdefault(s, t)
                self.ends[e] = t
                self._tok.append(t)
        self._tok_starts = [encoding.offsets[t][0] for t in self._tok]

    def char_to_token(self, start: int, end: int) -> tuple[int, int] | None:
        """Token span ``(i, j)`` (inclusive) whose characters are exactly ``[start, end)``."""
        i, j = self.starts.get(start), self.ends.get(end)
        if i is None or j is None or i > j:
            return None
        return i, j

    def enclosing(self, start: int, end: int) -> tuple[int, int] | None:
        """Smallest token span covering ``[start, end)`` (for expanding misaligned spans)."""
        a = bisect_right(self._tok_starts, start) - 1
        b = bisect_right(self._tok_starts, end - 1) - 1
        if b < 0:
            return None
        if a < 0 or self.encoding.offsets[self._tok[a]][1] <= start:
            a += 1  # start lies before the first token or in whitespace after token a
        if a > b:
            return None
        return self._tok[a], self._tok[b]

    def token_to_char(self, i: int, j: int) -> tuple[int, int]:
        """Character span of tokens ``i..j`` inclusive."""
        return self.encoding.offsets[i][0], self.encoding.offsets[j][1]


def align_entities(text: str, entities: Iterable[Entity], encoding: Encoding,
                   report: Report | None = None, misaligned: str = "skip",
                   line: int | None = None) -> list[TokenSpan]:
    """Token spans for gold entities; misaligned spans are counted in ``report``.

    ``misaligned``: ``"skip"`` leaves them out of the returned spans, ``"expand"`` snaps them to
    the enclosing tokens; both count them under ``"boundary inside a token"``.
    """
    if misaligned not in ("skip", "expand"):
        raise ValueError(f"misaligned must be 'skip' or 'expand', got {misaligned!r}")
    al = Alignment(encoding)
    out: list[TokenSpan] = []
    for e in entities:
        span = al.char_to_token(e["start"], e["end"])
        if span is None:
            near = al.enclosing(e["start"], e["end"])
            if report is not None:
                shown = ("" if near is None else
                         f"; tokens cover {text[slice(*al.token_to_char(*near))]!r}")
                report.problem(line, "boundary inside a token",
                               f"{e['label']} [{e['start']}, {e['end']}) "
                               f"{text[e['start']:e['end']]!r}{shown}")
            if misaligned == "skip" or near is None:
                continue
            span = near
        out.append((span[0], span[1], e["label"]))
    return out
