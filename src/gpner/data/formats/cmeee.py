"""CMeEE (CBLUE): a JSON array of ``{"text", "entities": [{"start_idx", "end_idx" (inclusive),
"type", "entity"}]}``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from gpner.atomic import atomic_write_text
from gpner.data.formats._io import expect, listed
from gpner.records import Record, Report, check_entity, finish_record, is_int
from gpner.textfiles import load_json_array


def read(path: Path, report: Report) -> list[Record]:
    records = []
    for line, obj in load_json_array(path, report.encoding):
        text = expect(obj, "text", str, path, line)
        entities = []
        for ent in listed(obj, "entities", path, line):
            if not isinstance(ent, dict):
                report.problem(line, "bad entity", f"{ent!r:.60} is not an object")
                continue
            end = ent.get("end_idx")
            end = end + 1 if is_int(end) else end
            e = check_entity(text, ent.get("start_idx"), end, ent.get("type"), ent.get("entity"),
                             report, line)
            if e is not None:
                entities.append(e)
        records.append(finish_record(text, entities, report, line))
    return records


def write(records: Iterable[Record], path: Path) -> None:
    data = [{"text": r["text"],
             "entities": [{"start_idx": e["start"], "end_idx": e["end"] - 1, "type": e["label"],
                           "entity": r["text"][e["start"]:e["end"]]} for e in r["entities"]]}
            for r in records]
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")
