"""CLUENER: JSON lines ``{"text", "label": {type: {mention: [[start, end_inclusive], ...]}}}``.

The test split has no ``label``; its records come back with no entities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from gpner.atomic import atomic_write_text
from gpner.data.formats._io import expect
from gpner.records import Record, Report, check_entity, finish_record, is_int
from gpner.textfiles import iter_json_lines, json_line


def read(path: Path, report: Report) -> list[Record]:
    records = []
    for line, obj in iter_json_lines(path, report.encoding):
        text = expect(obj, "text", str, path, line)
        labels = obj.get("label") or {}
        entities = []
        if not isinstance(labels, dict):
            report.problem(line, "bad entity", f"'label' should be an object, found {labels!r:.60}")
            labels = {}
        for label, mentions in labels.items():
            if not isinstance(mentions, dict):
                report.problem(line, "bad entity", f"{label}: {mentions!r:.60} is not an object")
                continue
            for mention, offsets in mentions.items():
                for pair in offsets if isinstance(offsets, list) else [offsets]:
                    if not (isinstance(pair, list) and len(pair) == 2):
                        report.problem(line, "bad offsets", f"{label} {mention!r}: {pair!r}")
                        continue
                    start, end = pair
                    end = end + 1 if is_int(end) else end
                    e = check_entity(text, start, end, label, mention, report, line)
                    if e is not None:
                        entities.append(e)
        extra = {"id": obj["id"]} if "id" in obj else {}
        records.append(finish_record(text, entities, report, line, **extra))
    return records


def write(records: Iterable[Record], path: Path) -> None:
    lines = []
    for r in records:
        label: dict[str, dict[str, list[list[int]]]] = {}
        for e in r["entities"]:
            mention = r["text"][e["start"]:e["end"]]
            spans = label.setdefault(e["label"], {}).setdefault(mention, [])
            spans.append([e["start"], e["end"] - 1])
        lines.append(json_line({"text": r["text"], "label": label}) + "\n")
    atomic_write_text(path, "".join(lines))
