"""Our own format: one JSON record per line, ``{"text", "entities": [{"start", "end", "label"}]}``,
and for relation data ``"relations": [{"head", "tail", "label"}]`` indexing ``entities``.

A line without ``entities`` is an unlabelled text (input for prediction). An entity may carry
``"text"``; it must then equal ``text[start:end]``. Every other field of a record, an entity or a
relation (``doc_id``, ``source``, a ``note``, PubTator's ``db_id``) is passed through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from gpner.atomic import atomic_write_text
from gpner.data.formats._io import expect, refuse_unknown_spans
from gpner.records import (
    Corpus,
    Entity,
    FormatError,
    Record,
    Report,
    check_entity,
    finish_record,
)
from gpner.textfiles import iter_json_lines, json_line

EXTRA_KEYS = ("id", "meta")
KNOWN = ("text", "entities", "relations", *EXTRA_KEYS)


def read(path: Path, report: Report) -> list[Record]:
    records = []
    for line, obj in iter_json_lines(path, report.encoding):
        text = expect(obj, "text", str, path, line)
        refuse_unknown_spans(obj, KNOWN, path, line, "entities and relations")
        raw = obj.get("entities", [])
        if not isinstance(raw, list):
            raise FormatError(f"{path}:{line}: 'entities' should be a list, found {raw!r:.60}")
        # one per given entity, None where skipped: relations index this list
        entities: list[Entity | None] = []
        for ent in raw:
            if not isinstance(ent, dict):
                report.problem(line, "bad entity", f"{ent!r} is not an object")
                entities.append(None)
                continue
            if not {"start", "end", "label"} & set(ent):
                raise FormatError(f"{path}:{line}: an entity with keys {sorted(ent)}; gpner's "
                                  "JSON lines entities have start, end (character offsets, end "
                                  "exclusive) and label", code="E106")
            e = check_entity(text, ent.get("start"), ent.get("end"), ent.get("label"),
                             ent.get("text"), report, line)
            if e is not None:  # the entity's own fields ride along; its text is checked above
                e.update({k: v for k, v in ent.items()  # type: ignore[typeddict-item]
                          if k not in e and k != "text"})
            entities.append(e)
        relations = obj.get("relations")
        if relations is not None and not isinstance(relations, list):
            raise FormatError(f"{path}:{line}: 'relations' should be a list, found "
                              f"{relations!r:.60}")
        if relations is not None:
            relations = [r if isinstance(r, dict) else {"label": None} for r in relations]
        extra = {k: v for k, v in obj.items() if k not in ("text", "entities", "relations")}
        records.append(finish_record(text, entities, report, line, relations=relations,
                                     **extra))
    return records


def dumps(record: Record) -> str:
    """One JSON line; entities keep any prediction fields (score, prob, text)."""
    return json_line(record)


def write(records: Iterable[Record] | Corpus, path: Path) -> None:
    atomic_write_text(path, "".join(dumps(r) + "\n" for r in records))
