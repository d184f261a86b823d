"""Read any supported annotation format into records, write records back out.

>>> corpus = read("train.json")            # format detected: CLUENER, CMeEE, doccano, ...
>>> corpus.report.summary()                # what was read, what was skipped and why
>>> write(corpus, "train.bio", "conll")

Formats: ``jsonl`` (ours), ``cluener``, ``cmeee``, ``conll`` (any column file, any tag scheme),
``brat``, ``doccano``, ``label-studio``; relation data: ``casrel`` (WebNLG/NYT triple lists) and
``spo`` (DuIE/CMeIE ``spo_list``), whose entities are located by string (``formats.triples``),
and the relations of ``jsonl``, ``brat``, ``doccano`` and ``label-studio``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from gpner.records import Corpus, FormatError, Record, Report

READERS = ("jsonl", "cluener", "cmeee", "conll", "brat", "doccano", "label-studio", "casrel",
           "spo")
WRITERS = ("jsonl", "cluener", "cmeee", "conll", "brat", "doccano", "label-studio", "casrel")
ALIASES = {"json": "jsonl", "columns": "conll", "column": "conll", "bio": "conll",
           "labelstudio": "label-studio", "ls": "label-studio", "webnlg": "casrel",
           "nyt": "casrel", "duie": "spo", "cmeie": "spo"}


# format -> (module under gpner.formats, reader, writer); modules load on first use
_IMPL = {
    "jsonl": ("jsonl", "read", "write"),
    "cluener": ("cluener", "read", "write"),
    "cmeee": ("cmeee", "read", "write"),
    "conll": ("columns", "read", "write"),
    "brat": ("brat", "read", "write"),
    "doccano": ("doccano", "read_doccano", "write_doccano"),
    "label-studio": ("doccano", "read_label_studio", "write_label_studio"),
    "casrel": ("triples", "read_casrel", "write_casrel"),
    "spo": ("triples", "read_spo", None),
}


def _impl(fmt: str, which: str) -> Any:
    from importlib import import_module

    module, reader, writer = _IMPL[fmt]
    return getattr(import_module(f"gpner.formats.{module}"), reader if which == "read" else writer)


def canonical(fmt: str) -> str:
    fmt = ALIASES.get(fmt.lower(), fmt.lower())
    if fmt not in READERS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(READERS)}")
    return fmt


def _sniff_json_object(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    from gpner.formats.triples import sniff

    triples = sniff(obj)
    if triples:
        return triples
    if isinstance(obj.get("label"), dict):
        return "cluener"
    if isinstance(obj.get("label"), list):
        return "doccano"
    ents = obj.get("entities")
    if isinstance(ents, list) and ents and isinstance(ents[0], dict):
        if "start_offset" in ents[0]:
            return "doccano"
        if "start_idx" in ents[0]:
            return "cmeee"
        if "start" in ents[0]:
            return "jsonl"
    return None


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path`` from its layout and content; ambiguity is an error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir() or path.suffix == ".ann":
        return "brat"
    with open(path, encoding="utf-8-sig") as f:
        head = f.read(1 << 16)
    first = head.lstrip()[:1]
    if first == "[":
        from gpner.formats._io import load_json_array

        items = [obj for _, obj in load_json_array(path)[:200]]
        if items and isinstance(items[0], dict) and "data" in items[0]:
            return "label-studio"
        for obj in items:
            kind = _sniff_json_object(obj)
            if kind == "casrel":
                return "casrel"
            if kind in ("cmeee", "jsonl"):
                return "cmeee" if kind == "cmeee" else "jsonl-array"
        if items and all(isinstance(o, dict) and "text" in o for o in items):
            return "cmeee"  # no entities anywhere: any array reader gives the same records
        raise FormatError(f"{path}: a JSON array, but neither CMeEE nor Label Studio; "
                          "pass --format")
    if first == "{":
        kinds = set()
        for line in head.splitlines()[:200]:
            try:
                kind = _sniff_json_object(json.loads(line))
            except json.JSONDecodeError:
                continue
            if kind:
                kinds.add(kind)
        if len(kinds) > 1:
            raise FormatError(f"{path}: looks like several formats ({sorted(kinds)}); "
                              "pass --format")
        return kinds.pop() if kinds else "jsonl"
    return "conll"


def read(path: str | Path, format: str | None = None, *, strict: bool = False,
         **options: Any) -> Corpus:
    """Read ``path`` into a :class:`Corpus`; ``format=None`` detects it.

    Problems (offsets out of range, mention mismatches, scheme violations, discontinuous spans)
    are counted in ``corpus.report`` and logged with file and line; ``strict=True`` raises
    :class:`FormatError` on the first one. ``options`` go to the reader (``scheme``,
    ``token_sep`` for column files).
    """
    path = Path(path)
    fmt = canonical(format) if format else detect_format(path)
    if fmt == "jsonl-array":
        raise FormatError(f"{path}: a JSON array of records; gpner's format is JSON lines "
                          "(one record per line)")
    report = Report(str(path), strict=strict)
    reader = _impl(fmt, "read")
    records = reader(path, report, **options)
    return Corpus(records, report)


def output_format(path: str | Path) -> str:
    """The format implied by an output path's extension (a directory or no suffix is BRAT)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix in (".bio", ".conll", ".txt", ".tsv", ".iob", ".bmes", ".bioes", ".char"):
        return "conll"
    if suffix == "" or path.is_dir():
        return "brat"
    raise ValueError(f"{path}: cannot tell the output format from {suffix!r}; pass --to "
                     f"({', '.join(WRITERS)})")


def write(records: Iterable[Record] | Corpus, path: str | Path, format: str | None = None,
          **options: Any) -> None:
    """Write records to ``path`` in ``format`` (default: from the extension).

    ``conll`` takes ``scheme`` (bio, iob1, bioes, bmes) and raises ValueError on nested entities.
    """
    path = Path(path)
    fmt = canonical(format) if format else output_format(path)
    if fmt not in WRITERS:
        raise ValueError(f"gpner reads {fmt} but does not write it; writers: {', '.join(WRITERS)}")
    records = list(records)
    writer = _impl(fmt, "write")
    writer(records, path, **options)


__all__ = ["read", "write", "detect_format", "output_format", "READERS", "WRITERS",
           "Corpus", "Report", "FormatError"]
