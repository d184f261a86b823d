"""Prodigy JSON lines and spaCy ``DocBin`` files.

**prodigy**: ``{"text", "spans": [{"start", "end", "label", "text"?}], "answer"}`` (character
offsets, ``end`` exclusive). Records the annotator rejected or ignored (``answer`` other than
``accept``) are counted and not read.

**spacy**: a ``.spacy`` file (``DocBin``, what ``spacy convert`` writes): each document's
``ents`` and every span group (``doc.spans``, where spaCy keeps overlapping spans) become
entities. Needs spaCy (the 'spacy' extra). Loading reads msgpack, never pickles.
"""

from __future__ import annotations

from pathlib import Path

from gpner.data.formats._io import expect, listed, refuse_unknown_spans
from gpner.errors import MissingDependency
from gpner.records import Entity, FormatError, Record, Report, check_entity, finish_record
from gpner.textfiles import iter_json_lines

KNOWN = ("text", "spans", "tokens", "relations", "meta", "_input_hash", "_task_hash")


def sniff(obj: object) -> bool:
    spans = obj.get("spans") if isinstance(obj, dict) else None
    return (isinstance(obj, dict) and isinstance(obj.get("text"), str)
            and isinstance(spans, list) and bool(spans) and isinstance(spans[0], dict)
            and "start" in spans[0] and "label" in spans[0])


def read_prodigy(path: Path, report: Report) -> list[Record]:
    records = []
    for line, obj in iter_json_lines(path, report.encoding):
        text = expect(obj, "text", str, path, line)
        answer = obj.get("answer", "accept")
        if answer != "accept":
            report.skipped[f"answer {answer}"] += 1
            continue
        spans = listed(obj, "spans", path, line)
        refuse_unknown_spans(obj, KNOWN, path, line, "spans")
        entities: list[Entity | None] = []
        for s in spans:
            if isinstance(s, dict):
                entities.append(check_entity(text, s.get("start"), s.get("end"), s.get("label"),
                                             s.get("text"), report, line))
            else:
                report.problem(line, "bad entity", f"{s!r:.60} is not an object")
        records.append(finish_record(text, entities, report, line))
    return records


def read_docbin(path: Path, report: Report) -> list[Record]:
    try:
        import spacy
        from spacy.tokens import DocBin
    except ImportError:
        raise MissingDependency(f"{path}: reading spaCy DocBin files needs spaCy: pip install "
                                "'gpner[spacy]'") from None
    try:
        docs = list(DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab))
    except Exception as exc:  # msgpack/zlib errors of a damaged file
        raise FormatError(f"{path}: not a readable spaCy DocBin file ({type(exc).__name__}: "
                          f"{exc})") from None
    records = []
    for number, doc in enumerate(docs, 1):
        # ents and span groups often repeat a span: one copy of each
        spans = {(s.start_char, s.end_char, s.label_): None for s in
                 [*doc.ents, *(s for group in doc.spans.values() for s in group)]}
        entities = [check_entity(doc.text, a, b, lab, None, report, number)
                    for a, b, lab in spans]
        records.append(finish_record(doc.text, entities, report, number))
    return records
