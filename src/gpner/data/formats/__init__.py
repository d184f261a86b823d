"""Read any supported annotation format into records, write records back out.

>>> corpus = read("train.json")            # format detected: CLUENER, CMeEE, doccano, ...
>>> corpus.report.summary()                # what was read, what was skipped and why
>>> write(corpus, "train.bio", "conll")

Formats: ``jsonl`` (ours), ``cluener``, ``cmeee``, ``conll`` (any column file, any tag scheme),
``brat``, ``doccano``, ``label-studio``, ``tokens`` (token-level JSON: ACE, GENIA, W2NER, SpERT),
``tsv`` (``text<TAB>[(type, start, end)]``), ``wordtag`` (``word/tag`` segmented lines),
``prodigy``, ``spacy`` (DocBin), ``pubtator`` (biomedical), ``dygie`` (DyGIE/DyGIE++ JSON);
relation data: ``casrel`` (WebNLG/NYT triple lists) and
``spo`` (DuIE/CMeIE ``spo_list``), whose entities are located by string (``formats.triples``),
and the relations of ``jsonl``, ``brat``, ``doccano`` and ``label-studio``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from gpner.errors import ArgumentTypeError, DataError, GpnerError, MissingFile
from gpner.records import Corpus, Entity, FormatError, Record, Report

READERS = ("jsonl", "cluener", "cmeee", "conll", "brat", "doccano", "label-studio", "casrel",
           "spo", "tokens", "tsv", "wordtag", "prodigy", "spacy", "pubtator", "dygie")
WRITERS = ("jsonl", "cluener", "cmeee", "conll", "brat", "doccano", "label-studio", "casrel",
           "pubtator", "dygie")
# the writers that keep a record's relations
RELATION_WRITERS = ("jsonl", "brat", "doccano", "label-studio", "casrel", "pubtator", "dygie")
ALIASES = {"json": "jsonl", "columns": "conll", "column": "conll", "bio": "conll",
           "labelstudio": "label-studio", "ls": "label-studio", "webnlg": "casrel",
           "nyt": "casrel", "duie": "spo", "cmeie": "spo", "ace": "tokens", "genia": "tokens",
           "w2ner": "tokens", "spert": "tokens", "token-json": "tokens", "docbin": "spacy",
           "word-tag": "wordtag", "pd1998": "wordtag", "bioc-pubtator": "pubtator",
           "dygiepp": "dygie", "dygie++": "dygie", "scierc": "dygie"}


# format -> (module under gpner.data.formats, reader, writer); modules load on first use
_IMPL: dict[str, tuple[str, str, str | None]] = {
    "jsonl": ("jsonl", "read", "write"),
    "cluener": ("cluener", "read", "write"),
    "cmeee": ("cmeee", "read", "write"),
    "conll": ("columns", "read", "write"),
    "brat": ("brat", "read", "write"),
    "doccano": ("doccano", "read_doccano", "write_doccano"),
    "label-studio": ("doccano", "read_label_studio", "write_label_studio"),
    "casrel": ("triples", "read_casrel", "write_casrel"),
    "spo": ("triples", "read_spo", None),
    "tokens": ("tokens", "read", None),
    "tsv": ("lines", "read_tsv", None),
    "wordtag": ("lines", "read_wordtag", None),
    "prodigy": ("prodigy", "read_prodigy", None),
    "spacy": ("prodigy", "read_docbin", None),
    "pubtator": ("pubtator", "read", "write"),
    "dygie": ("dygie", "read", "write"),
}


def _impl(fmt: str, which: str) -> Any:
    from importlib import import_module

    module, reader, writer = _IMPL[fmt]
    name = reader if which == "read" else writer
    if name is None:
        raise DataError(f"gpner reads {fmt} but does not write it", code="E110")
    return getattr(import_module(f"gpner.data.formats.{module}"), name)


def canonical(fmt: str) -> str:
    fmt = ALIASES.get(fmt.lower(), fmt.lower())
    if fmt not in READERS:
        raise DataError(f"unknown format {fmt!r}; known: {', '.join(READERS)}", code="E109")
    return fmt


def _sniff_json_object(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    from gpner.data.formats import dygie, prodigy, tokens
    from gpner.data.formats.triples import sniff

    triples = sniff(obj)
    if triples:
        return triples
    if dygie.sniff(obj):
        return "dygie"
    if tokens.sniff(obj):
        return "tokens"
    if prodigy.sniff(obj):
        return "prodigy"
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


def detect_format(path: str | Path, encoding: str | None = None) -> str:
    """The format of ``path`` from its layout and content; ambiguity is an error (E104).

    Plain text is never taken for annotations: a file that is not JSON is a column file only if
    every line is (the same number of columns, a tag in the last), a word/tag or TSV file only
    if every line is.
    """
    from gpner.textfiles import read_text

    path = Path(path)
    if not path.exists():
        raise MissingFile(f"{path}: no such file or directory")
    if path.is_dir() or path.suffix == ".ann":
        return "brat"
    if path.suffix == ".spacy":
        return "spacy"
    text = read_text(path, encoding)
    if not text.strip():
        raise DataError(f"{path}: an empty file (no records)", code="E112")
    first = text.lstrip()[:1]
    # a .json/.jsonl name says JSON: a parser error is then the right reason
    json_named = path.suffix.lower() in (".json", ".jsonl", ".ndjson")
    if first in ("[", "{") and (json_named or _json_like(text)):
        return _detect_array(path, encoding) if first == "[" else _detect_json_lines(path, text)
    return _detect_lines(path, text)


def _json_like(text: str) -> bool:
    """Whether ``text`` begins the way JSON does: its first line is a JSON value (JSON lines),
    or an array opens on a JSON value. A wordtag line (``[中国/ns 政府/n]nt``) or a text line
    that opens with a brace is not, and is judged as lines, so a refusal gives its real reason
    rather than a parser error of a format the file is not."""
    import json

    stripped = text.lstrip()
    if stripped[:1] == "[":
        return stripped[1:].lstrip()[:1] in tuple('{["-]tfn0123456789')
    line = stripped.split("\n", 1)[0]
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        # a pretty-printed object spans lines: JSON if a key follows the brace
        return line.strip() == "{" or line[1:].lstrip()[:1] == '"' and '":' in line
    return True


def _detect_array(path: Path, encoding: str | None) -> str:
    """The format of a JSON array, from its first 200 items."""
    from gpner.data.formats._io import span_like
    from gpner.data.formats.doccano import min_spans
    from gpner.textfiles import load_json_array

    items = [obj for _, obj in load_json_array(path, encoding)[:200]]
    if items and isinstance(items[0], dict) and "data" in items[0]:
        return "label-studio"
    if any(min_spans(obj) for obj in items):
        return "label-studio"  # the JSON-MIN export
    for obj in items:
        kind = _sniff_json_object(obj)
        if kind in ("casrel", "tokens"):
            return kind
        if kind in ("cmeee", "jsonl"):
            return "cmeee" if kind == "cmeee" else "jsonl-array"
    spans = next(((k, v) for o in items if isinstance(o, dict) for k, v in o.items()
                  if k != "entities" and (span_like(v) or isinstance(v, list) and v
                                          and isinstance(v[0], dict) and "start" in v[0])),
                 None)
    if spans is not None:  # never read as "no entities": that would drop them silently
        raise DataError(f"{path}: a JSON array whose items hold span-like data under "
                        f"{spans[0]!r} ({spans[1][0]!r:.80}) in no layout gpner knows; "
                        "pass --format, or convert it to gpner JSON lines", code="E106")
    if items and all(isinstance(o, dict) and "text" in o for o in items):
        return "cmeee"  # no entities anywhere: any array reader gives the same records
    raise DataError(f"{path}: a JSON array, but of no format gpner knows (CMeEE, Label "
                    "Studio, WebNLG, token-level JSON); pass --format", code="E104")


def _detect_json_lines(path: Path, text: str) -> str:
    """The format of JSON lines, from their first 200 lines: one, or an error."""
    from gpner.textfiles import parse_json

    kinds = set()
    for number, line in enumerate(text.split("\n")[:200], 1):
        if line.strip():
            kind = _sniff_json_object(parse_json(line, str(path), number))
            if kind:
                kinds.add(kind)
    if len(kinds) > 1:
        raise DataError(f"{path}: looks like several formats ({sorted(kinds)}); "
                        "pass --format", code="E104")
    return kinds.pop() if kinds else "jsonl"


def _detect_lines(path: Path, text: str) -> str:
    """A file that is not JSON: TSV, word/tag or a column file only if every line is one."""
    from gpner.data.formats import columns, lines, pubtator

    rows = [x[:-1] if x.endswith("\r") else x for x in text.split("\n")]
    if pubtator.is_pubtator(rows):
        return "pubtator"
    if lines.is_tsv(rows):
        return "tsv"
    if lines.is_wordtag(rows):
        return "wordtag"
    why = columns.not_columns(rows)
    if why is None:
        return "conll"
    raise DataError(f"{path}: plain text, not annotations gpner can tell ({why}); pass "
                    "--format if it is annotated (conll, wordtag, tsv, ...), or tag raw text "
                    "with gpner predict", code="E104")


def read(path: str | Path, format: str | None = None, *, strict: bool = False,
         encoding: str | None = None, **options: Any) -> Corpus:
    """Read ``path`` into a :class:`Corpus`; ``format=None`` detects it.

    Problems (offsets out of range, mention mismatches, scheme violations, discontinuous spans)
    are counted in ``corpus.report`` and logged with file and line; ``strict=True`` raises
    :class:`DataError` on the first one. ``encoding`` is the files' text encoding (default
    UTF-8). ``options`` go to the reader (``scheme``, ``token_sep``, ``token_pattern`` for
    column files; ``tags`` for wordtag; ``inclusive_end`` for tsv).

    A forced ``format`` that reads no entity from a file that another format reads entities
    from is an error (E105), not an unlabelled corpus.
    """
    if not isinstance(path, (str, Path)):
        raise ArgumentTypeError(f"path should be a file path, got {type(path).__name__}",
                                code="E502")
    path = Path(path)
    if not path.exists():
        raise MissingFile(f"{path}: no such file or directory")
    fmt = canonical(format) if format else detect_format(path, encoding)
    if fmt == "jsonl-array":
        raise DataError(f"{path}: a JSON array of records; gpner's format is JSON lines "
                        "(one record per line)", code="E104")
    report = Report(str(path), strict=strict, encoding=encoding)
    reader = _impl(fmt, "read")
    import inspect

    unknown = set(options) - set(inspect.signature(reader).parameters)
    if unknown:
        raise DataError(f"{path}: the {fmt} reader has no option {', '.join(sorted(unknown))}",
                        code="E109")
    records = reader(path, report, **options)
    if format and records and not report.entities:
        _check_forced(path, fmt, encoding, len(records))
    return Corpus(records, report)


def read_any(path: str | Path, format: str | None = None, *, encoding: str | None = None,
             **options: Any) -> Corpus:
    """:func:`read` with the options its format's reader takes and the others left out: for a
    caller that reads files of any format with one set of options (``scheme`` applies to tag
    files, ``unit`` to DyGIE, ...)."""
    import inspect

    fmt = canonical(format) if format else detect_format(path, encoding)
    if fmt == "jsonl-array":
        return read(path, format, encoding=encoding)  # refused there, with the reason
    takes = inspect.signature(_impl(fmt, "read")).parameters
    return read(path, fmt, encoding=encoding,  # detected once, here
                **{k: v for k, v in options.items() if k in takes})


def _check_forced(path: Path, fmt: str, encoding: str | None, n: int) -> None:
    """E105 when ``path`` is detected as another format that reads entities from it."""
    try:
        other = detect_format(path, encoding)
        if other in (fmt, "jsonl-array"):
            return
        probe = Report(str(path), encoding=encoding)
        _impl(other, "read")(path, probe)
    except GpnerError:
        return
    if probe.entities:
        raise DataError(f"{path}: --format {fmt} reads {n} records and no entity, but the file "
                        f"looks like {other} ({probe.entities} entities); drop --format or pass "
                        f"--format {other}", code="E105")


def mark(record: Record, limit: int = 160) -> str:
    """The record's text with its entities marked, ``[北京]LOC大学``; nested ones nest:
    ``[[北京]LOC大学]ORG`` (at an end, inner spans close first). Cut after ``limit`` characters
    of text."""
    text = record["text"]
    opens: dict[int, list[Entity]] = {}
    closes: dict[int, list[Entity]] = {}
    for e in record.get("entities", []):
        opens.setdefault(e["start"], []).append(e)
        closes.setdefault(e["end"], []).append(e)
    out = []
    cut = min(len(text), limit)
    for i in range(cut + 1):
        for e in sorted(closes.get(i, []), key=lambda e: e["start"], reverse=True):
            out.append(f"]{e['label']}")
        if i == cut:
            break
        out.append("[" * len(opens.get(i, [])))
        out.append(text[i])
    return "".join(out).replace("\n", "\\n") + (" ..." if cut < len(text) else "")


def preview(records: list[Record]) -> str:
    """The first record with entities (else the first), marked (see :func:`mark`)."""
    for r in records:
        if r["entities"]:
            return mark(r)
    return mark(records[0]) if records else ""


def output_format(path: str | Path) -> str:
    """The format implied by an output path's extension (a directory or no suffix is BRAT)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".pubtator":
        return "pubtator"
    if suffix in (".bio", ".conll", ".txt", ".tsv", ".iob", ".bmes", ".bioes", ".char"):
        return "conll"
    if suffix == "" or path.is_dir():
        return "brat"
    raise DataError(f"{path}: cannot tell the output format from {suffix!r}; pass --to "
                     f"({', '.join(WRITERS)})", code="E109")


def write(records: Iterable[Record] | Corpus, path: str | Path, format: str | None = None,
          drop_relations: bool = False, **options: Any) -> int:
    """Write records to ``path`` in ``format`` (default: from the extension).

    ``conll`` takes ``scheme`` (bio, iob1, bioes, bmes) and raises ValueError on nested entities.
    Relations are refused by a format that cannot hold them (cluener, cmeee, conll)
    unless ``drop_relations`` writes the entities without them. Returns the number of relations
    left out (0 unless ``drop_relations`` had to).
    """
    path = Path(path)
    fmt = canonical(format) if format else output_format(path)
    if fmt not in WRITERS:
        raise DataError(f"gpner reads {fmt} but does not write it; writers: "
                        f"{', '.join(WRITERS)}", code="E110")
    records = list(records)
    linked = [len(r.get("relations") or ()) for r in records]
    if any(linked) and fmt not in RELATION_WRITERS:
        if not drop_relations:  # a silent drop would lose them on a plain `gpner convert`
            raise DataError(
                f"{path}: {sum(linked)} relations in {sum(map(bool, linked))} records, which "
                f"{fmt} cannot hold; write {', '.join(RELATION_WRITERS)}, or write the entities "
                "alone (gpner convert --drop-relations; write(..., drop_relations=True))",
                code="E110")  # with drop_relations these writers just leave them out
    writer = _impl(fmt, "write")
    writer(records, path, **options)
    return 0 if fmt in RELATION_WRITERS else sum(linked)


__all__ = ["read", "read_any", "write", "detect_format", "output_format", "READERS", "WRITERS",
           "Corpus", "Report", "FormatError"]
