r"""Column files: one token per line, the tag in the last column, a blank line between sentences.

Covers CoNLL-2003 (``-DOCSTART-`` lines, 4 columns), People's Daily / MSRA (one character per
line) and anything tagged BIO/IOB2, IOB1, BIOES/BILOU or BMES/BMEO, separated by spaces or tabs.
Tokens are joined into the record text with ``""`` when most tokens are CJK (character corpora) and
with ``" "`` otherwise; pass ``token_sep`` to override. ``documents=True`` makes one record per
``-DOCSTART-`` document (its sentences joined by a newline) instead of one per sentence.

Some corpora glue an annotation to each token (Weibo NER: ``我0``, the character and its
position in a word). ``token_pattern`` (a regular expression whose first group is the token
text, e.g. ``(.+?)\d+$``) takes the token out of the column; a character file whose every token
ends in the same kind of suffix gets a warning saying so.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterable

from gpner.atomic import atomic_write_text
from gpner.data.tagging import detect_scheme, spans_to_tags, split_tag, tags_to_spans
from gpner.errors import DataError
from gpner.records import Entity, FormatError, Record, Report, finish_record
from gpner.text.tokenization import is_cjk, pre_tokenize
from gpner.textfiles import text_lines

Row = tuple[int, str, str]  # (line number, token, tag)
log = logging.getLogger("gpner")


def _columns(line: str) -> list[str]:
    return line.split("\t") if "\t" in line else line.split()


def not_columns(lines: Iterable[str]) -> str | None:
    """None if every non-blank line is ``token ... TAG`` with the same number of columns and
    a valid tag in the last; else why not (with the line number). Detection asks this of the
    whole file, so a few lines of plain text ending in ``O`` never make a column file."""
    width, seen = None, 0
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("-DOCSTART-"):
            continue
        parts = _columns(line)
        if len(parts) < 2:
            return f"line {number} has one column: {line[:40]!r}"
        if width is None:
            width = len(parts)
        elif len(parts) != width:
            return f"line {number} has {len(parts)} columns, earlier lines {width}"
        try:
            split_tag(parts[-1].strip())
        except ValueError:
            return f"line {number} ends in {parts[-1][:20]!r}, not a tag"
        seen += 1
    return None if seen else "no token lines"


def _sentences(path: Path, docs: list[int] | None = None, encoding: str | None = None,
               pattern: "re.Pattern[str] | None" = None) -> list[list[Row]]:
    """Sentences of rows; ``docs`` (if given) receives each sentence's document number."""
    sentences: list[list[Row]] = []
    current: list[Row] = []
    doc = 0
    for lineno, line in enumerate(text_lines(path, encoding), 1):
        if not line.strip() or line.startswith("-DOCSTART-"):
            if current:
                sentences.append(current)
                if docs is not None:
                    docs.append(doc)
                current = []
            doc += line.startswith("-DOCSTART-")
            continue
        parts = _columns(line)
        if len(parts) < 2:
            raise FormatError(f"{path}:{lineno}: expected a token and a tag, found {line!r}",
                              code="E107")
        tag = parts[-1].strip()
        try:
            split_tag(tag)
        except ValueError as exc:
            raise FormatError(f"{path}:{lineno}: {exc}", code="E107") from None
        token = parts[0]
        if pattern is not None:
            m = pattern.match(token)
            if not m or not m.group(1):
                raise FormatError(f"{path}:{lineno}: token {token!r} does not match "
                                  f"--token-pattern {pattern.pattern!r}", code="E107")
            token = m.group(1)
        current.append((lineno, token, tag))
    if current:
        sentences.append(current)
        if docs is not None:
            docs.append(doc)
    return sentences


def _compile(token_pattern: str | None) -> "re.Pattern[str] | None":
    if token_pattern is None:
        return None
    try:
        pattern = re.compile(token_pattern)
    except re.error as exc:
        raise FormatError(f"--token-pattern {token_pattern!r} is not a regular expression: "
                          f"{exc}", code="E107") from None
    if pattern.groups < 1:
        raise FormatError(f"--token-pattern {token_pattern!r} needs a group: the token text, "
                          "e.g. '(.+?)\\d+$'", code="E107")
    return pattern


SUFFIX_KINDS = (("a digit", str.isdigit), ("a Latin letter", lambda c: c.isascii()
                                                  and c.isalpha()))


def _warn_glued(sentences: list[list[Row]], report: Report) -> None:
    """Warn when a character-level file's every token is a CJK character plus a suffix of one
    kind (``我0``): an annotation glued to the character, which would become text."""
    tokens = [tok for s in sentences for _, tok, _ in s]
    if len(tokens) < 20 or not all(len(t) >= 2 and is_cjk(t[0]) for t in tokens):
        return
    for kind, test in SUFFIX_KINDS:
        if all(test(t[-1]) for t in tokens):
            why = (f"every token ends in {kind} (like {tokens[0]!r}): an annotation glued to "
                   "each character? pass --token-pattern '(.+?)\\d+$' (or your pattern) to "
                   "take the token text out of the column")
            report.note(sentences[0][0][0], "token with a glued suffix", why)
            log.warning("%s: %s", report.source, why)
            return


def guess_token_sep(tokens: Iterable[str]) -> str:
    """``""`` when most tokens contain a CJK character (char-per-line corpora), else ``" "``."""
    n = cjk = 0
    for tok in tokens:
        n += 1
        cjk += any(is_cjk(ch) for ch in tok)
    return "" if n and cjk * 2 > n else " "


def read(path: Path, report: Report, scheme: str | None = None,
         token_sep: str | None = None, documents: bool = False,
         token_pattern: str | None = None) -> list[Record]:
    docs: list[int] = []
    pattern = _compile(token_pattern)
    sentences = _sentences(path, docs, report.encoding, pattern)
    if pattern is None:
        _warn_glued(sentences, report)
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
        entities: list[Entity | None] = [
            {"start": starts[sp.start], "end": starts[sp.end - 1] + len(rows[sp.end - 1][1]),
             "label": str(sp.label)} for sp in spans]
        records.append(finish_record(text, entities, report, rows[0][0]))
    return _join_documents(records, docs) if documents else records


def _join_documents(records: list[Record], docs: list[int]) -> list[Record]:
    """Sentence records -> one record per document, sentences joined by a newline."""
    out: list[Record] = []
    last_doc = None
    for rec, doc in zip(records, docs, strict=True):
        if out and doc == last_doc:
            last = out[-1]
            shift = len(last["text"]) + 1
            last["text"] += "\n" + rec["text"]
            last["entities"] += [{**e, "start": e["start"] + shift, "end": e["end"] + shift}
                                 for e in rec["entities"]]
        else:
            out.append({"text": rec["text"], "entities": list(rec["entities"])})
        last_doc = doc
    return out


def write(records: Iterable[Record], path: Path, scheme: str = "bio") -> None:
    """Write ``token TAG`` lines. Tokens are split at entity boundaries so no entity is lost;
    whitespace is not representable and nested entities raise a ValueError naming the record."""
    out: list[str] = []
    for n, r in enumerate(records):
        text = r["text"]
        cuts = {b for e in r["entities"] for b in (e["start"], e["end"])}
        tokens: list[tuple[int, int]] = []
        for s, stop in pre_tokenize(text):
            inner = sorted(c for c in cuts if s < c < stop)
            bounds = [s, *inner, stop]
            tokens.extend(zip(bounds, bounds[1:], strict=False))
        start_tok = {s: i for i, (s, _) in enumerate(tokens)}
        end_tok = {stop: i + 1 for i, (_, stop) in enumerate(tokens)}
        spans = []
        for e in r["entities"]:
            if e["start"] not in start_tok or e["end"] not in end_tok:
                raise DataError(f"record {n}: entity {e['label']} [{e['start']}, {e['end']}) "
                                f"{text[e['start']:e['end']]!r} starts or ends in whitespace",
                                code="E110")
            spans.append((start_tok[e["start"]], end_tok[e["end"]], e["label"]))
        try:
            tags = spans_to_tags(len(tokens), spans, scheme)
        except ValueError as exc:
            raise DataError(f"record {n} ({text[:40]!r}): {exc}", code="E110") from None
        out.extend(f"{text[s:stop]} {tag}\n" for (s, stop), tag in zip(tokens, tags,
                                                                       strict=True))
        out.append("\n")
    atomic_write_text(path, "".join(out))
