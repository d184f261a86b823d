"""Token-level JSON: the layout most nested-NER research data ships in (ACE, GENIA, KBP, W2NER,
SpERT, ...).

One object per line (or a JSON array of them)::

    {"tokens": ["Barack", "Obama", "visited", "Paris"],
     "entity_mentions": [{"start": 0, "end": 2, "entity_type": "PER"}]}

* tokens under ``tokens`` (or ``sentence``, W2NER's key);
* entities under ``entity_mentions``, ``entities`` or ``ner``; each gives its tokens as
  ``start``/``end`` (``end`` exclusive, as these data sets ship) or ``index`` (the list of token
  indices, W2NER; a gap in it is a discontinuous entity: counted, not read); its type under
  ``type``, ``entity_type`` or ``label``;
* relations (SpERT) under ``relations``: ``{"head": i, "tail": j, "type"}`` indexing the entities;
* or a tag per token (the Hugging Face ``datasets`` export: ``{"tokens", "ner_tags"}``, also
  ``tags``/``labels``): strings in any scheme (decided from the whole file, as for column
  files), or integers, whose names are not in the file: ``tag_names`` gives them in id order
  (``O,B-PER,I-PER,...``, the dataset's ``features["ner_tags"].feature.names``); without it the
  file is refused, never read with made-up labels.

The text is the tokens joined by script (no space next to CJK characters, one space elsewhere;
``token_sep`` overrides); offsets are characters of that text, as everywhere in gpner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpner.data.formats._io import expect, join_tokens, refuse_unknown_spans
from gpner.data.tagging import SchemeUnclear, decide_scheme, split_tag, tags_to_spans
from gpner.records import (
    FormatError,
    Record,
    Report,
    check_entity,
    finish_record,
    is_int,
)
from gpner.textfiles import json_records

TOKEN_KEYS = ("tokens", "sentence")
ENTITY_KEYS = ("entity_mentions", "entities", "ner")
TAG_KEYS = ("ner_tags", "tags", "labels", "ner_labels", "bio_tags")
TYPE_KEYS = ("type", "entity_type", "label")
KNOWN = (*TOKEN_KEYS, *ENTITY_KEYS, *TAG_KEYS, "relations", "id", "doc_key", "sent_id",
         "orig_id")


def sniff(obj: Any) -> bool:
    """True for a token-level record: a token list and no character text."""
    return (isinstance(obj, dict) and "text" not in obj
            and any(isinstance(obj.get(k), list) for k in TOKEN_KEYS)
            and (any(k in obj for k in ENTITY_KEYS)
                 or any(isinstance(obj.get(k), list) for k in TAG_KEYS)))


def _first(obj: dict, keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for k in keys:
        if k in obj:
            return k, obj[k]
    return None, None


def read(path: Path, report: Report, token_sep: str | None = None, scheme: str | None = None,
         tag_names: str | list[str] | None = None) -> list[Record]:
    rows = json_records(path, report.encoding)
    names = tag_names.split(",") if isinstance(tag_names, str) else tag_names
    tagged = [_tags(obj, names, path, line) for line, obj in rows]
    if scheme is None and any(tagged):
        try:
            scheme, why = decide_scheme(t for t in tagged if t)
        except SchemeUnclear as exc:
            raise FormatError(f"{path}: {exc}; pass --scheme-in (bio, iob1, bioes, bmes)",
                              code="E104") from None
        report.rule(None, "tag scheme", f"tags per token; tag scheme {scheme} (detected: "
                    f"{why}; --scheme-in to override)")
    records = []
    for (line, obj), tags in zip(rows, tagged, strict=True):
        key, tokens = _first(obj if isinstance(obj, dict) else {}, TOKEN_KEYS)
        if key is None:
            expect(obj, "tokens", list, path, line)  # names what is missing
            continue  # (never reached: expect raised)
        expect(obj, key, list, path, line)
        if not all(isinstance(t, str) for t in tokens):
            bad = next(t for t in tokens if not isinstance(t, str))
            raise FormatError(f"{path}:{line}: {key!r} should be a list of strings, holds "
                              f"{bad!r:.40}")
        refuse_unknown_spans(obj, KNOWN, path, line, "tokens/sentence and entity_mentions, "
                             "entities, ner or ner_tags")
        text, starts = join_tokens(tokens, token_sep)
        ends = [s + len(t) for s, t in zip(starts, tokens, strict=True)]
        entities: list = []
        if tags:
            def problem(i: int, reason: str, detail: str, line: int = line) -> None:
                report.problem(line, reason, f"token {i + 1}: {detail}")

            entities = [check_entity(text, starts[sp.start], ends[sp.end - 1], str(sp.label),
                                     None, report, line)
                        for sp in tags_to_spans(tags, scheme or "bio", problem)]
        ekey, raw = _first(obj, ENTITY_KEYS)
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise FormatError(f"{path}:{line}: {ekey!r} should be a list, found {raw!r:.60}")
        for ent in raw:
            entities.append(_entity(ent, text, starts, ends, report, line))
        relations = None
        if isinstance(obj.get("relations"), list):
            relations = [{"head": r.get("head"), "tail": r.get("tail"),
                          "label": _first(r, TYPE_KEYS)[1]} if isinstance(r, dict)
                         else {"label": None} for r in obj["relations"]]
        extra = {"id": obj["id"]} if "id" in obj else {}
        records.append(finish_record(text, entities, report, line, relations=relations, **extra))
    return records


def _tags(obj: Any, names: list[str] | None, path: Path, line: int) -> list[str] | None:
    """The record's tag per token (``ner_tags``, ...), as tag strings; None if it has none."""
    if not isinstance(obj, dict):
        return None
    key, tags = next(((k, obj[k]) for k in TAG_KEYS if isinstance(obj.get(k), list)),
                     (None, None))
    if key is None or tags is None:
        return None
    _, tokens = _first(obj, TOKEN_KEYS)
    if isinstance(tokens, list) and len(tags) != len(tokens):
        raise FormatError(f"{path}:{line}: {len(tags)} {key} for {len(tokens)} tokens",
                          code="E107")
    if tags and all(is_int(t) for t in tags):
        if names is None:
            raise FormatError(
                f"{path}:{line}: {key!r} holds integers (a Hugging Face ClassLabel export): the "
                "tag names are not in the file; pass --tag-names with them in id order (e.g. "
                "O,B-PER,I-PER,B-ORG,I-ORG,B-LOC,I-LOC,B-MISC,I-MISC; the dataset's "
                f"features['{key}'].feature.names)", code="E104")
        bad = [t for t in tags if not 0 <= t < len(names)]
        if bad:
            raise FormatError(f"{path}:{line}: tag id {bad[0]} in {key!r}, but --tag-names "
                              f"names {len(names)} tags", code="E107")
        tags = [names[t] for t in tags]
    for t in tags:
        if not isinstance(t, str):
            raise FormatError(f"{path}:{line}: {key!r} holds {t!r:.40}, not a tag", code="E107")
        try:
            split_tag(t)
        except ValueError as exc:
            raise FormatError(f"{path}:{line}: {key!r}: {exc}", code="E107") from None
    return tags


def _entity(ent: Any, text: str, starts: list[int], ends: list[int], report: Report,
            line: int) -> Any:
    if not isinstance(ent, dict):
        report.problem(line, "bad entity", f"{ent!r:.60} is not an object")
        return None
    label = _first(ent, TYPE_KEYS)[1]
    if "index" in ent:
        index = ent["index"]
        if not (isinstance(index, list) and index and all(is_int(i) for i in index)):
            report.problem(line, "bad offsets", f"{label}: index {index!r:.60}")
            return None
        first, last = min(index), max(index)
        if sorted(index) != list(range(first, last + 1)):
            report.problem(line, "discontinuous span", f"{label}: tokens {index}")
            return None
        start, end = first, last + 1
    else:
        start, end = ent.get("start"), ent.get("end")
        if start is None or end is None:
            raise FormatError(f"{report.source}:{line}: an entity with keys {sorted(ent)}; "
                              "token-level entities need start and end (exclusive token "
                              "indices) or index (a list of token indices)", code="E106")
    if not (is_int(start) and is_int(end)):
        report.problem(line, "bad offsets", f"{label} tokens ({start!r}, {end!r}) are not "
                       "integers")
        return None
    if not 0 <= start < end <= len(starts):
        report.problem(line, "offsets out of range",
                       f"{label} tokens [{start}, {end}) in a sentence of {len(starts)} tokens")
        return None
    return check_entity(text, starts[start], ends[end - 1], label, None, report, line)

