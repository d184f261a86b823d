"""Helpers shared by the readers: JSON lines and JSON arrays with line numbers, type checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpner.errors import DataError
from gpner.records import FormatError, is_int


def expect(obj: Any, key: str, kind: type | tuple[type, ...], path: Path, line: int) -> Any:
    """``obj[key]`` checked for type; a missing key or wrong type is a FormatError."""
    if not isinstance(obj, dict):
        raise FormatError(f"{path}:{line}: expected a JSON object, found {type(obj).__name__}")
    if key not in obj:
        raise FormatError(f"{path}:{line}: missing key {key!r} (keys: {sorted(obj)[:8]})")
    value = obj[key]
    if not isinstance(value, kind):
        raise FormatError(f"{path}:{line}: {key!r} should be {getattr(kind, '__name__', kind)}, "
                          f"found {type(value).__name__}: {str(value)[:60]!r}")
    return value


def listed(obj: dict, key: str, path: Path, line: int) -> list:
    """``obj[key]`` as a list: missing or null is an empty list; anything else that is not a
    list is a FormatError (iterating a string or a number would misread it, or crash)."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise FormatError(f"{path}:{line}: {key!r} should be a list, found "
                          f"{type(value).__name__}: {str(value)[:60]!r}")
    return value


def join_tokens(tokens: list[str], sep: str | None = None) -> tuple[str, list[int]]:
    """Tokens -> (text, start offset of each token).

    ``sep=None`` joins by script: no space where either neighbouring character is CJK (Chinese
    and Japanese are written without spaces), one space elsewhere; a given ``sep`` is used
    everywhere.
    """
    from gpner.text.tokenization import is_cjk

    parts: list[str] = []
    starts: list[int] = []
    pos = 0
    for k, tok in enumerate(tokens):
        if k:
            glue = sep if sep is not None else (
                "" if (tokens[k - 1] and tok and (is_cjk(tokens[k - 1][-1]) or is_cjk(tok[0])))
                else " ")
            parts.append(glue)
            pos += len(glue)
        starts.append(pos)
        parts.append(tok)
        pos += len(tok)
    return "".join(parts), starts


def span_like(value: Any) -> bool:
    """A non-empty list of objects (or lists) holding two or more integers: what spans look
    like under whatever key a data set uses."""
    if not isinstance(value, list) or not value:
        return False
    first = value[0]
    items = first.values() if isinstance(first, dict) else (
        first if isinstance(first, (list, tuple)) else ())
    return sum(is_int(v) for v in items) >= 2


def refuse_unknown_spans(obj: dict, known: tuple[str, ...], path: Path, line: int,
                         reads: str) -> None:
    """A key outside ``known`` that holds span-like data is an error naming it (E106): the
    record's entities would otherwise be read as none."""
    for key, value in obj.items():
        if key not in known and span_like(value):
            raise DataError(f"{path}:{line}: key {key!r} holds span-like data ({value[0]!r:.80}) "
                            f"that this format does not read (it reads {reads}); rename the key "
                            "or pass --format for the data's own format", code="E106")
