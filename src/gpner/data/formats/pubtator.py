"""PubTator: the biomedical exchange format (NCBI-disease, BC5CDR, BioRED, GNormPlus, ...).

One document per block, blocks separated by a blank line::

    227508|t|Naloxone reverses the antihypertensive effect of clonidine.
    227508|a|In unanesthetized, spontaneously hypertensive rats ...
    227508<TAB>0<TAB>8<TAB>Naloxone<TAB>Chemical<TAB>D009270
    227508<TAB>49<TAB>58<TAB>clonidine<TAB>Chemical<TAB>D003000
    227508<TAB>CID<TAB>D008750<TAB>D007022

* the text is the title, a space and the abstract; mention offsets count characters of it,
  end exclusive (no ``|a|`` line: the title alone);
* a mention line is ``PMID, start, end, mention, type[, database id[, more columns]]``; the id
  (``D009270``, ``OMIM:176100``, ``-1``; composite mentions ``D01|D02``) is kept as the entity's
  ``db_id``, further columns (BC5CDR's individual mentions of a composite) as ``columns``;
* a relation line is ``PMID, type, id1, id2[, more columns]`` (BC5CDR ``CID``, BioRED
  ``Association ... Novel``): a document-level relation between database ids, read as relations
  between every mention of ``id1`` and every mention of ``id2`` (the mention pairs a span model
  learns from; the writer folds them back into one line per id pair). Extra columns ride along
  on each relation as ``columns``.

Each record has ``id`` (the PMID) and ``title_end`` (where the title ends), so the writer gives
the same title and abstract back. Mentions whose text disagrees with the document, lines of
another document and relation ids with no mention are counted with their line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

from gpner.atomic import atomic_write_text
from gpner.errors import DataError
from gpner.records import FormatError, Record, Report, check_entity, finish_record
from gpner.textfiles import text_lines

HEAD = re.compile(r"^([^|\t]+)\|([ta])\|(.*)$", re.S)
ID_SEP = re.compile(r"[|,;]")


def is_pubtator(lines: list[str]) -> bool:
    """The first non-blank line is ``PMID|t|title``, and every non-blank line is a title, an
    abstract, or a tab-separated line of that document."""
    rows = [x for x in lines if x.strip()]
    if not rows or not (m := HEAD.match(rows[0])) or m.group(2) != "t":
        return False
    return all(HEAD.match(x) or x.count("\t") >= 3 for x in rows)


def _ids(value: str) -> list[str]:
    """The database ids of a mention (composite mentions list several)."""
    return [x for x in (v.strip() for v in ID_SEP.split(value)) if x and x != "-1"]


class _Doc:
    """One document being read: its text, mention rows and relation rows."""

    def __init__(self, pmid: str, line: int, title: str) -> None:
        self.pmid, self.line, self.title = pmid, line, title
        self.abstract: str | None = None
        self.mentions: list[tuple[int, list[str]]] = []
        self.links: list[tuple[int, list[str]]] = []

    @property
    def text(self) -> str:
        return self.title if self.abstract is None else f"{self.title} {self.abstract}"

    def record(self, report: Report) -> Record:
        text = self.text
        entities: list[Any] = []
        for line, cols in self.mentions:
            start, end = int(cols[1]), int(cols[2])
            label = cols[4] if len(cols) > 4 else ""
            e = check_entity(text, start, end, label, cols[3], report, line)
            if e is not None:
                if len(cols) > 5:
                    e["db_id"] = cols[5]  # type: ignore[typeddict-unknown-key]  # a passthrough
                if len(cols) > 6:
                    e["columns"] = cols[6:]  # type: ignore[typeddict-unknown-key]
            entities.append(e)
        by_id: dict[str, list[int]] = {}
        for k, e in enumerate(entities):
            for i in _ids(e.get("db_id", "")) if e else ():
                by_id.setdefault(i, []).append(k)
        relations: list[dict[str, Any]] = []
        for line, cols in self.links:
            label, a, b = cols[1], cols[2], cols[3]
            missing = [x for x in (a, b) if x not in by_id]
            if missing:
                report.problem(line, "relation id without a mention",
                               f"{label} {a} -> {b}: no mention of {', '.join(missing)} in "
                               f"document {self.pmid}")
                continue
            extra: dict[str, Any] = {"db_ids": [a, b]}
            if len(cols) > 4:
                extra["columns"] = cols[4:]
            relations.extend({"head": h, "tail": t, "label": label, **extra}
                             for h in by_id[a] for t in by_id[b] if h != t)
        return finish_record(text, entities, report, self.line,
                             relations if self.links else None, id=self.pmid,
                             title_end=len(self.title))


def read(path: Path, report: Report) -> list[Record]:
    records: list[Record] = []
    doc: _Doc | None = None
    for line, raw in enumerate(text_lines(path, report.encoding), 1):
        raw = raw.lstrip("\ufeff")
        if not raw.strip():
            continue
        head = HEAD.match(raw)
        if head:
            pmid, kind, body = head.groups()
            if kind == "t":
                if doc is not None:
                    records.append(doc.record(report))
                doc = _Doc(pmid, line, body)
            elif doc is None or doc.pmid != pmid or doc.abstract is not None:
                raise FormatError(f"{path}:{line}: an abstract of {pmid} without its title line "
                                  f"({pmid}|t|...) just above", code="E107")
            else:
                doc.abstract = body
            continue
        cols = raw.rstrip("\r").split("\t")
        if doc is None or len(cols) < 4:
            raise FormatError(f"{path}:{line}: expected PMID|t|title, PMID|a|abstract, a mention "
                              f"or a relation line, found {raw[:80]!r}", code="E107")
        if cols[0] != doc.pmid:
            report.problem(line, "line of another document",
                           f"{cols[0]} inside document {doc.pmid}: {raw[:60]!r}")
            continue
        if cols[1].strip().isdigit() and cols[2].strip().isdigit():
            if len(cols) < 5:
                report.problem(line, "mention without a type", f"{raw[:60]!r}")
                continue
            doc.mentions.append((line, cols))
        else:
            doc.links.append((line, cols))
    if doc is not None:
        records.append(doc.record(report))
    return records


def write(records: Iterable[Record], path: Path) -> None:
    """Write PubTator blocks; a record without ``title_end`` is written as a title alone.
    Entities without a ``db_id`` that take part in a relation get ``gpner:N`` ids."""
    out: list[str] = []
    for n, r in enumerate(records):
        text = r["text"]
        if "\n" in text or "\r" in text:
            raise DataError(f"record {n} ({text[:40]!r}): PubTator holds one line of title and "
                            "one of abstract; the text has a line break", code="E110")
        fields: dict[str, Any] = dict(r)  # with the fields this format passes through
        pmid = str(fields.get("id", n))
        cut = fields.get("title_end")
        if isinstance(cut, int) and 0 <= cut < len(text) and text[cut] == " ":
            out.append(f"{pmid}|t|{text[:cut]}\n{pmid}|a|{text[cut + 1:]}\n")
        else:
            out.append(f"{pmid}|t|{text}\n")
        ids = []
        for k, ent in enumerate(r["entities"]):
            e: dict[str, Any] = dict(ent)
            db_id = e.get("db_id")
            ids.append(str(db_id) if db_id else f"gpner:{k}")
            cols = [pmid, str(e["start"]), str(e["end"]), text[e["start"]:e["end"]], e["label"]]
            if db_id or any(k in (x["head"], x["tail"]) for x in r.get("relations") or ()):
                cols.append(ids[k])
            cols.extend(str(c) for c in e.get("columns", ()))
            out.append("\t".join(cols) + "\n")
        seen: set[tuple[str, ...]] = set()
        for relation in r.get("relations") or ():
            rel: dict[str, Any] = dict(relation)
            pair = rel.get("db_ids") or (ids[rel["head"]], ids[rel["tail"]])
            key = (rel["label"], *map(str, pair), *(str(c) for c in rel.get("columns", ())))
            if key not in seen:
                seen.add(key)
                out.append("\t".join((pmid, *key)) + "\n")
        out.append("\n")
    atomic_write_text(path, "".join(out))
