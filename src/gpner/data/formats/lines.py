"""Line formats with the annotation on the line: TSV ``text<TAB>spans`` and word/tag segmented
text.

**tsv**: ``text<TAB>[("PER", 0, 2), ("LOC", 3, 5)]``: the label column is a JSON or Python
literal list of (type, start, end) with character offsets, ``end`` exclusive (``inclusive_end``
for data sets whose end is the last character). The type may come first or last.

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


def is_tsv(lines: list[str]) -> bool:
    """Every non-blank line is ``text<TAB>list`` with a readable list."""
    seen = 0
    for line in lines:
        if not line.strip():
            continue
        if "\t" not in line:
            return False
        label = line.rsplit("\t", 1)[1].strip()
        if not label.startswith("[") or not isinstance(parse_label_list(label), list):
            return False
        seen += 1
    return seen > 0


def read_tsv(path: Path, report: Report, inclusive_end: bool = False) -> list[Record]:
    records = []
    for line, raw in enumerate(text_lines(path, report.encoding), 1):
        if not raw.strip():
            continue
        if "\t" not in raw:
            raise FormatError(f"{path}:{line}: expected text<TAB>[(type, start, end), ...], "
                              f"found no tab: {raw[:80]!r}", code="E107")
        text, label = raw.rsplit("\t", 1)
        items = parse_label_list(label.strip())
        if not isinstance(items, list):
            raise FormatError(f"{path}:{line}: the label column is not a list of (type, start, "
                              f"end): {label.strip()[:80]!r}", code="E107")
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
