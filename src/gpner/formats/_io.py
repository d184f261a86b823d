"""Helpers shared by the readers: JSON lines and JSON arrays with line numbers, type checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from gpner.records import FormatError


def iter_json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, object)`` for each non-blank line; bad JSON names file and line."""
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise FormatError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column "
                                  f"{exc.colno}): {line.strip()[:80]!r}") from None


def load_json_array(path: Path) -> list[tuple[int, Any]]:
    """Load a JSON array; return ``(line_number, item)`` pairs, the line where each item starts.

    Line numbers come from a raw_decode walk so that a problem in item 5,000 of a pretty-printed
    file can be found by line.
    """
    text = Path(path).read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column "
                          f"{exc.colno})") from None
    if not isinstance(data, list):
        raise FormatError(f"{path}:1: expected a JSON array, found {type(data).__name__}")
    decoder = json.JSONDecoder()
    pos, lines, out = text.index("[") + 1, 1 + text[: text.index("[")].count("\n"), []
    line_at = lines
    for item in data:
        # skip whitespace and commas up to the next item, counting newlines
        while text[pos] in " \t\r\n,":
            if text[pos] == "\n":
                line_at += 1
            pos += 1
        _, end = decoder.raw_decode(text, pos)
        out.append((line_at, item))
        line_at += text.count("\n", pos, end)
        pos = end
    return out


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
