"""Prediction over files of any size: inputs read line by line, outputs written as they come.

* :func:`read_inputs`: plain text (a line per text) or JSON lines with a ``text`` field, streamed
  with line numbers; other formats gpner reads (column files, BRAT, Label Studio, ...) through
  :func:`gpner.data.formats.read`. Every input line gives one output line: a blank line is an empty
  text. A bad JSON line (invalid JSON, no ``text``) is reported with its line number and skipped,
  or stops the run with ``strict``.
* :class:`ResumableOutput`: records go to ``OUT.partial`` and are flushed batch by batch; the
  file becomes ``OUT`` by a rename when the input is done. Inputs are predicted in blocks of
  ``BLOCK`` texts aligned to the start of the input, so a block's forward passes are the same
  whatever came before: ``resume`` keeps the complete blocks of a killed run's ``OUT.partial``
  (a torn last line and a half-written block are cut off), skips that many inputs, and the
  output is byte-identical to an uninterrupted run. ``OUT.partial.json`` records which input
  (path, size, modification time) and settings the partial belongs to; another input, other
  settings, or more lines than the input are refused. A lock on ``OUT.lock`` makes the output
  one writer's: a second run on the same ``OUT`` stops at once, naming the first.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

from gpner.atomic import atomic_write_text, writing
from gpner.errors import InputError

COLUMN_SUFFIXES = (".conll", ".bio", ".bioes", ".bmes", ".iob", ".iob2", ".tsv")


class BadInput(InputError):
    """A line that cannot be read, under ``strict``."""


@dataclass
class Item:
    """One input: its text and, for a JSON line, the whole object (fields pass through)."""

    text: str
    fields: dict[str, Any] | None = None


@dataclass
class InputReport:
    """What a prediction input gave: texts read, and the bad lines skipped with their reason."""

    source: str
    read: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)

    def summary(self) -> str:
        head = f"{self.source}: {self.read} texts"
        if not self.bad:
            return head
        return head + f", {len(self.bad)} bad line(s) skipped (first at line {self.bad[0][0]})"


def parse_line(line: str, kind: str, first: bool = True) -> Item:
    """One input line (``kind`` text or jsonl) -> Item; raises ValueError for a bad JSON line.
    The line end (``\\n`` or ``\\r\\n``) is not part of the text, nor a byte-order mark
    that opens the file (``first``); a U+FEFF that opens a later line is text, kept, so that
    offsets stay those of the file."""
    if first or kind == "jsonl":
        line = line.lstrip("\ufeff")
    if line.endswith("\n"):
        line = line[:-1]
    if line.endswith("\r"):
        line = line[:-1]
    if kind == "text":
        return Item(line)
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object with a \"text\" field, found "
                         f"{type(obj).__name__}")
    if not isinstance(obj.get("text"), str):
        raise ValueError("no \"text\" field" if "text" not in obj else
                         f"\"text\" is a {type(obj['text']).__name__}, not a string")
    return Item(obj["text"], obj)


def detect_kind(path: str | None, fmt: str | None = None, encoding: str | None = None) -> str:
    """``text``, ``jsonl`` (both streamed) or a gpner reader format."""
    if fmt:
        from gpner.data.formats import canonical

        return fmt if fmt in ("text", "jsonl") else canonical(fmt)
    if path is None or path == "-":
        return "auto"  # decided on the first line of stdin
    p = Path(path)
    if not p.exists():
        from gpner.errors import MissingFile

        raise MissingFile(f"{path}: no such file or directory")
    if p.is_dir():
        return "brat"
    if p.suffix.lower() in COLUMN_SUFFIXES:
        return "conll"
    line = _first_line(p)
    first = line.lstrip()[:1]
    if first == "{":
        return _annotated_json_lines(line) or "jsonl"
    from gpner.data.formats.pubtator import HEAD

    head = HEAD.match(line.rstrip("\r\n"))
    if head and head.group(2) == "t":
        return "pubtator"  # PMID|t|title: each document's text is its title and abstract
    if first == "[":
        from gpner.data.formats import detect_format

        return detect_format(str(p), encoding)
    if p.suffix.lower() == ".txt" and _looks_like_columns(p, encoding):
        return "conll"
    return "text"


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for line in f:
            if line.strip():
                return line
    return ""


def _annotated_json_lines(line: str) -> str | None:
    """The reader format of JSON lines whose first object (``line``) carries no ``text`` but
    tokens (DyGIE, token-level JSON, ...), so their texts are predicted rather than skipped."""
    import json

    from gpner.data.formats import _sniff_json_object

    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or "text" in obj:
        return None
    kind = _sniff_json_object(obj)
    return kind if kind in ("dygie", "tokens") else None


def _looks_like_columns(path: Path, encoding: str | None = None) -> bool:
    """A .txt file is a column file (CoNLL) only if the whole file is one (see
    :func:`gpner.data.formats.columns.not_columns`) with a blank or ``-DOCSTART-`` line between
    sentences; plain text whose lines end in ``O`` is not. Streamed: plain text fails on its
    first lines, and a file of any size is read in bounded memory."""
    from gpner.data.formats.columns import not_columns

    with open(path, encoding=encoding or "utf-8-sig", errors="replace", newline="") as f:
        lines = (line.rstrip("\r\n") for line in f)
        separated = False

        def watch(lines):
            nonlocal separated
            for line in lines:
                separated = separated or not line.strip() or line.startswith("-DOCSTART-")
                yield line

        return not_columns(watch(lines)) is None and separated


def read_inputs(path: str | None, kind: str, report: InputReport, strict: bool = False,
                skip: int = 0, encoding: str | None = None) -> Iterator[Item]:
    """Items of the input, lazily; the first ``skip`` items are read but not yielded
    (``--resume``). ``encoding``: of the input (default UTF-8; a BOM is dropped)."""
    if kind in ("text", "jsonl", "auto"):
        from gpner.textfiles import decode, decoded_lines

        decode(b"", report.source, encoding)  # an unknown encoding name fails here, clearly
        stream: IO[bytes]
        if path is None or path == "-":
            stream = open(sys.stdin.fileno(), "rb", closefd=False)
        else:
            if not Path(path).is_file():
                from gpner.errors import MissingFile

                raise MissingFile(f"{path}: no such file")
            stream = open(path, "rb")
        with stream:
            yield from _lines(decoded_lines(stream, report.source, encoding), kind, report,
                              strict, skip)
        return
    from gpner.data.formats import read

    if path is None:
        raise InputError(f"a {kind} input is read from a file, not from stdin", code="E501")
    corpus = read(path, kind, strict=strict, encoding=encoding)
    for k, rec in enumerate(corpus.records):
        report.read += 1
        if k >= skip:
            yield Item(rec["text"])


def _lines(lines: Iterator[str], kind: str, report: InputReport, strict: bool, skip: int
           ) -> Iterator[Item]:
    import logging

    log = logging.getLogger("gpner")
    n = 0
    for number, line in enumerate(lines, 1):
        if kind == "auto":
            if not line.strip():
                kind_here = "text"
            else:
                kind = "jsonl" if line.lstrip("\ufeff").lstrip().startswith("{") else "text"
                kind_here = kind
        else:
            kind_here = kind
        if kind_here == "jsonl" and not line.strip():
            report.bad.append((number, "blank line"))
            log.warning("%s:%d: blank line in JSON lines (skipped)", report.source, number)
            continue
        try:
            item = parse_line(line, kind_here, first=number == 1)
        except ValueError as exc:
            if strict:
                raise BadInput(f"{report.source}:{number}: {exc}", code="E501") from None
            report.bad.append((number, str(exc)))
            if len(report.bad) <= 10:
                log.warning("%s:%d: %s (skipped)", report.source, number, exc)
            continue
        report.read += 1
        n += 1
        if n > skip:
            yield item


def output_record(item: Item, record: Mapping[str, Any]) -> dict[str, Any]:
    """The record written for an input: a JSON line's fields pass through unchanged, with
    ``entities`` (and, from a relation model, ``relations``: the prediction) added or replacing
    the input's."""
    if item.fields is None:
        return dict(record)
    out = {**item.fields, "entities": record["entities"]}
    if "relations" in record:
        out["relations"] = record["relations"]
    else:
        out.pop("relations", None)  # the input's would index entities that were replaced
    return out


BLOCK = 512  # texts predicted together; resume points are multiples of it


class ResumableOutput:
    """Lines to ``path`` through ``path.partial``; see the module docstring. ``identity``:
    what the partial must belong to (the input and settings), checked on ``resume``."""

    def __init__(self, path: str | Path, resume: bool = False,
                 identity: dict | None = None):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.meta = self.path.with_name(self.path.name + ".partial.json")
        self.done = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(self.path)
        identity = identity or {}
        try:
            if resume and self.partial.exists():
                _check_identity(self.meta, identity, self.partial)
                self.done = _keep_complete_lines(self.partial, BLOCK)
                self.file = open(self.partial, "a", encoding="utf-8")
            else:
                self.file = open(self.partial, "w", encoding="utf-8")
                atomic_write_text(self.meta, json.dumps(identity))
        except BaseException:
            self._lock.close()
            raise

    def write(self, line: str) -> None:
        with writing(self.path):
            self.file.write(line + "\n")

    def flush(self) -> None:
        with writing(self.path):
            self.file.flush()

    def check_total(self, read: int) -> None:
        """After the input ran out: a partial with more lines than the input had texts does not
        belong to it (E503), and is kept for the user to look at."""
        if self.done > read:
            raise InputError(f"{self.partial}: holds {self.done} lines but the input has "
                             f"{read} texts: it is another input's partial output; remove it "
                             "or run without --resume", code="E503")

    def finish(self) -> None:
        with writing(self.path):
            self.file.flush()
            os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.partial, self.path)
        self.meta.unlink(missing_ok=True)

    def close(self) -> None:  # a failed run: keep the partial file for --resume
        if not self.file.closed:
            try:
                self.file.close()
            except OSError:  # its buffer could not be written (a full disk): already reported
                pass
        self._lock.close()


def input_identity(path: str | None, settings: dict) -> dict:
    """What a partial output belongs to: the input file (resolved path, size, modification
    time) and the settings that change its lines."""
    ident: dict = {"settings": settings}
    if path not in (None, "-"):
        st = Path(path).stat()
        ident["input"] = {"path": str(Path(path).resolve()), "size": st.st_size,
                          "mtime_ns": st.st_mtime_ns}
    return ident


def _check_identity(meta: Path, identity: dict, partial: Path) -> None:
    """E503 when the partial was written for another input or other settings."""
    if not meta.exists():
        raise InputError(f"{partial}: no record of the input it was written for "
                         f"({meta.name} is missing): it cannot be resumed safely; remove it or "
                         "run without --resume", code="E503")
    saved = json.loads(meta.read_text(encoding="utf-8") or "{}")
    if saved != identity:
        what = [k for k in sorted(set(saved) | set(identity)) if saved.get(k) != identity.get(k)]
        raise InputError(f"{partial}: written for another {' and '.join(what)} "
                         f"({saved.get(what[0])} then, {identity.get(what[0])} now); resuming "
                         "would mix two outputs. Run without --resume to start again",
                         code="E503")


class _Lock:
    """An exclusive lock on ``OUT.lock`` (POSIX ``flock``), released on close or process exit."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _lock(path: Path) -> _Lock:
    """The output's lock, or E504 naming the process that holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return _Lock(None)
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode("ascii", "replace").strip() or "another process"
        os.close(fd)
        raise InputError(f"{path}: another gpner run (process {holder}) is writing it; wait "
                         "for it, or write another file", code="E504") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return _Lock(fd)


def _keep_complete_lines(path: Path, block: int = 1) -> int:
    """Cut ``path`` after its last complete block of ``block`` lines (a torn last line and a
    half-written block go); the number of lines kept."""
    with open(path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        lines = data[:end].count(b"\n")
        keep = lines - lines % block
        cut = 0
        for _ in range(keep):
            cut = data.index(b"\n", cut) + 1
        f.truncate(cut)
    return keep