"""Reading text files with their places: bytes -> text in a named encoding (a BOM dropped,
undecodable bytes named by file, line and byte offset), lines numbered as an editor shows them,
JSON whose errors name file and line, and the JSON objects of a model directory.

Every reader of data, settings and model files goes through here, so an encoding or JSON
problem reads the same wherever it is found.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any, Iterator

from gpner.errors import (
    ConfigError,
    DataEncodingError,
    DataError,
    GpnerError,
    MissingFile,
    ModelFileError,
    ModelNotFound,
)

DEFAULT_ENCODING = "utf-8"


def decode(raw: bytes, source: str | Path, encoding: str | None = None) -> str:
    """``raw`` as text in ``encoding`` (default UTF-8); a leading byte-order mark is dropped.

    Undecodable bytes are a :class:`DataEncodingError` naming file, line and byte offset and
    suggesting ``--encoding``; an unknown encoding name is an error that names it.
    """
    import codecs

    name = encoding or DEFAULT_ENCODING
    try:
        codecs.lookup(name)
    except LookupError:
        raise ConfigError(f"--encoding {name!r} is not an encoding Python knows (e.g. utf-8, "
                          "gbk, gb18030, big5, utf-16, latin-1)", code="E303") from None
    try:
        text = raw.decode(name)
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        raise encoding_error(source, raw.count(b"\n", 0, exc.start) + 1, exc.start,
                             exc.start - line_start, raw[exc.start], encoding) from None
    return text[1:] if text.startswith("\ufeff") else text  # a BOM is not text


def encoding_error(source: str | Path, line: int, offset: int, in_line: int, byte: int,
                   encoding: str | None) -> DataEncodingError:
    """E103 for an undecodable ``byte`` at byte ``offset`` of the file (``in_line`` bytes into
    its ``line``), with the hint to pass ``--encoding`` when none was given."""
    hint = ("; pass --encoding (e.g. --encoding gbk for Chinese text from Windows) or convert "
            "the file to UTF-8" if encoding is None else "; check --encoding")
    return DataEncodingError(f"{source}:{line}: byte {byte:#04x} at byte offset {offset} (byte "
                             f"{in_line + 1} of the line) is not valid "
                             f"{encoding or DEFAULT_ENCODING}{hint}")


def read_text(path: str | Path, encoding: str | None = None) -> str:
    """The whole file as text (see :func:`decode`); a missing file is a clear error."""
    path = Path(path)
    if not path.exists():
        raise MissingFile(f"{path}: no such file or directory")
    if path.is_dir():
        raise DataError(f"{path}: a directory, where a data file is expected", code="E104")
    return decode(path.read_bytes(), path, encoding)


def text_lines(path: str | Path, encoding: str | None = None) -> list[str]:
    """Lines without their ``\\n``/``\\r\\n``; numbering as an editor shows it (only
    ``\\n`` breaks a line)."""
    return split_lines(read_text(path, encoding))


def split_lines(text: str) -> list[str]:
    """``text`` cut at ``\\n`` only (``str.splitlines`` also cuts at \\x1c, \\u2028, ...,
    which would shift line numbers), each line without its ``\\r``."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [x[:-1] if x.endswith("\r") else x for x in lines]


def json_line(obj: Any) -> str:
    """One JSON line (no newline): UTF-8 text as is, but U+2028 and U+2029 escaped, since
    line-based readers (``str.splitlines``, JavaScript) would break the line there."""
    return json.dumps(obj, ensure_ascii=False).replace("\u2028", "\\u2028").replace(
        "\u2029", "\\u2029")


def parse_json(text: str, source: str, line: int | None = None) -> Any:
    """``json.loads`` whose errors name the place: E101 for bad JSON, E113 for deep nesting."""
    where = f"{source}:{line}" if line is not None else str(source)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"{source}:{exc.lineno}" if line is None else where
        snippet = f": {text.strip()[:80]!r}" if line is not None else ""
        raise DataError(f"{at}: invalid JSON ({exc.msg} at column {exc.colno}){snippet}",
                        code="E101") from None
    except RecursionError:
        raise DataError(f"{where}: JSON nested too deeply to read (more than about "
                        f"{sys.getrecursionlimit()} levels)", code="E113") from None


def iter_json_lines(path: Path, encoding: str | None = None, text: str | None = None
                    ) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, object)`` for each non-blank line; bad JSON names file and line.
    ``text``: the file's text, when the caller has read it already."""
    for lineno, line in enumerate(split_lines(read_text(path, encoding) if text is None
                                              else text), 1):
        if line.strip():
            yield lineno, parse_json(line, str(path), lineno)


def load_json_array(path: Path, encoding: str | None = None, text: str | None = None
                    ) -> list[tuple[int, Any]]:
    """Load a JSON array; return ``(line_number, item)`` pairs, the line where each item starts.

    Line numbers come from a raw_decode walk so that a problem in item 5,000 of a pretty-printed
    file can be found by line.
    """
    text = read_text(path, encoding) if text is None else text
    data = parse_json(text, str(path))
    if not isinstance(data, list):
        raise DataError(f"{path}:1: expected a JSON array, found {type(data).__name__}")
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


def json_records(path: Path, encoding: str | None = None) -> list[tuple[int, Any]]:
    """A JSON array or JSON lines, whichever the file is: ``(line_number, item)`` pairs."""
    text = read_text(path, encoding)
    if text.lstrip()[:1] == "[":
        return load_json_array(path, encoding, text)
    return list(iter_json_lines(path, encoding, text))


def read_model_json(path: Path, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object of a model directory; a missing file (E207), bad JSON or bytes (E202) or a
    missing key (E203) is a :class:`ModelFileError` naming the file."""
    if not path.is_file():
        raise ModelNotFound(f"{path}: missing from the model directory", code="E207")
    try:
        data = parse_json(read_text(path), str(path))
    except GpnerError as exc:
        raise ModelFileError(exc.message, code="E202") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a JSON object, found {type(data).__name__}",
                             code="E202")
    missing = [k for k in keys if k not in data]
    if missing:
        raise ModelFileError(f"{path}: missing key(s) {missing}", code="E203")
    return data


def decoded_lines(stream: IO[bytes], source: str, encoding: str | None) -> Iterator[str]:
    """Lines of a byte stream as text, each with its ``\\n`` (a lone ``\\r`` inside a line is
    text). Undecodable bytes stop the run with file, line and byte offset
    (:class:`~gpner.errors.DataEncodingError`)."""
    name = encoding or "utf-8"
    if "\n".encode(name) != b"\n":  # UTF-16/32: lines cannot be cut as bytes
        import io

        for line in io.TextIOWrapper(stream, encoding=name, newline="\n"):
            yield line
        return
    offset = 0
    for number, raw in enumerate(stream, 1):  # a binary file iterates lines cut at b"\n"
        try:
            line = raw.decode(name)
        except UnicodeDecodeError as exc:
            raise encoding_error(source, number, offset + exc.start, exc.start,
                                 raw[exc.start], encoding) from None
        offset += len(raw)
        yield line

