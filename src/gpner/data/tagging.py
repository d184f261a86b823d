"""Token tag schemes <-> token spans: BIO (IOB2), IOB1, BIOES (BILOU) and BMES (BMEO).

Spans are :class:`~gpner.text.alignment.TokenSpan` (end exclusive). Decoding is lenient but never
silent: a sequence that breaks its scheme (an ``I-`` with no ``B-`` in IOB2, an ``E-`` with
nothing open) is repaired the obvious way (the tag starts an entity) and the repair is reported.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

from gpner.text.alignment import TokenSpan

SCHEMES = ("bio", "iob1", "bioes", "bmes")
# Prefix aliases: BILOU's L/U are BIOES's E/S; BMES's M is I.
_CANON = {"B": "B", "I": "I", "M": "I", "E": "E", "L": "E", "S": "S", "U": "S"}

Problem = Callable[[int, str, str], None]  # (token index, reason, detail)


def split_tag(tag: str) -> tuple[str, str | None]:
    """``"B-PER" -> ("B", "PER")``, ``"O" -> ("O", None)``; accepts ``-`` or ``_`` separators."""
    if tag == "O":
        return "O", None
    if len(tag) > 2 and tag[1] in "-_" and tag[0] in _CANON:
        return _CANON[tag[0]], tag[2:]
    raise ValueError(f"tag {tag!r} is neither 'O' nor PREFIX-LABEL with a prefix in BIMELSU")


def detect_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """Guess the scheme of tag sequences.

    M- tags mean BMES; E-/S- (or L-/U-) mean BIOES; otherwise IOB1 when entities routinely open
    with I- and B- only ever separates two adjacent same-type entities, else BIO (IOB2).
    """
    raw_prefixes: set[str] = set()
    b_after_other = 0  # B-X after O or another type: IOB2 behaviour
    i_opens = 0  # I-X after O or another type: IOB1 behaviour
    for tags in sequences:
        prev: str | None = None
        for tag in tags:
            if tag != "O":
                raw_prefixes.add(tag[0])
            prefix, label = split_tag(tag)
            if prefix == "B" and prev != label:
                b_after_other += 1
            elif prefix == "I" and prev != label:
                i_opens += 1
            prev = label
    if "M" in raw_prefixes:
        return "bmes"
    if raw_prefixes & {"E", "S", "L", "U"}:
        return "bioes"
    if i_opens and not b_after_other:
        return "iob1"
    return "bio"


class _Open:
    """The spans of a tag sequence being decoded: those closed so far and the one still open."""

    def __init__(self) -> None:
        self.spans: list[TokenSpan] = []
        self.start = -1
        self.label: str | None = None

    def close(self, end: int) -> None:
        if self.label is not None:
            self.spans.append(TokenSpan(self.start, end, self.label))
            self.label = None

    def open(self, start: int, label: str | None) -> None:
        self.close(start)
        self.start, self.label = start, label


def tags_to_spans(tags: Sequence[str], scheme: str = "bio",
                  problem: Problem | None = None) -> list[TokenSpan]:
    """Decode one tag sequence into token spans; scheme violations are repaired and reported."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {SCHEMES}")
    report = problem if problem is not None else (lambda i, reason, detail: None)
    state = _Open()
    for i, tag in enumerate(tags):
        prefix, label = split_tag(tag)
        if prefix == "O":
            state.close(i)
        elif prefix == "B":
            state.open(i, label)
        elif prefix == "I" and state.label != label:
            if scheme != "iob1":
                report(i, "I- tag without B-", f"{tag!r} follows "
                       f"{tags[i - 1]!r}" if i else f"{tag!r} starts the sentence")
            state.open(i, label)
        elif prefix == "E":
            if state.label != label:
                report(i, "E- tag without B-", f"{tag!r} does not close an open {label}")
                state.open(i, label)
            state.close(i + 1)
        elif prefix == "S":
            state.open(i, label)
            state.close(i + 1)
    state.close(len(tags))
    return state.spans


def spans_to_tags(length: int, spans: Iterable[tuple[int, int, str]], scheme: str = "bio"
                  ) -> list[str]:
    """Encode non-overlapping token spans ``(start, end, label)`` (end exclusive) as tags;
    overlapping (nested) spans raise ValueError."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {SCHEMES}")
    tags = ["O"] * length
    inside = "M" if scheme == "bmes" else "I"
    prev_end, prev_label = -1, None
    for start, end, label, *_ in sorted(spans):
        if not 0 <= start < end <= length:
            raise ValueError(f"token span [{start}, {end}) is outside a sequence of {length}")
        if any(t != "O" for t in tags[start:end]):
            raise ValueError(f"span [{start}, {end}) {label} overlaps another entity: nested "
                             f"entities cannot be written as {scheme.upper()} tags")
        if scheme in ("bioes", "bmes"):
            if end - start == 1:
                tags[start] = f"S-{label}"
            else:
                tags[start] = f"B-{label}"
                tags[start + 1:end - 1] = [f"{inside}-{label}"] * (end - start - 2)
                tags[end - 1] = f"E-{label}"
        else:
            first = "I" if scheme == "iob1" and not (prev_end == start and prev_label == label) \
                else "B"
            tags[start] = f"{first}-{label}"
            tags[start + 1:end] = [f"I-{label}"] * (end - start - 1)
        prev_end, prev_label = end, label
    return tags
