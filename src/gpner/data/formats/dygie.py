"""DyGIE / DyGIE++ JSON: the layout most span-based IE research data ships in (SciERC, ACE05,
GENIA, ChemProt as DyGIE++ prepares them).

One document per line::

    {"doc_key": "X96-1059", "sentences": [["We", "present", "a", "parser"], ["It", "works"]],
     "ner": [[[3, 3, "Method"]], [[4, 4, "Generic"]]],
     "relations": [[], []], "clusters": [[[3, 3], [4, 4]]]}

* token indices count over the whole document (not the sentence) and both ends are inclusive;
* ``ner[i]`` and ``relations[i]`` belong to sentence ``i``; a relation is ``[s1, e1, s2, e2,
  label]``, head span then tail span, each an entity of that sentence;
* ``clusters`` (coreference) are lists of spans across sentences.

``unit="document"`` (the default) makes one record per document, sentences joined by a newline
(each sentence's tokens joined by script, as for token-level JSON), and passes ``clusters``
through as character spans ``[[start, end], ...]`` (end exclusive); ``unit="sentence"`` makes
one record per sentence, which cannot hold cross-sentence clusters: they are counted as dropped.
``doc_key`` becomes the record's ``id``; other plain fields (``dataset``) ride along; other
token-indexed fields (``events``, ``predicted_ner``) are counted as not read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, cast

from gpner.atomic import atomic_write_text
from gpner.data.formats._io import join_tokens
from gpner.errors import DataError
from gpner.records import FormatError, Record, Report, finish_record, is_int
from gpner.text.tokenization import is_cjk
from gpner.textfiles import json_line, json_records

SPAN_KEYS = ("sentences", "ner", "relations", "clusters", "doc_key")
UNITS = ("document", "sentence")


def sniff(obj: Any) -> bool:
    """A DyGIE document: ``sentences`` as a list of token lists, and ``ner``."""
    sents = obj.get("sentences") if isinstance(obj, dict) else None
    return (isinstance(sents, list) and "ner" in obj
            and all(isinstance(s, list) for s in sents[:3]))


class _Sentence:
    """One sentence of a document: its text, where each token starts, and its token range."""

    def __init__(self, tokens: list[str], first: int) -> None:
        self.text, self.starts = join_tokens(tokens)
        self.tokens, self.first = tokens, first

    def chars(self, s: int, e: int) -> tuple[int, int] | None:
        """Document token span ``[s, e]`` (inclusive) -> character span of this sentence."""
        if not (self.first <= s <= e < self.first + len(self.tokens)):
            return None
        return self.starts[s - self.first], self.starts[e - self.first] + len(
            self.tokens[e - self.first])


def _document(obj: dict, path: Path, line: int, report: Report, unit: str) -> list[Record]:
    sents = obj["sentences"]
    ner, rels = obj.get("ner") or [], obj.get("relations") or []
    sentences, first = [], 0
    for k, toks in enumerate(sents):
        if not isinstance(toks, list) or not all(isinstance(t, str) for t in toks):
            raise FormatError(f"{path}:{line}: sentence {k} is not a list of token strings",
                              code="E107")
        sentences.append(_Sentence(toks, first))
        first += len(toks)
    if len(ner) > len(sents) or len(rels) > len(sents):
        raise FormatError(f"{path}:{line}: {len(ner)} ner lists and {len(rels)} relation lists "
                          f"for {len(sents)} sentences", code="E107")
    skipped_fields = {k: v for k, v in obj.items() if k not in SPAN_KEYS and isinstance(v, list)
                      and v and any(x for x in v)}
    for key in skipped_fields:
        report.problem(line, f"DyGIE field {key} not read", f"{key!r} (token-indexed) is not "
                       "read into records")
    plain = {k: v for k, v in obj.items() if k not in SPAN_KEYS and k not in skipped_fields
             and not isinstance(v, list)}
    if "doc_key" in obj:
        plain["id"] = obj["doc_key"]
    parts: list[tuple[list[dict | None], list[dict]]] = []
    for k, sent in enumerate(sentences):
        parts.append(_sentence_spans(sent, ner[k] if k < len(ner) else [],
                                     rels[k] if k < len(rels) else [], report, line))
    clusters = obj.get("clusters") or []
    has_relations = "relations" in obj
    if unit == "sentence":
        if clusters:
            report.problem(line, "coreference clusters dropped",
                           f"{len(clusters)} clusters cross sentences; unit='document' keeps them")
        return [finish_record(s.text, cast(list, ents), report, line, rs if has_relations else None,
                              **plain, sentence=k)
                for k, (s, (ents, rs)) in enumerate(zip(sentences, parts, strict=True))]
    text, shift = "", []
    entities: list[dict | None] = []
    relations: list[dict] = []
    for k, (s, (ents, rs)) in enumerate(zip(sentences, parts, strict=True)):
        base = len(text) + (1 if k else 0)
        text += ("\n" if k else "") + s.text
        shift.append(base)
        offset = len(entities)
        entities.extend(None if e is None else {**e, "start": e["start"] + base,
                                                "end": e["end"] + base} for e in ents)
        relations.extend({**r, "head": r["head"] + offset, "tail": r["tail"] + offset}
                         for r in rs)
    extra = dict(plain)
    if clusters:
        extra["clusters"] = _clusters(clusters, sentences, shift, report, line)
    return [finish_record(text, cast(list, entities), report, line,
                          relations if has_relations else None, **extra)]


def _sentence_spans(sent: _Sentence, ner: Any, rels: Any, report: Report, line: int
                    ) -> tuple[list[dict | None], list[dict]]:
    """Entities (character offsets in the sentence, None where skipped) and relations indexing
    them, of one sentence."""
    entities: list[dict | None] = []
    at: dict[tuple[int, int], int] = {}
    for item in ner if isinstance(ner, list) else ():
        if not (isinstance(item, list) and len(item) >= 3 and is_int(item[0])
                and is_int(item[1]) and isinstance(item[2], str) and item[2]):
            report.problem(line, "bad entity", f"{item!r:.60} is not [start, end, label]")
            entities.append(None)
            continue
        span = sent.chars(item[0], item[1])
        if span is None:
            report.problem(line, "offsets out of range", f"{item[2]} tokens [{item[0]}, "
                           f"{item[1]}] outside its sentence (tokens {sent.first} to "
                           f"{sent.first + len(sent.tokens) - 1})")
            entities.append(None)
            continue
        at.setdefault((item[0], item[1]), len(entities))
        entities.append({"start": span[0], "end": span[1], "label": item[2]})
    relations = []
    for item in rels if isinstance(rels, list) else ():
        if not (isinstance(item, list) and len(item) >= 5 and all(map(is_int, item[:4]))
                and isinstance(item[4], str)):
            report.problem(line, "bad relation", f"{item!r:.60} is not [s1, e1, s2, e2, label]")
            continue
        head, tail = at.get((item[0], item[1])), at.get((item[2], item[3]))
        if head is None or tail is None:
            report.problem(line, "relation argument not an entity",
                           f"{item[4]} {item[:4]}: no entity of the sentence has those tokens")
            continue
        relations.append({"head": head, "tail": tail, "label": item[4]})
    return entities, relations


def _clusters(clusters: Any, sentences: list[_Sentence], shift: list[int], report: Report,
              line: int) -> list[list[list[int]]]:
    """Coreference clusters as character spans of the document text (end exclusive)."""
    out = []
    for cluster in clusters if isinstance(clusters, list) else ():
        spans = []
        for item in cluster if isinstance(cluster, list) else ():
            where = None
            if isinstance(item, list) and len(item) >= 2 and is_int(item[0]) and is_int(item[1]):
                for k, s in enumerate(sentences):
                    span = s.chars(item[0], item[1])
                    if span is not None:
                        where = [span[0] + shift[k], span[1] + shift[k]]
                        break
            if where is None:
                report.problem(line, "bad cluster span", f"{item!r:.60}")
                continue
            spans.append(where)
        out.append(spans)
    return out


def read(path: Path, report: Report, unit: str = "document") -> list[Record]:
    if unit not in UNITS:
        raise FormatError(f"unit={unit!r}: expected one of {', '.join(UNITS)}", code="E107")
    records: list[Record] = []
    for line, obj in json_records(path, report.encoding):
        if not sniff(obj):
            raise FormatError(f"{path}:{line}: expected a DyGIE document with 'sentences' (lists "
                              "of tokens) and 'ner'", code="E107")
        records.extend(_document(obj, path, line, report, unit))
    return records


def _tokens(text: str, cuts: set[int]) -> list[tuple[int, int]]:
    """Token character spans of one sentence: whitespace-separated words, CJK characters one by
    one, and a cut wherever an entity starts or ends inside a word."""
    out, start = [], None
    for i, ch in enumerate(text + " "):
        if ch.isspace() or (i in cuts and start is not None) or is_cjk(ch):
            if start is not None:
                out.append((start, i))
                start = None
            if is_cjk(ch):
                out.append((i, i + 1))
                continue
        if not ch.isspace() and start is None:
            start = i
    return out


def write(records: Iterable[Record], path: Path) -> None:
    """One DyGIE document per record, a sentence per line of its text. Tokens are the
    whitespace-separated words (CJK characters one by one), split where an entity starts or ends
    inside one; an entity across a line break is refused naming the record."""

    out = []
    for n, r in enumerate(records):
        fields: dict[str, Any] = dict(r)  # with the fields this format passes through
        text = r["text"]
        sentences: list[list[str]] = []
        ner: list[list[list[Any]]] = []
        rels: list[list[list[Any]]] = []
        token_at: dict[int, int] = {}  # character offset -> document token (starts and ends)
        base = first = 0
        ends: dict[int, int] = {}
        cuts = {b for e in r["entities"] for b in (e["start"], e["end"])}
        clusters = fields.get("clusters") or []
        cuts.update(b for c in clusters for span in c for b in span)
        for line in text.split("\n"):
            spans = _tokens(line, {c - base for c in cuts if base <= c <= base + len(line)})
            sentences.append([line[s:e] for s, e in spans])
            for k, (s, e) in enumerate(spans):
                token_at[base + s] = first + k
                ends[base + e] = first + k
            ner.append([])
            rels.append([])
            first += len(spans)
            base += len(line) + 1
        sent_of: list[tuple[int, int, int]] = []
        for ent in r["entities"]:
            s_tok, e_tok = token_at.get(ent["start"]), ends.get(ent["end"])
            at = _sentence_of(sentences, s_tok)
            if s_tok is None or e_tok is None or at is None or at != _sentence_of(sentences,
                                                                                   e_tok):
                raise DataError(f"record {n}: entity {ent['label']} [{ent['start']}, "
                                f"{ent['end']}) {text[ent['start']:ent['end']]!r} crosses a "
                                "line break or starts or ends in whitespace", code="E110")
            ner[at].append([s_tok, e_tok, ent["label"]])
            sent_of.append((at, s_tok, e_tok))
        for rel in r.get("relations") or ():
            (k, s1, e1), (k2, s2, e2) = sent_of[rel["head"]], sent_of[rel["tail"]]
            if k != k2:
                raise DataError(f"record {n}: a {rel['label']} relation across sentences, which "
                                "DyGIE relations cannot hold", code="E110")
            rels[k].append([s1, e1, s2, e2, rel["label"]])
        doc: dict[str, Any] = {"doc_key": r.get("id", n), "sentences": sentences, "ner": ner,
                               "relations": rels}
        doc.update({k: v for k, v in fields.items() if k not in (*doc, "text", "entities",
                    "relations", "id", "clusters", "sentence") and not isinstance(v, list)})
        if clusters:
            doc["clusters"] = [[[token_at[a], ends[b]] for a, b in c] for c in clusters]
        out.append(json_line(doc) + "\n")
    atomic_write_text(path, "".join(out))


def _sentence_of(sentences: list[list[str]], token: int | None) -> int | None:
    if token is None:
        return None
    for k, s in enumerate(sentences):
        if token < len(s):
            return k
        token -= len(s)
    return None
