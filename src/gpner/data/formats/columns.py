r"""Column files: one token per line, the tag in the last column, a blank line between sentences.

Covers CoNLL-2003 (``-DOCSTART-`` lines, 4 columns), People's Daily / MSRA (one character per
line) and anything tagged BIO/IOB2, IOB1, BIOES/BILOU or BMES/BMEO, separated by spaces or tabs.
Tokens are joined into the record text with ``""`` when most tokens are CJK (character corpora) and
with ``" "`` otherwise; pass ``token_sep`` to override. ``documents=True`` makes one record per
``-DOCSTART-`` document (its sentences joined by a newline) instead of one per sentence.

What real files ship, read with no options, each rule counted in the report:

* a header row (``token<TAB>label``) above the first sentence is skipped;
* trailing tabs and spaces, CRLF line ends, byte-order marks and whitespace-only blank lines;
* a digit glued to each character (Weibo NER: ``我0``, the character and its position in a
  word) is taken out when most tokens carry one; tokens without it (punctuation, emoji, Latin
  letters) are kept as they are. Between "few" and "most" the file is refused, naming
  ``token_pattern``, the option that decides (a regular expression whose first group is the
  token text, e.g. ``(.+?)\d+$``; ``(.*)`` keeps every token whole);
* a language code glued before each token (WikiANN: ``en:Paris``), taken out by the same
  majority rule;
* a cell of several tags (``B-person,B-creative-work``) names overlapping entities: each type's
  tags are decoded on their own and every span is read.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterable

from gpner.atomic import atomic_write_text
from gpner.data.tagging import (
    SchemeUnclear,
    decide_scheme,
    spans_to_tags,
    split_tag,
    tags_to_spans,
)
from gpner.errors import DataError
from gpner.records import Entity, FormatError, Record, Report, finish_record
from gpner.text.tokenization import is_cjk, pre_tokenize
from gpner.textfiles import text_lines

Row = tuple[int, str, str]  # (line number, token, the tag cells of the tag columns, TAB-joined)
log = logging.getLogger("gpner")
MULTI = re.compile(r"[,|]")  # between the tags of a cell that names several entities
GLUED = re.compile(r"(.)(\d{1,2})", re.S)  # one character and the digit(s) glued to it
LANG_PREFIX = re.compile(r"([a-z]{2,3}:)(?=.)", re.S)  # WikiANN / PAN-X: en:Paris
BARE = re.compile(r"[A-Za-z][A-Za-z0-9_.:/-]{0,39}")  # a type name without a prefix (IO files)
# phrase chunks (CoNLL-2000/2003's third column): tags, but not entities
CHUNK_TYPES = {"NP", "VP", "PP", "ADVP", "ADJP", "SBAR", "PRT", "CONJP", "INTJ", "LST", "UCP"}
HEADER_WORDS = {"label", "labels", "tag", "tags", "ner", "ner_tag", "ner_tags", "entity",
                "entities", "bio", "iob", "class"}


def _columns(line: str) -> list[str]:
    line = line.lstrip("\ufeff").rstrip(" \t\r")  # a BOM of a concatenated file; trailing tabs
    return line.split("\t") if "\t" in line else line.split()


def _cell_tags(cell: str) -> list[str]:
    """The tags of one tag cell (``B-PER``, or ``B-person,B-creative-work``); ValueError if a
    part is not a tag."""
    cell = cell.strip()
    parts = MULTI.split(cell) if cell not in ("O",) and MULTI.search(cell) else [cell]
    for part in parts:
        split_tag(part.strip())
    return [part.strip() for part in parts]


def _is_tag(cell: str) -> bool:
    try:
        _cell_tags(cell)
        return True
    except ValueError:
        return False


def _is_blank(line: str) -> bool:
    return not line.strip().lstrip("\ufeff") or line.lstrip("\ufeff").startswith("-DOCSTART-")


def _is_comment(line: str) -> bool:
    """``# id 3f2a domain=en`` (MultiCoNER), ``# http://...`` (GermEval), ``# sent_id = 1``
    (CoNLL-U): a line opening with ``#`` that does not end in a tag. A ``#`` token (``#  O``,
    a hashtag in a tweet) ends in one and stays a token."""
    line = line.lstrip("\ufeff")
    return line.startswith("#") and not _is_tag(_columns(line)[-1])


def _header(lines: list[str]) -> int | None:
    """The index of a header row: the first token line, if its last column names the column
    (``label``, ``tag``, ``NER``) or is no tag while the next token line's is (the same number
    of columns)."""
    rows = (i for i, x in enumerate(lines) if not _is_blank(x) and not _is_comment(x))
    first = next(rows, None)
    if first is None:
        return None
    cols = _columns(lines[first])
    if len(cols) >= 2 and cols[-1].lower() in HEADER_WORDS:
        return first
    if _is_tag(cols[-1]):
        return None
    nxt = next(rows, None)
    if nxt is None or len(_columns(lines[nxt])) != len(cols) or len(cols) < 2:
        return None
    return first if _is_tag(_columns(lines[nxt])[-1]) else None


def not_columns(lines: Iterable[str]) -> str | None:
    """None if every non-blank line (a header row and ``#`` comments apart) is ``token ... TAG``
    with the same number of columns and a tag in the last (or, for IO files, ``O`` and bare type
    names), or ``TAG token`` with the tag in the first (the MIT Movie and Restaurant corpora);
    else why not (with the line number). Detection asks this of the whole file, so a few lines
    of plain text ending in ``O`` never make a column file. ``lines`` may be a stream: it is
    read once."""
    width, seen, header = None, 0, False
    io = _IOCount()
    last_ok = first_ok = True
    for number, line in enumerate(lines, 1):
        if _is_blank(line) or _is_comment(line):
            continue
        parts = _columns(line)
        if len(parts) < 2:
            return f"line {number} has one column: {line[:40]!r}"
        if width is None:
            width = len(parts)
        elif len(parts) != width:
            return f"line {number} has {len(parts)} columns, earlier lines {width}"
        if not seen and not header and parts[-1].lower() in HEADER_WORDS:
            header = True
            continue
        ok_last = last_ok and io.add(number, parts[-1])
        ok_first = first_ok and _is_tag(parts[0])
        if not ok_last and not ok_first:
            if seen or header:  # only the first token line may be a header
                return f"line {number} ends in {parts[-1][:20]!r}, not a tag"
            header = True
            continue
        last_ok, first_ok = ok_last, ok_first
        seen += 1
    if not seen:
        return "no token lines"
    why = io.why_not() if last_ok else "no tag in the last column"
    return None if not why or first_ok else why


class _IOCount:
    """The last column seen so far: prefixed tags, ``O`` and bare type names (IO files, as
    Few-NERD writes them: ``person-actor``). Bare names make an IO file only when nothing is
    prefixed, ``O`` is at least 30% of the tokens and there are at most 200 names."""

    def __init__(self) -> None:
        self.prefixed = self.o = self.rows = 0
        self.bare: dict[str, int] = {}  # name -> first line

    def add(self, line: int, cell: str) -> bool:
        """Count one cell; False if it is neither a tag nor a bare name."""
        cell = cell.strip()
        self.rows += 1
        if cell == "O":
            self.o += 1
        elif _is_tag(cell):
            self.prefixed += 1
        elif BARE.fullmatch(cell):
            self.bare.setdefault(cell, line)
        else:
            return False
        return True

    def why_not(self) -> str:
        """Empty if the cells make a BIO-family or an IO file, else why not."""
        if not self.bare:
            return ""
        name, line = min(self.bare.items(), key=lambda kv: kv[1])
        if self.prefixed or 10 * self.o < 3 * self.rows or len(self.bare) > 200:
            return f"line {line} ends in {name[:20]!r}, not a tag"
        return ""


def _raw_sentences(path: Path, report: Report, docs: list[int] | None
                   ) -> list[list[tuple[int, list[str]]]]:
    """Sentences of (line number, columns), with header rows and comments left out (each
    counted) and ``docs`` (if given) receiving each sentence's document number."""
    lines = text_lines(path, report.encoding)
    header = _header(lines)
    if header is not None:
        report.rule(header + 1, "header row skipped",
                    f"line {header + 1} is a header, not a token: {lines[header][:60]!r}",
                    count=1)
    sentences: list[list[tuple[int, list[str]]]] = []
    current: list[tuple[int, list[str]]] = []
    comments: list[int] = []
    doc = 0
    for lineno, line in enumerate(lines, 1):
        if _is_blank(line):
            if current:
                sentences.append(current)
                if docs is not None:
                    docs.append(doc)
                current = []
            doc += line.lstrip("\ufeff").startswith("-DOCSTART-")
            continue
        if lineno - 1 == header:
            continue
        if _is_comment(line):
            comments.append(lineno)
            continue
        parts = _columns(line)
        if len(parts) < 2:
            raise FormatError(f"{path}:{lineno}: expected a token and a tag, found {line!r}",
                              code="E107")
        current.append((lineno, parts))
    if current:
        sentences.append(current)
        if docs is not None:
            docs.append(doc)
    if comments:
        report.rule(comments[0], "comment line skipped",
              f"{len(comments)} lines opening with '#' are comments (sentence ids, sources), "
              "not tokens: skipped", count=len(comments))
    return sentences


def _sentences(path: Path, report: Report, docs: list[int] | None = None,
               pattern: "re.Pattern[str] | None" = None) -> list[list[Row]]:
    """Sentences of rows: the token (from its column, ``pattern`` applied) and the tag cells
    of every tag column, TAB-joined."""
    raw = _raw_sentences(path, report, docs)
    if _tag_first(raw):  # TAG token (MIT Movie/Restaurant): turned round, read as any other
        report.rule(None, "tag first", "the tag is the first column and the token the "
              "second (as the MIT Movie and Restaurant corpora write them)")
        raw = [[(line, parts[1:2] + parts[:1]) for line, parts in s] for s in raw]
    token_col = _token_column(raw, report)
    io = _io_file(path, raw)
    tag_cols = [-1] if io else _tag_columns(path, raw, token_col, report)
    if io:
        report.rule(None, "IO tags", "the tags carry no B-/I- prefix (IO, as Few-NERD writes "
              "them: 'person-actor'): adjacent tokens of one type are read as one entity")
    sentences = []
    for rows in raw:
        out: list[Row] = []
        prev = "O"
        for lineno, parts in rows:
            if len(parts) <= token_col or len(parts) < 1 + len(tag_cols) + token_col:
                raise FormatError(f"{path}:{lineno}: expected {token_col + 1 + len(tag_cols)} "
                                  f"columns, found {len(parts)}", code="E107")
            cells = [parts[c].strip() for c in tag_cols]
            if io:
                bare = cells[0]
                cells = ["O" if bare == "O" else ("I-" if bare == prev else "B-") + bare]
                prev = bare
            for cell in cells:
                try:
                    _cell_tags(cell)
                except ValueError as exc:
                    raise FormatError(f"{path}:{lineno}: {exc}", code="E107") from None
            out.append((lineno, _token(path, lineno, parts[token_col], pattern),
                        "\t".join(cells)))
        sentences.append(out)
    return sentences


def _tag_first(raw: list[list[tuple[int, list[str]]]]) -> bool:
    """Whether the tags are in the first column and not the last: every row's first cell is a
    tag, some row's last is neither a tag nor (IO) a bare type name."""
    rows = [parts for s in raw for _, parts in s]
    if not rows or any(len(parts) != 2 for parts in rows):
        return False
    count = _IOCount()
    last = all(count.add(0, parts[-1]) for parts in rows) and not count.why_not()
    return not last and all(_is_tag(parts[0]) for parts in rows)


def _io_file(path: Path, raw: list[list[tuple[int, list[str]]]]) -> bool:
    """Whether the last column holds IO tags (bare type names and ``O``)."""
    count = _IOCount()
    for rows in raw:
        for lineno, parts in rows:
            if not count.add(lineno, parts[-1]):
                return False  # the cell is reported as a bad tag where it is read
    return bool(count.bare) and not count.why_not()


def _token_column(raw: list[list[tuple[int, list[str]]]], report: Report) -> int:
    """1 when the first column counts the tokens of each sentence (``1 2 3 ...``: GermEval,
    CoNLL-U) and there is a column between it and the tags; else 0."""
    rows = [(k, parts) for s in raw for k, (_, parts) in enumerate(s)]
    if not rows or any(len(parts) < 3 for _, parts in rows):
        return 0
    for base in (1, 0):
        if all(parts[0] == str(k + base) for k, parts in rows):
            report.rule(raw[0][0][0], "index column", f"column 1 counts the tokens of each "
                  f"sentence ({base}, {base + 1}, ...): the token is column 2")
            return 1
    return 0


def _tag_columns(path: Path, raw: list[list[tuple[int, list[str]]]], token_col: int,
                 report: Report) -> list[int]:
    """The tag columns: the last, and the columns just before it that are tags on every line
    over the same types (GermEval's outer and inner entities: nested layers). A column of other
    tags (CoNLL-2003's chunks, ``B-NP``) shares no type with the last and is not read."""
    width = min(len(parts) for s in raw for _, parts in s) if raw else 0

    def labels(col: int) -> set[str] | None:
        out: set[str] = set()
        for s in raw:
            for _, parts in s:
                try:
                    out.update(split_tag(t)[1] or "" for t in _cell_tags(parts[col]))
                except ValueError:
                    return None
        return out - {""}

    def related(a: set[str], b: set[str]) -> bool:  # LOC and LOC, or LOC and LOCderiv
        return any(x.startswith(y) or y.startswith(x) for x in a for y in b)

    last = labels(-1)
    cols = [-1]
    for col in range(-2, -(width - token_col), -1):
        mine = labels(col)
        if not last or not mine or mine <= CHUNK_TYPES or not related(mine, last):
            break
        cols.insert(0, col)
    if len(cols) > 1:
        names = ", ".join(str(width + c + 1) for c in cols)
        report.rule(None, "tag columns", f"columns {names} are all tags over the same types "
              "(nested layers, as GermEval writes outer and inner entities): every column read")
    return cols


def _token(path: Path, lineno: int, token: str, pattern: "re.Pattern[str] | None") -> str:
    """The token of a column, ``pattern`` (``--token-pattern``) applied."""
    if pattern is None:
        return token
    m = pattern.match(token)
    if not m or not m.group(1):
        raise FormatError(f"{path}:{lineno}: token {token!r} does not match "
                          f"--token-pattern {pattern.pattern!r}", code="E107")
    return m.group(1)


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


def _most(path: Path, line: int, hits: int, total: int, aside: str, what: str,
          pattern: str) -> bool:
    """The majority rule for an annotation glued to tokens: True when most of ``total`` tokens
    (at least 10) carry it (``hits``), False when under a tenth do; in between neither reading
    is safe, and the file is refused (E104) naming the ``--token-pattern`` that decides."""
    if not hits or hits * 10 < total or total < 10:
        return False
    if hits * 2 <= total:
        raise DataError(f"{path}:{line}: {hits} of {total} tokens{aside} {what}, or text? pass "
                        f"--token-pattern {pattern} to take it out, or --token-pattern '(.*)' "
                        "to keep every token whole", code="E104")
    return True


def _unglue(path: Path, sentences: list[list[Row]], report: Report) -> list[list[Row]]:
    """Take out a digit glued to each character when most tokens carry one (``我0``).

    Decided by what most tokens do, never by all: real files also hold punctuation, emoji and
    Latin letters without the digit, kept as they are. When between a tenth and a half of the
    tokens look glued, neither reading is safe and the file is refused, naming the option.
    """
    # numbers ("20", "1996") are no evidence: word-level files have many, Weibo's digit
    # characters carry the glued digit like any other (then "20" is "2")
    tokens = [(line, tok) for s in sentences for line, tok, _ in s if not tok.isdigit()]
    glued = [(line, tok) for line, tok in tokens if GLUED.fullmatch(tok)]
    line, example = glued[0] if glued else (0, "")
    if not _most(path, line, len(glued), len(tokens), " (numbers aside)",
                 f"are one character and a digit ({example!r}): a digit glued to each character "
                 "(Weibo NER)", "'(.+?)\\d+$'"):
        return sentences
    report.rule(line, "glued digit taken out",
                f"{len(glued)} of {len(tokens)} tokens (numbers aside) are a character and a "
                f"glued digit ({example!r}): the digit was taken out of each "
                f"({len(tokens) - len(glued)} tokens without one kept as they are; "
                "--token-pattern '(.*)' keeps every token whole)", count=len(glued))
    out = []
    taken = 0
    for s in sentences:
        rows = []
        for line, tok, tag in s:
            m = GLUED.fullmatch(tok)
            taken += m is not None
            rows.append((line, m.group(1) if m else tok, tag))
        out.append(rows)
    report.notes["glued digit taken out"] += taken - len(glued)  # the digit characters' too
    return out


def _unprefix(path: Path, sentences: list[list[Row]], report: Report) -> list[list[Row]]:
    """Take out a language code glued before each token (``en:Paris``, as XTREME's WikiANN /
    PAN-X files write them) when most tokens carry the same one; tokens without it are kept.
    Between a tenth and a half of the tokens, the file is refused naming the option."""
    tokens = [(line, tok) for s in sentences for line, tok, _ in s]
    counts: dict[str, list[int]] = {}
    for line, tok in tokens:
        m = LANG_PREFIX.match(tok)
        if m:
            counts.setdefault(m.group(1), []).append(line)
    prefix, lines = max(counts.items(), key=lambda kv: len(kv[1])) if counts else ("", [0])
    if not counts or not _most(path, lines[0], len(lines), len(tokens), "",
                               f"begin with {prefix!r}: a language code glued to each token "
                               "(WikiANN)", f"'{prefix}(.+)'"):
        return sentences
    report.rule(lines[0], "glued prefix taken out",
                f"{len(lines)} of {len(tokens)} tokens begin with {prefix!r} (a language code "
                f"glued to each token, as WikiANN writes them): taken out "
                f"({len(tokens) - len(lines)} tokens without it kept as they are; "
                "--token-pattern '(.*)' keeps every token whole)", count=len(lines))
    return [[(line, tok[len(prefix):] if tok.startswith(prefix) and len(tok) > len(prefix)
              else tok, tag) for line, tok, tag in s] for s in sentences]


def _layers(rows: list[Row], problem) -> list[list[str]]:
    """The tag sequences of one sentence: one per tag column, and for cells of several tags one
    per entity type (``O`` where the type is absent), decoded apart so overlapping spans
    survive."""
    columns = list(zip(*(tag.split("\t") for _, _, tag in rows), strict=True)) if rows else []
    return [seq for column in columns for seq in _column_layers(rows, list(column), problem)]


def _column_layers(rows: list[Row], column: list[str], problem) -> list[list[str]]:
    cells = [_cell_tags(tag) for tag in column]
    if all(len(c) == 1 for c in cells):
        return [[c[0] for c in cells]]
    labels: dict[str, list[str]] = {}
    for c in cells:
        for tag in c:
            label = split_tag(tag)[1]
            if label is not None:
                labels.setdefault(label, ["O"] * len(cells))
    for i, c in enumerate(cells):
        seen: set[str] = set()
        for tag in c:
            label = split_tag(tag)[1]
            if label is None:
                continue
            if label in seen:
                problem(i, "two tags of one type in a cell",
                        f"{column[i]!r}: the first {label} tag is read")
                continue
            seen.add(label)
            labels[label][i] = tag
    return list(labels.values())


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
    sentences = _sentences(path, report, docs, pattern)
    if pattern is None:
        sentences = _unprefix(path, _unglue(path, sentences, report), report)
    multi = [c for s in sentences for _, _, tag in s for c in tag.split("\t")
             if len(_cell_tags(c)) > 1]
    if multi:
        report.rule(None, "cell with several tags",
              f"{len(multi)} tag cells name several entities (like {multi[0]!r}): each type's "
              "tags were decoded on their own, every span read", count=len(multi))
    def reporter(rows: list[Row]):
        return lambda i, reason, detail: report.problem(rows[i][0], reason, detail)

    # each sentence's tag sequences, cut once: the scheme is decided on them, then they decode
    layered = [_layers(rows, reporter(rows)) for rows in sentences]
    if scheme is None:
        try:
            scheme, why = decide_scheme(layer for layers in layered for layer in layers)
        except SchemeUnclear as exc:
            raise DataError(f"{path}: {exc}; pass --scheme-in (bio, iob1, bioes, bmes)",
                            code="E104") from None
        report.rule(None, "tag scheme", f"tag scheme {scheme} (detected: {why}; --scheme-in "
                    "to override)")
    if token_sep is None:
        token_sep = guess_token_sep(tok for s in sentences for _, tok, _ in s)
    records = []
    for rows, layers in zip(sentences, layered, strict=True):
        starts, pos = [], 0
        for _, tok, _ in rows:
            starts.append(pos)
            pos += len(tok) + len(token_sep)
        text = token_sep.join(tok for _, tok, _ in rows)
        problem = reporter(rows)
        spans = [sp for layer in layers for sp in tags_to_spans(layer, scheme, problem)]
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
