"""The one record every reader produces and every writer consumes.

An annotated text is ``{"text": str, "entities": [{"start", "end", "label"}]}`` with character
offsets into ``text``, ``end`` exclusive, so ``text[start:end]`` is the mention. Readers normalise
inclusive-end formats at their boundary; nothing downstream sees another convention.

Predicted spans add ``"score"`` (the raw GlobalPointer logit), ``"prob"`` (``sigmoid(2 * score)``,
or the calibrated probability where ``gpner calibrate`` fitted the model's maps) and ``"text"``
(the mention).

A record of relation data adds ``"relations": [{"head": i, "tail": j, "label"}]``: ``head`` and
``tail`` index the record's ``entities`` (subject and object of a triple). Predicted relations add
``"score"`` and ``"prob"``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence, TypedDict, TypeGuard

from gpner.errors import DataError

log = logging.getLogger("gpner")


class Entity(TypedDict, total=False):
    """A span of the record's text: character offsets, end exclusive."""

    start: int  # character offset, inclusive
    end: int  # character offset, exclusive
    label: str
    score: float  # predictions only: the span logit
    prob: float  # predictions only: sigmoid(2 * score), or calibrated (gpner.calibration)
    text: str  # predictions (and optional on input): text[start:end]


class Relation(TypedDict, total=False):
    """A typed link from one of the record's entities (head) to another (tail)."""

    head: int  # index of the subject in the record's entities
    tail: int  # index of the object
    label: str
    score: float  # predictions only: the smallest of the triple's four GPLinker scores
    prob: float  # predictions only: sigmoid(2 * score)


class Record(TypedDict, total=False):
    """An annotated (or predicted) text: what every reader gives and every writer takes."""

    text: str
    entities: list[Entity]
    relations: list[Relation]
    id: Any


# input that cannot be read at all (the message names file, line and value); the old name
FormatError = DataError


@dataclass
class Report:
    """What a reader saw: counts of records and entities kept, and of everything skipped.

    Problems are counted by reason; the first ``max_messages`` are kept verbatim (``file:line:
    message``) and logged, so a user can find the offending value.
    """

    source: str
    records: int = 0
    entities: int = 0
    relations: int = 0
    skipped: Counter = field(default_factory=Counter)
    # data kept but read by a rule (an entity located by its string): counted, never raised
    notes: Counter = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)
    # file-level rules a reader applied (a header row skipped, glued digits taken out, the tag
    # scheme it detected), one sentence each: what `gpner convert` shows beside the preview
    rules: list[str] = field(default_factory=list)
    max_messages: int = 20
    strict: bool = False  # raise on the first problem instead of counting it
    encoding: str | None = None  # of the files read (None: UTF-8, a BOM dropped)

    def problem(self, line: int | None, reason: str, detail: str) -> None:
        """Count one skipped/repaired item under ``reason`` and keep its message."""
        self.skipped[reason] += 1
        where = f"{self.source}:{line}" if line is not None else self.source
        msg = f"{where}: {reason}: {detail}"
        if self.strict:
            raise DataError(msg, code="E108")
        if len(self.messages) < self.max_messages:
            self.messages.append(msg)
            log.warning(msg)

    def note(self, line: int | None, reason: str, detail: str) -> None:
        """Count one item read by a rule (kept, not skipped) and keep its message."""
        self.notes[reason] += 1
        if len(self.messages) < self.max_messages:
            where = f"{self.source}:{line}" if line is not None else self.source
            self.messages.append(f"{where}: {reason}: {detail}")

    def rule(self, line: int | None, reason: str, detail: str, count: int = 0) -> None:
        """Say once a file-level rule the reader applied (a header skipped, digits taken out,
        the scheme it detected), counting ``count`` items it touched under ``reason``."""
        if count:
            self.notes[reason] += count
        where = f"{self.source}:{line}" if line is not None else self.source
        self.rules.append(f"{where}: {detail}")
        log.debug("%s: %s", where, detail)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        text = f"{self.source}: {self.records} records, {self.entities} entities"
        if self.relations:
            text += f", {self.relations} relations"
        if self.skipped:
            parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
            text += f"; problems: {parts}"
        if self.notes:
            parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.notes.items()))
            text += f"; read by rule: {parts}"
        return text

    def as_dict(self) -> dict:
        return {"source": self.source, "records": self.records, "entities": self.entities,
                **({"relations": self.relations} if self.relations else {}),
                "skipped": dict(self.skipped),
                **({"notes": dict(self.notes)} if self.notes else {}),
                **({"rules": list(self.rules)} if self.rules else {}),
                "messages": list(self.messages)}


@dataclass
class Corpus:
    """Records read from one source, with the report of what was skipped."""

    records: list[Record]
    report: Report

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __getitem__(self, i):
        return self.records[i]


def is_int(x: Any) -> TypeGuard[int]:
    """An int that is not a bool (JSON true would pass ``isinstance(x, int)``)."""
    return isinstance(x, int) and not isinstance(x, bool)


def check_entity(text: str, start: Any, end: Any, label: Any, mention: str | None,
                 report: Report, line: int | None) -> Entity | None:
    """Validate one span against its text; return the entity or count why it was skipped.

    ``end`` is exclusive. ``mention``, when the format carries one, must equal
    ``text[start:end]``.
    """
    if not isinstance(label, str) or not label:
        report.problem(line, "bad label", f"label {label!r} is not a non-empty string")
        return None
    if not (is_int(start) and is_int(end)):
        report.problem(line, "bad offsets",
                       f"{label} offsets ({start!r}, {end!r}) are not integers")
        return None
    if not 0 <= start < end <= len(text):
        report.problem(line, "offsets out of range",
                       f"{label} [{start}, {end}) in a text of {len(text)} characters")
        return None
    if mention is not None and text[start:end] != mention:
        report.problem(line, "mention mismatch",
                       f"{label} [{start}, {end}) is {text[start:end]!r} in the text, "
                       f"annotation says {mention!r}")
        return None
    return {"start": start, "end": end, "label": label}


def finish_record(text: str, entities: Sequence[Entity | None], report: Report,
                  line: int | None, relations: Sequence[Mapping[str, Any]] | None = None,
                  **extra: Any) -> Record:
    """Build a record: drop exact duplicate spans (counted), sort by position, update counts.

    ``relations`` (relation data) index ``entities`` as given, where a skipped entity may be left
    as ``None``: a relation on one is counted and dropped, indices follow the sort, a duplicate
    entity's relations move to the copy that is kept, and duplicate relations are counted once.
    The record has ``relations`` whenever ``relations`` is not None.
    """
    seen: dict[tuple[int, int, str], int] = {}
    kept: list[Entity] = []
    where: list[int | None] = []  # given index -> index in kept
    for e in entities:
        if e is None:
            where.append(None)
            continue
        key = (e["start"], e["end"], e["label"])
        if key in seen:
            report.problem(line, "duplicate entity", f"{e['label']} [{e['start']}, {e['end']})")
            where.append(seen[key])
            continue
        seen[key] = len(kept)
        where.append(len(kept))
        kept.append(e)
    order = sorted(range(len(kept)), key=lambda k: (kept[k]["start"], kept[k]["end"],
                                                   kept[k]["label"]))
    rank = {old: new for new, old in enumerate(order)}
    kept = [kept[k] for k in order]
    report.records += 1
    report.entities += len(kept)
    record: Record = {"text": text, "entities": kept}
    if relations is not None:
        record["relations"] = _remap_relations(relations, where, rank, kept, text, report, line)
        report.relations += len(record["relations"])
    # the input's other fields (id, meta, ...) ride along; a TypedDict cannot say "and any
    # other key", so Record lists only the ones gpner reads
    record.update(extra)  # type: ignore[typeddict-item]
    return record


def _remap_relations(relations: Sequence[Mapping[str, Any]], where: list[int | None],
                     rank: dict[int, int],
                     kept: list[Entity], text: str, report: Report, line: int | None
                     ) -> list[Relation]:
    out: list[Relation] = []
    seen: set[tuple[int, int, str]] = set()
    for r in relations:
        label, h_at, t_at = r.get("label"), r.get("head"), r.get("tail")
        if not isinstance(label, str) or not label:
            report.problem(line, "bad relation", f"label {label!r} is not a non-empty string")
            continue
        ends = (h_at, t_at)
        if not (is_int(h_at) and is_int(t_at)):
            report.problem(line, "bad relation", f"{label}: head/tail {ends!r} are not integers")
            continue
        if not (0 <= h_at < len(where) and 0 <= t_at < len(where)):
            report.problem(line, "bad relation",
                           f"{label}: head/tail {ends} outside the {len(where)} entities")
            continue
        head, tail = where[h_at], where[t_at]
        if head is None or tail is None:
            report.problem(line, "relation on a skipped entity",
                           f"{label} ({ends[0]} -> {ends[1]})")
            continue
        key = (rank[head], rank[tail], label)
        if key in seen:
            h, t = kept[key[0]], kept[key[1]]
            report.problem(line, "duplicate relation",
                           f"{text[h['start']:h['end']]!r} {label} {text[t['start']:t['end']]!r}")
            continue
        seen.add(key)
        rel: Relation = {"head": key[0], "tail": key[1], "label": label}
        # a format's own fields of a relation (PubTator's database ids) ride along
        rel.update({k: v for k, v in r.items() if k not in rel})  # type: ignore[typeddict-item]
        out.append(rel)
    out.sort(key=lambda r: (r["head"], r["tail"], r["label"]))
    return out


def is_nested(record: Record) -> bool:
    """True if any two entities of the record overlap."""
    reach = -1
    for start, end in sorted((e["start"], e["end"]) for e in record["entities"]):
        if start < reach:
            return True
        reach = max(reach, end)
    return False
