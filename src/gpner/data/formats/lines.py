"""Line formats with the annotation on the line: TSV ``text<TAB>spans`` and word/tag segmented
text.

**tsv**: ``text<TAB>[("PER", 0, 2), ("LOC", 3, 5)]``: the label column is a JSON or Python
literal list of (type, start, end) with character offsets, ``end`` exclusive (``inclusive_end``
for data sets whose end is the last character). The type may come first or last. A header row
(``text<TAB>labels``) is skipped. Some exports write the text as space-separated characters
(``我 爱 北 京``) with offsets that count the characters only: detected from the offsets (in the
spaced text every entity would start on a character and end on one; when most do not, but all
fit the characters, the offsets count characters) and read as the characters without the
spaces; ``offsets="text"`` or ``"chars"`` decides when the file cannot.

**wordtag**: ``迈向/v  充满/v  希望/n`` with ``[中国/ns 政府/n]nt`` brackets for compound words
(the People's Daily 1998 layout). ``tags`` maps word tags to entity types (default
``nr=PER,ns=LOC,nt=ORG``); a word, or a bracketed compound, whose tag is mapped is an entity.
Words are joined by script (no space next to CJK characters).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from gpner.data.formats._io import join_tokens
from gpner.errors import ConfigError
from gpner.records import (
    FormatError,
    Record,
    Report,
    check_entity,
    finish_record,
    is_int,
)
from gpner.textfiles import text_lines

DEFAULT_TAGS = "nr=PER,ns=LOC,nt=ORG"
WORD = re.compile(r"^(\[?)(.+)/([A-Za-z][A-Za-z0-9_]*)(\]([A-Za-z][A-Za-z0-9_]*))?$")


def parse_label_list(value: str) -> Any:
    """A JSON list, or a Python literal list (tuples, single quotes); never code."""
    try:
        return json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        pass
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _spans_of(item: Any) -> tuple[Any, Any, Any] | None:
    """(label, start, end) of a (type, start, end) or (start, end, type) item."""
    if isinstance(item, dict):
        return item.get("type", item.get("label")), item.get("start"), item.get("end")
    if not isinstance(item, (list, tuple)) or len(item) != 3:
        return None
    if isinstance(item[0], str):
        return item[0], item[1], item[2]
    if isinstance(item[2], str):
        return item[2], item[0], item[1]
    return None


def _tsv_label(line: str) -> list | None:
    """The label list of a ``text<TAB>list`` line, or None."""
    line = line.rstrip("\t \r")  # trailing tabs of a spreadsheet export
    if "\t" not in line:
        return None
    label = line.rsplit("\t", 1)[1].strip()
    if not label.startswith("["):
        return None
    items = parse_label_list(label)
    return items if isinstance(items, list) else None


def _tsv_header(lines: list[str]) -> int | None:
    """The index of a header row (``text<TAB>labels``): the first non-blank line, with a tab but
    no list, followed by a line that is ``text<TAB>list``."""
    rows = [i for i, x in enumerate(lines) if x.strip()]
    if len(rows) < 2 or "\t" not in lines[rows[0]] or _tsv_label(lines[rows[0]]) is not None:
        return None
    return rows[0] if _tsv_label(lines[rows[1]]) is not None else None


def is_tsv(lines: list[str]) -> bool:
    """Every non-blank line (a header row apart) is ``text<TAB>list`` with a readable list."""
    header = _tsv_header(lines)
    seen = 0
    for i, line in enumerate(lines):
        if not line.strip() or i == header:
            continue
        if _tsv_label(line) is None:
            return False
        seen += 1
    return seen > 0


def spaced(text: str) -> bool:
    """Single characters separated by single spaces (``我 爱 北 京``)."""
    return len(text) >= 3 and set(text[1::2]) == {" "} and " " not in text[0::2]


def _offsets_count(path: Path, rows: list[tuple[int, str, list]], given: str | None,
                   inclusive_end: bool) -> str:
    """``"text"`` or ``"chars"``: what the offsets of spaced lines count (see the module)."""
    if given is not None:
        if given not in ("text", "chars"):
            raise FormatError(f"offsets={given!r}: expected 'text' or 'chars'", code="E107")
        return given
    bad_text = bad_chars = seen = 0
    for _, text, items in rows:
        if not spaced(text):
            continue
        n_chars = (len(text) + 1) // 2
        for item in items:
            spec = _spans_of(item)
            if spec is None or not (is_int(spec[1]) and is_int(spec[2])):
                continue
            _, start, end = spec
            end += inclusive_end
            seen += 1
            bad_text += not (start % 2 == 0 and end % 2 == 1 and end <= len(text))
            bad_chars += not (0 <= start < end <= n_chars)
    if not seen or not bad_text:
        return "text"
    if not bad_chars:
        return "chars"
    if 10 * min(bad_text, bad_chars) <= max(bad_text, bad_chars):
        return "text" if bad_text < bad_chars else "chars"
    raise FormatError(
        f"{path}: the text is written as space-separated characters, and of {seen} entities "
        f"{bad_text} do not fit it while {bad_chars} do not fit the characters alone: cannot tell "
        "what the offsets count; pass --offsets text or --offsets chars", code="E104")


def read_tsv(path: Path, report: Report, inclusive_end: bool = False,
             offsets: str | None = None) -> list[Record]:
    lines = text_lines(path, report.encoding)
    header = _tsv_header(lines)
    if header is not None:
        report.rule(header + 1, "header row skipped",
                    f"a header row, skipped: {lines[header][:60]!r}", count=1)
    rows: list[tuple[int, str, list]] = []
    for line, raw in enumerate(lines, 1):
        raw = raw.lstrip("\ufeff").rstrip("\t \r")
        if not raw.strip() or line - 1 == header:
            continue
        if "\t" not in raw:
            raise FormatError(f"{path}:{line}: expected text<TAB>[(type, start, end), ...], "
                              f"found no tab: {raw[:80]!r}", code="E107")
        text, label = raw.rsplit("\t", 1)
        items = parse_label_list(label.strip())
        if not isinstance(items, list):
            raise FormatError(f"{path}:{line}: the label column is not a list of (type, start, "
                              f"end): {label.strip()[:80]!r}", code="E107")
        rows.append((line, text, items))
    count = _offsets_count(path, rows, offsets, inclusive_end)
    n_spaced = sum(spaced(text) for _, text, _ in rows)
    if count == "chars" and n_spaced:
        report.rule(None, "spaced text read as characters",
                    f"{n_spaced} texts are space-separated characters whose offsets count the "
                    "characters only: read without the spaces (--offsets text reads the spaces "
                    "as text)", count=n_spaced)
    records = []
    for line, text, items in rows:
        if count == "chars" and spaced(text):
            text = text[0::2]
        entities = []
        for item in items:
            spec = _spans_of(item)
            if spec is None:
                report.problem(line, "bad entity", f"{item!r:.60} is not (type, start, end)")
                continue
            lab, start, end = spec
            if inclusive_end and is_int(end):
                end += 1
            entities.append(check_entity(text, start, end, lab, None, report, line))
        records.append(finish_record(text, entities, report, line))
    return records


def parse_tags(tags: str | dict[str, str] | None) -> dict[str, str]:
    """``"nr=PER,ns=LOC"`` (or a dict) -> ``{"nr": "PER", "ns": "LOC"}``."""
    if isinstance(tags, dict):
        return dict(tags)
    out = {}
    for pair in (tags or DEFAULT_TAGS).split(","):
        if pair.strip():
            if "=" not in pair:
                raise ConfigError(f"tags: {pair!r} is not word_tag=ENTITY_TYPE (e.g. "
                                 f"{DEFAULT_TAGS})", code="E302")
            k, v = pair.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def is_wordtag(lines: list[str]) -> bool:
    """Every whitespace-separated piece of every non-blank line is ``word/tag`` (brackets
    allowed), and there is more than one line or piece to go by."""
    pieces = 0
    for line in lines:
        for piece in line.split():
            if not WORD.match(piece):
                return False
            pieces += 1
    return pieces >= 2


def read_wordtag(path: Path, report: Report, tags: str | dict[str, str] | None = None,
                 token_sep: str | None = None) -> list[Record]:
    mapping = parse_tags(tags)
    records = []
    for line, raw in enumerate(text_lines(path, report.encoding), 1):
        if not raw.strip():
            continue
        words: list[str] = []
        labels: list[tuple[int, int, str]] = []  # (first word, last word + 1, word tag)
        open_at: int | None = None
        for piece in raw.split():
            m = WORD.match(piece)
            if not m:
                raise FormatError(f"{path}:{line}: {piece!r} is not word/tag", code="E107")
            opens, word, tag, closes, outer = m.groups()
            if opens:
                open_at = len(words)
            words.append(word)
            labels.append((len(words) - 1, len(words), tag))
            if closes:
                if open_at is None:
                    raise FormatError(f"{path}:{line}: {piece!r} closes a bracket that was "
                                      "not opened", code="E107")
                labels.append((open_at, len(words), outer))
                open_at = None
        if open_at is not None:
            raise FormatError(f"{path}:{line}: a bracket opened at word {open_at + 1} is not "
                              "closed", code="E107")
        text, starts = join_tokens(words, token_sep)
        entities = [check_entity(text, starts[a], starts[b - 1] + len(words[b - 1]), mapping[t],
                                 None, report, line)
                    for a, b, t in labels if t in mapping]
        records.append(finish_record(text, entities, report, line))
    return records
