"""Relation data that names its entities by string only: the entities are located in the text.

* ``casrel`` (WebNLG, NYT as CasRel/PRGC ship them): a JSON array (or JSON lines) of
  ``{"text", "triple_list": [[subject, relation, object], ...]}``.
* ``spo`` (DuIE, CMeIE): JSON lines of ``{"text", "spo_list": [{"subject", "predicate",
  "object", "subject_type", "object_type"}]}``; CMeIE and DuIE 2.0 wrap the object and its type
  as ``{"@value": ...}`` (other slots of a DuIE 2.0 complex object are counted and ignored).

Entities get the source's types as labels (``subject_type``/``object_type``) or, without types,
``entity_label`` (default ``ENTITY``). Locating rule, applied per triple and reported:

1. occurrences of the string in the text; in Latin-script text only whole-word ones (no letter
   or digit glued before or after), unless it occurs only inside words;
2. none: a case-insensitive search (DuIE stores some titles in lower case), counted;
3. still none: the triple is skipped and counted as ``entity string not in text``;
4. several: the subject and object occurrences nearest to each other (the same occurrence
   when the two strings are equal; ties: the earliest), counted as ``ambiguous entity string``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gpner.data.formats._io import expect
from gpner.records import (
    Entity,
    FormatError,
    Record,
    Relation,
    Report,
    finish_record,
)
from gpner.textfiles import iter_json_lines, json_records

ENTITY_LABEL = "ENTITY"


def _glued(c: str) -> bool:
    """A letter or digit of an alphabetic script: a match next to one is inside a word. CJK
    characters are letters to Python but have no word boundaries."""
    return c.isalnum() and ord(c) < 0x2E80


def occurrences(text: str, mention: str) -> tuple[list[int], str]:
    """Start offsets of ``mention`` in ``text`` by the rule above, and how they were found:
    ``"exact"``, ``"inside a word"``, ``"case-insensitive"`` or ``"missing"``."""
    if not mention:
        return [], "missing"
    for hay, needle, how in ((text, mention, "exact"),
                             (text.lower(), mention.lower(), "case-insensitive")):
        if len(hay) != len(text):  # lower() changed lengths (rare scripts): offsets would shift
            continue
        found, k = [], hay.find(needle)
        while k >= 0:
            found.append(k)
            k = hay.find(needle, k + 1)
        if not found:
            continue
        whole = [k for k in found
                 if not (k > 0 and _glued(text[k - 1]) and _glued(text[k]))
                 and not (k + len(needle) < len(text) and _glued(text[k + len(needle)])
                          and _glued(text[k + len(needle) - 1]))]
        if whole:
            return whole, how
        return found, "inside a word" if how == "exact" else how
    return [], "missing"


class Locator:
    """Builds one record's entities and relations from (subject, relation, object) strings."""

    def __init__(self, text: str, report: Report, line: int):
        self.text, self.report, self.line = text, report, line
        self.entities: list[Entity] = []
        self.index: dict[tuple[int, int, str], int] = {}
        self.relations: list[Relation] = []

    def _entity(self, start: int, mention: str, label: str) -> int:
        key = (start, start + len(mention), label)
        if key not in self.index:
            self.index[key] = len(self.entities)
            self.entities.append({"start": key[0], "end": key[1], "label": label})
        return self.index[key]

    def add(self, subject: Any, relation: Any, obj: Any, subject_label: str = ENTITY_LABEL,
            object_label: str = ENTITY_LABEL) -> None:
        rep, line = self.report, self.line
        if not (isinstance(subject, str) and isinstance(obj, str) and isinstance(relation, str)
                and subject and obj and relation):
            rep.problem(line, "bad triple", f"[{subject!r}, {relation!r}, {obj!r}] is not three "
                                            "non-empty strings")
            return
        found = []
        for role, mention in (("subject", subject), ("object", obj)):
            starts, how = occurrences(self.text, mention)
            if not starts:
                rep.problem(line, "entity string not in text",
                            f"{role} {mention!r} of ({subject!r}, {relation!r}, {obj!r})")
                return
            if how != "exact":
                rep.note(line, f"entity located {how}", f"{role} {mention!r}")
            found.append((starts, len(mention)))
        (s_starts, s_len), (o_starts, o_len) = found
        if len(s_starts) > 1 or len(o_starts) > 1:
            rep.note(line, "ambiguous entity string (nearest occurrences used)",
                     f"({subject!r}, {relation!r}, {obj!r}): {len(s_starts)} x {len(o_starts)} "
                     "occurrences")
        s, o = min(((a, b) for a in s_starts for b in o_starts),
                   key=lambda p: (abs(p[0] - p[1]), p[0], p[1]))
        # the text's own spelling (a case-insensitive match differs from the string given)
        s_text, o_text = self.text[s:s + s_len], self.text[o:o + o_len]
        self.relations.append({"head": self._entity(s, s_text, subject_label),
                               "tail": self._entity(o, o_text, object_label), "label": relation})

    def record(self, **extra: Any) -> Record:
        return finish_record(self.text, list(self.entities), self.report, self.line,
                             relations=self.relations, **extra)


def read_casrel(path: Path, report: Report, entity_label: str = ENTITY_LABEL) -> list[Record]:
    records = []
    for line, obj in json_records(path, report.encoding):
        text = expect(obj, "text", str, path, line)
        triples = obj.get("triple_list", [])
        if not isinstance(triples, list):
            raise FormatError(f"{path}:{line}: 'triple_list' should be a list, found "
                              f"{triples!r:.60}")
        loc = Locator(text, report, line)
        for t in triples:
            if isinstance(t, (list, tuple)) and len(t) == 3:
                loc.add(t[0], t[1], t[2], entity_label, entity_label)
            else:
                report.problem(line, "bad triple", f"{t!r:.80} is not [subject, relation, "
                                                   "object]")
        records.append(loc.record(**({"id": obj["id"]} if "id" in obj else {})))
    return records


def _value(x: Any, report: Report, line: int, what: str) -> Any:
    """A DuIE/CMeIE slot: a string, or ``{"@value": str, ...}`` (other keys counted)."""
    if isinstance(x, dict):
        others = [k for k in x if k != "@value"]
        if others:
            report.skipped[f"ignored {what} slots ({', '.join(sorted(others))})"] += 1
        return x.get("@value")
    return x


def read_spo(path: Path, report: Report, entity_label: str = ENTITY_LABEL) -> list[Record]:
    records = []
    for line, obj in iter_json_lines(path, report.encoding):
        text = expect(obj, "text", str, path, line)
        spo = obj.get("spo_list", [])
        if not isinstance(spo, list):
            raise FormatError(f"{path}:{line}: 'spo_list' should be a list, found {spo!r:.60}")
        loc = Locator(text, report, line)
        for t in spo:
            if not isinstance(t, dict):
                report.problem(line, "bad triple", f"{t!r:.80} is not an object")
                continue
            s_type = _value(t.get("subject_type"), report, line, "subject_type")
            o_type = _value(t.get("object_type"), report, line, "object_type")
            loc.add(_value(t.get("subject"), report, line, "subject"), t.get("predicate"),
                    _value(t.get("object"), report, line, "object"),
                    s_type if isinstance(s_type, str) and s_type else entity_label,
                    o_type if isinstance(o_type, str) and o_type else entity_label)
        extra = {k: obj[k] for k in ("id",) if k in obj}
        records.append(loc.record(**extra))
    return records


def sniff(obj: Any) -> str | None:
    if isinstance(obj, dict) and "text" in obj:
        if "triple_list" in obj:
            return "casrel"
        if "spo_list" in obj:
            return "spo"
    return None


def write_casrel(records: list[Record], path: Path) -> None:
    """Triples as strings (positions are lost: the format has none)."""
    from gpner.atomic import atomic_write_text

    out = []
    for r in records:
        ents, text = r["entities"], r["text"]
        mention = [text[e["start"]:e["end"]] for e in ents]
        out.append({"text": text, "triple_list": [[mention[x["head"]], x["label"],
                                                   mention[x["tail"]]]
                                                  for x in r.get("relations", [])]})
    atomic_write_text(path, json.dumps(out, ensure_ascii=False, indent=1) + "\n")
