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


class SchemeUnclear(ValueError):
    """The tags fit two schemes about equally well: the caller names the option that decides."""


def _opens(sequences: Iterable[Sequence[str]]) -> tuple[set[str], int, int, int, int]:
    """(raw prefixes, entities opened by B- after O or another type, by I- after O or another
    type, B- entities closed by E-, B- entities left open) over all sequences."""
    raw_prefixes: set[str] = set()
    b_opens = i_opens = closed = unclosed = 0
    for tags in sequences:
        prev: str | None = None  # the previous token's label (None after O)
        b_open = False  # a B- entity is open and has not met its E- yet
        for tag in tags:
            if tag != "O":
                raw_prefixes.add(tag[0])
            prefix, label = split_tag(tag)
            if b_open:
                if prefix == "E" and label == prev:
                    closed += 1
                    b_open = False
                elif not (prefix == "I" and label == prev):
                    unclosed += 1
                    b_open = False
            if prefix == "B":
                b_opens += prev != label
                b_open = True
            elif prefix == "I" and prev != label:
                i_opens += 1
            prev = label
        unclosed += b_open
    return raw_prefixes, b_opens, i_opens, closed, unclosed


def detect_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """The scheme of tag sequences (see :func:`decide_scheme`)."""
    return decide_scheme(sequences)[0]


def decide_scheme(sequences: Iterable[Sequence[str]]) -> tuple[str, str]:
    """The scheme of tag sequences, each decided by its own evidence, and why.

    M- tags mean BMES and E-/S- (or L-/U-) BIOES, unless most B- entities never meet their E-
    (a BIO file with a stray E-: mixed, refused). Between BIO (IOB2) and IOB1: in BIO every
    entity opens with B-, in IOB1 with I- (B- only separates two adjacent entities of one type),
    so the rule is which opening most entities use; the minority are violations, repaired and
    reported when decoding. When neither is at least four times the other the sequences are
    refused (:class:`SchemeUnclear`; the caller names the option that decides), unless there are
    fewer than 20 entities to go by: then BIO, the common scheme, and the reason says so.
    """
    raw, b_opens, i_opens, closed, unclosed = _opens(sequences)
    stray = ""
    if raw & {"M", "E", "S", "L", "U"}:
        if unclosed <= closed:
            scheme = "bmes" if "M" in raw else "bioes"
            return scheme, f"{'M-' if scheme == 'bmes' else 'E-/S-'} tags" + (
                f"; {unclosed} B- entities never closed by E-" if unclosed else "")
        if 4 * closed > unclosed:
            raise SchemeUnclear(
                f"the tags mix schemes: E-/S- tags say BIOES, but {unclosed} of "
                f"{unclosed + closed} B- entities never close with E- (as in BIO)")
        # nearly every B- entity runs on without E-: BIO or IOB1 with a few stray E-/S- tags
        stray = f"; {closed} B- entities closed by E-: stray E-/S- tags"
    counts = f"{b_opens} entities open with B-, {i_opens} with I-{stray}"
    if not i_opens or i_opens < b_opens and 4 * i_opens <= b_opens:
        return "bio", counts
    if not b_opens or 4 * b_opens <= i_opens:
        return "iob1", counts
    if b_opens + i_opens < 20:
        return "bio", f"{counts}: too few to tell, BIO assumed"
    raise SchemeUnclear(f"{b_opens} entities open with B- (as in BIO/IOB2) and {i_opens} with "
                        "I- (as in IOB1): too close to tell the scheme")


class _Decoder:
    """Decodes one tag sequence: the spans closed so far, the one still open, and where an
    entity that must end with E- (BIOES, BMES) began with B-."""

    def __init__(self, tags: Sequence[str], scheme: str, report: Problem) -> None:
        self.tags, self.scheme, self.report = tags, scheme, report
        self.closing = scheme in ("bioes", "bmes")  # entities end with E- (or are one S-)
        self.spans: list[TokenSpan] = []
        self.start = -1
        self.label: str | None = None
        self.b_at = -1  # where the open entity began with B-, in a closing scheme

    def close(self, end: int) -> None:
        if self.label is not None:
            self.spans.append(TokenSpan(self.start, end, self.label))
            self.label = None

    def open(self, start: int, label: str | None) -> None:
        self.close(start)
        self.start, self.label = start, label

    def unclosed(self, i: int) -> None:
        """An entity begun with B- meets ``tags[i]`` (or the end) before its E-."""
        if self.b_at >= 0 and self.label is not None:
            follow = repr(self.tags[i]) if i < len(self.tags) else "the end of the sentence"
            self.report(self.b_at, "B- tag not closed by E-",
                        f"{self.tags[self.b_at]!r} at token {self.b_at + 1} is followed by "
                        f"{follow}")
        self.b_at = -1

    def step(self, i: int, tag: str) -> None:
        prefix, label = split_tag(tag)
        if self.closing and self.b_at >= 0 and not (prefix in ("I", "E")
                                                      and self.label == label):
            self.unclosed(i)
        previous = f"follows {self.tags[i - 1]!r}" if i else "starts the sentence"
        if prefix == "O":
            self.close(i)
        elif prefix == "B":
            if self.scheme == "iob1" and self.label != label:
                self.report(i, "B- tag not between two entities (IOB1)", f"{tag!r} {previous}")
            self.open(i, label)
            self.b_at = i if self.closing else -1
        elif prefix == "I" and self.label != label:
            if self.scheme != "iob1":
                self.report(i, "I- tag without B-", f"{tag!r} {previous}")
            self.open(i, label)
        elif prefix in ("E", "S") and not self.closing:
            self.report(i, "E-/S- tag in a BIO file", f"{tag!r}: read as " + (
                "a one-token entity" if prefix == "S" else "the last token of an entity"))
            self.stray(i, prefix, label)
        elif prefix == "E":
            if self.label != label:
                self.report(i, "E- tag without B-", f"{tag!r} does not close an open {label}")
                self.open(i, label)
            self.close(i + 1)
            self.b_at = -1
        elif prefix == "S":
            self.open(i, label)
            self.close(i + 1)

    def stray(self, i: int, prefix: str, label: str | None) -> None:
        """An E- or S- tag in a BIO/IOB1 sequence, read as BIOES would read it."""
        if prefix == "S" or self.label != label:
            self.open(i, label)
        self.close(i + 1)

    def finish(self) -> list[TokenSpan]:
        if self.closing and self.b_at >= 0:
            self.unclosed(len(self.tags))
        self.close(len(self.tags))
        return self.spans


def tags_to_spans(tags: Sequence[str], scheme: str = "bio",
                  problem: Problem | None = None) -> list[TokenSpan]:
    """Decode one tag sequence into token spans; scheme violations are repaired the obvious way
    and each reported with its kind and token: an ``I-`` opening an entity (BIO, BIOES), an
    ``E-`` with nothing open, a ``B-`` never closed by ``E-`` (BIOES, BMES: the entity ends
    where the next tag shows), a ``B-`` after ``O`` or another type (IOB1)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {SCHEMES}")
    decoder = _Decoder(tags, scheme, problem if problem is not None else
                       (lambda i, reason, detail: None))
    for i, tag in enumerate(tags):
        decoder.step(i, tag)
    return decoder.finish()


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
