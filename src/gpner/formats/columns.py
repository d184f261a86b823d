"""Column files: one token per line, the tag in the last column, a blank line between sentences.

Covers CoNLL-2003 (``-DOCSTART-`` lines, 4 columns), People's Daily / MSRA (one character per
line) and anything tagged BIO/IOB2, IOB1, BIOES/BILOU or BMES/BMEO, separated by spaces or tabs.
Tokens are joined into the record text with ``""`` when most tokens are CJK (character corpora) and
with ``" "`` otherwise; pass ``token_sep`` to override. ``documents=True`` makes one record per
``-DOCSTART-`` document (its sentences joined by a newline) instead of one per sentence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from gpner.atomic import atomic_write_text
from gpner.records import FormatError, Record, Report, finish_record
from gpner.tagging import detect_scheme, spans_to_tags, split_tag, tags_to_spans
from gpner.tokenization import is_cjk, pre_tokenize

Row = tuple[int, str, str]  # (line number, token, tag)


def _sentences(path: Path, docs: list[int] | None = None) -> list[list[Row]]:
    """Sentences of rows; ``docs`` (if given) receives each sentence's document number."""
    sentences: list[list[Row]] = []
    current: list[Row] = []
    doc = 0
    with open(path, encoding="utf-8-sig") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.startswith("-DOCSTART-"):
                if current:
                    sentences.append(current)
                    if docs is not None:
                        docs.append(doc)
                    current = []
                doc += line.startswith("-DOCSTART-")
                continue
            parts = line.split("\t") if "\t" in line else line.split()
            if len(parts) < 2:
                raise FormatError(f"{path}:{lineno}: expected a token and a tag, found {line!r}")
            tag = parts[-1].strip()
            try:
                split_tag(tag)
            except ValueError as exc:
                raise FormatError(f"{path}:{lineno}: {exc}") from None
            current.append((lineno, parts[0], tag))
    if current:
        sentences.append(current)
        if docs is not None:
            docs.append(doc)
    return sentences


def guess_token_sep(tokens: Iterable[str]) -> str:
    """``""`` when most tokens contain a CJK character (char-per-line corpora), else ``" "``."""
    n = cjk = 0
    for tok in tokens:
        n += 1
        cjk += any(is_cjk(ch) for ch in tok)
    return "" if n and cjk * 2 > n else " "


def read(path: Path, report: Report, scheme: str | None = None,
         token_sep: str | None = None, documents: bool = False) -> list[Record]:
    docs: list[int] = []
    sentences = _sentences(path, docs)
    if scheme is None:
        scheme = detect_scheme([tag for _, _, tag in s] for s in sentences)
    if token_sep is None:
        token_sep = guess_token_sep(tok for s in sentences for _, tok, _ in s)
    records = []
    for rows in sentences:
        starts, pos = [], 0
        for _, tok, _ in rows:
            starts.append(pos)
            pos += len(tok) + len(token_sep)
        text = token_sep.join(tok for _, tok, _ in rows)

        def problem(i: int, reason: str, detail: str, rows=rows) -> None:
            report.problem(rows[i][0], reason, detail)

        spans = tags_to_spans([tag for _, _, tag in rows], scheme, problem)
        entities = [{"start": starts[sp.start],
                     "end": starts[sp.end - 1] + len(rows[sp.end - 1][1]), "label": sp.label}
                    for sp in spans]
        records.append(finish_record(text, entities, report, rows[0][0]))
    return _join_documents(records, docs) if documents else records


def _join_documents(records: list[Record], docs: list[int]) -> list[Record]:
    """Sentence records -> one record per document, sentences joined by a newline."""
    out: list[Record] = []
    for rec, doc in zip(records, docs):
        if out and doc == out[-1]["_doc"]:
            last = out[-1]
            shift = len(last["text"]) + 1
            last["text"] += "\n" + rec["text"]
            last["entities"] += [{**e, "start": e["start"] + shift, "end": e["end"] + shift}
                                 for e in rec["entities"]]
        else:
            out.append({"text": rec["text"], "entities": list(rec["entities"]), "_doc": doc})
    for rec in out:
        del rec["_doc"]
    return out


def write(records: Iterable[Record], path: Path, scheme: str = "bio") -> None:
    """Write ``token TAG`` lines. Tokens are split at entity boundaries so no entity is lost;
    whitespace is not representable and nested entities raise a ValueError naming the record."""
    out = []
    for n, r in enumerate(records):
        text = r["text"]
        cuts = {b for e in r["entities"] for b in (e["start"], e["end"])}
        tokens: list[tuple[int, int]] = []
        for s, e in pre_tokenize(text):
            inner = sorted(c for c in cuts if s < c < e)
            bounds = [s, *inner, e]
            tokens.extend(zip(bounds, bounds[1:]))
        start_tok = {s: i for i, (s, _) in enumerate(tokens)}
        end_tok = {e: i + 1 for i, (_, e) in enumerate(tokens)}
        spans = []
        for e in r["entities"]:
            if e["start"] not in start_tok or e["end"] not in end_tok:
                raise ValueError(f"record {n}: entity {e['label']} [{e['start']}, {e['end']}) "
                                 f"{text[e['start']:e['end']]!r} starts or ends in whitespace")
            spans.append((start_tok[e["start"]], end_tok[e["end"]], e["label"]))
        try:
            tags = spans_to_tags(len(tokens), spans, scheme)
        except ValueError as exc:
            raise ValueError(f"record {n} ({text[:40]!r}): {exc}") from None
        out.extend(f"{text[s:e]} {tag}\n" for (s, e), tag in zip(tokens, tags))
        out.append("\n")
    atomic_write_text(path, "".join(out))
