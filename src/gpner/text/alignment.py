"""Character spans <-> token spans, through the offsets of an
:class:`~gpner.text.tokenization.Encoding`.

A gold span aligns when its start is the start of a token and its end is the end of a token.
A boundary inside a token (``"Berlin"`` annotated inside the single token ``"Berliner"``) cannot be
represented by a span model over those tokens: it is counted and reported, and either skipped or
expanded to the enclosing tokens, never silently dropped. A predicted token span maps back to
exact offsets in the original string.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Iterable, NamedTuple

from gpner.records import Entity, Report
from gpner.text.tokenization import Encoding


class TokenSpan(NamedTuple):
    """Tokens ``start .. end - 1`` labelled ``label``: the end is exclusive, like character
    offsets, everywhere in gpner. The GlobalPointer cell of a span is ``(start, end - 1)``.

    ``label`` is a label name at the edges (readers, tag sequences) and a label id inside a
    model; ``score`` is the span logit of a prediction.
    """

    start: int
    end: int
    label: int | str
    score: float = 0.0


class Alignment:
    """Maps between character offsets and token indices of one encoding."""

    def __init__(self, encoding: Encoding):
        self.encoding = encoding
        self.starts: dict[int, int] = {}  # char offset -> first token starting there
        self.ends: dict[int, int] = {}  # char offset -> last token ending there
        self._tok: list[int] = []  # spannable token indices, by position
        for t, ((s, e), ok) in enumerate(zip(encoding.offsets, encoding.spannable, strict=True)):
            if ok:
                self.starts.setdefault(s, t)
                self.ends[e] = t
                self._tok.append(t)
        self._tok_starts = [encoding.offsets[t][0] for t in self._tok]

    def char_to_token(self, start: int, end: int) -> tuple[int, int] | None:
        """Token range ``(first, end)`` (end exclusive) whose characters are exactly
        ``[start, end)``, or None."""
        i, j = self.starts.get(start), self.ends.get(end)
        if i is None or j is None or i > j:
            return None
        return i, j + 1

    def enclosing(self, start: int, end: int) -> tuple[int, int] | None:
        """Smallest token range (end exclusive) covering ``[start, end)``, for expanding
        misaligned spans."""
        a = bisect_right(self._tok_starts, start) - 1
        b = bisect_right(self._tok_starts, end - 1) - 1
        if b < 0:
            return None
        if a < 0 or self.encoding.offsets[self._tok[a]][1] <= start:
            a += 1  # start lies before the first token or in whitespace after token a
        if a > b:
            return None
        return self._tok[a], self._tok[b] + 1

    def token_to_char(self, start: int, end: int) -> tuple[int, int]:
        """Character span of tokens ``start .. end - 1``."""
        return self.encoding.offsets[start][0], self.encoding.offsets[end - 1][1]


def align_entities(text: str, entities: Iterable[Entity], encoding: Encoding,
                   report: Report | None = None, misaligned: str = "skip",
                   line: int | None = None, keep_places: bool = False) -> list[TokenSpan]:
    """Token spans (label names) for gold entities; misaligned spans are counted in ``report``.

    ``misaligned``: ``"skip"`` leaves them out of the returned spans, ``"expand"`` snaps them to
    the enclosing tokens; both count them under ``"boundary inside a token"``.
    ``keep_places``: a skipped entity gives None in its place (relations index the list).
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
                if keep_places:
                    # only under keep_places, whose one caller (relations) reads the Nones;
                    # typing the list Optional would burden every other caller
                    out.append(None)  # type: ignore[arg-type]
                continue
            span = near
        out.append(TokenSpan(span[0], span[1], e["label"]))
    return out
