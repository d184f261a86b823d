"""BRAT standoff: ``DOC.txt`` + ``DOC.ann`` with ``T1<TAB>Type start end<TAB>surface`` lines.

One record per document. Discontinuous spans (``Type 0 5;16 23``) cannot be a GlobalPointer span:
they are reported and skipped. Relations ``R1<TAB>Label Arg1:T1 Arg2:T2`` become the record's
``relations`` (Arg1 the head); events, attributes, equivalences and notes are counted and ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from gpner.atomic import atomic_write_text
from gpner.errors import DataError
from gpner.records import Entity, FormatError, Record, Report, check_entity, finish_record
from gpner.textfiles import read_text, text_lines


def ann_files(path: Path) -> list[Path]:
    """The ``.ann`` files of a directory (sorted), or the file itself."""
    path = Path(path)
    if path.is_dir():
        return sorted(path.glob("*.ann"))
    if path.suffix == ".ann":
        return [path]
    if path.suffix == ".txt" and path.with_suffix(".ann").exists():
        return [path.with_suffix(".ann")]
    raise FormatError(f"{path}: not a BRAT directory or .ann file")


def read(path: Path, report: Report) -> list[Record]:
    records = []
    files = ann_files(path)
    if not files:
        raise FormatError(f"{path}: no .ann files found")
    for ann in files:
        txt = ann.with_suffix(".txt")
        if not txt.exists():
            raise FormatError(f"{ann}: the matching text file {txt.name} is missing")
        # \r\n stays two characters: BRAT offsets count them
        text = read_text(txt, report.encoding)
        # None where a T line was skipped: relations index this list
        entities: list[Entity | None] = []
        ids: dict[str, int] = {}
        r_lines: list[tuple[str, int]] = []  # resolved once every T line is known
        for lineno, line in enumerate(text_lines(ann, report.encoding), 1):
            if not line.strip():
                continue
            if line.startswith("R"):
                r_lines.append((line, lineno))
                continue
            if not line.startswith("T"):
                report.skipped[f"ignored {line[0]} annotation"] += 1
                continue
            parts = line.split("\t")
            ids[parts[0]] = len(entities)
            entities.append(_entity(parts, line, text, report, lineno, ann.name))
        relations = [rel for rel in (_relation(x, ids, report, n, ann.name) for x, n in r_lines)
                     if rel is not None] if r_lines else None
        records.append(finish_record(text, entities, report, None, relations=relations,
                                     id=ann.stem))
    return records


def _entity(parts: list[str], line: str, text: str, report: Report, lineno: int, name: str
            ) -> Entity | None:
    """A T line (split at tabs) as an entity, or None (counted) when it cannot be one."""
    head = parts[1].split(" ", 1) if len(parts) >= 2 else []
    if len(head) != 2:
        report.problem(lineno, "bad entity", f"{name}: {line!r}")
        return None
    label, offsets = head
    if ";" in offsets:
        report.problem(lineno, "discontinuous span", f"{name}: {label} {offsets}")
        return None
    try:
        start, end = (int(x) for x in offsets.split())
    except ValueError:
        report.problem(lineno, "bad offsets", f"{name}: {label} {offsets!r}")
        return None
    surface = parts[2] if len(parts) > 2 else None
    if surface is not None and "\n" in text[start:end]:
        surface = None  # BRAT writes newlines inside a span as spaces
    return check_entity(text, start, end, label, surface, report, lineno)


def _relation(line: str, ids: dict[str, int], report: Report, lineno: int, name: str
              ) -> dict | None:
    """``R1<TAB>Label Arg1:T1 Arg2:T2`` -> ``{"head", "tail", "label"}`` (indices into the
    document's T lines), or None for a bad line (counted)."""
    parts = line.split("\t")
    fields = parts[1].split() if len(parts) > 1 else []
    args = dict(f.split(":", 1) for f in fields[1:] if ":" in f)
    if len(fields) != 3 or not {"Arg1", "Arg2"} <= set(args):
        report.problem(lineno, "bad relation", f"{name}: {line!r}")
        return None
    missing = [args[a] for a in ("Arg1", "Arg2") if args[a] not in ids]
    if missing:
        report.problem(lineno, "bad relation", f"{name}: {line!r} names unknown {missing}")
        return None
    return {"head": ids[args["Arg1"]], "tail": ids[args["Arg2"]], "label": fields[0]}


def write(records: Iterable[Record], path: Path) -> None:
    """Write one ``.txt``/``.ann`` pair per record into the directory ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for n, r in enumerate(records):
        bad = [x["label"] for x in r.get("relations", []) if any(c.isspace() for c in x["label"])]
        if bad:
            raise DataError(f"BRAT relation types cannot contain spaces: {bad[0]!r} (record {n})",
                            code="E110")
        stem = str(r.get("id", f"doc{n:05d}"))
        atomic_write_text(path / f"{stem}.txt", r["text"])
        lines = [f"T{k}\t{e['label']} {e['start']} {e['end']}\t"
                 f"{r['text'][e['start']:e['end']].replace(chr(10), ' ')}\n"
                 for k, e in enumerate(r["entities"], 1)]
        lines += [f"R{k}\t{x['label']} Arg1:T{x['head'] + 1} Arg2:T{x['tail'] + 1}\n"
                  for k, x in enumerate(r.get("relations", []), 1)]
        atomic_write_text(path / f"{stem}.ann", "".join(lines))
