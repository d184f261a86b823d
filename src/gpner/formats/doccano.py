"""doccano and Label Studio exports (character offsets, end exclusive).

* doccano (JSON lines): ``{"text", "label": [[start, end, "LABEL"], ...]}`` (sequence labelling
  export) or ``{"text", "entities": [{"start_offset", "end_offset", "label"}]}`` (newer export).
* Label Studio (JSON array): ``[{"data": {"text"}, "annotations": [{"result": [{"value":
  {"start", "end", "text", "labels": [...]}}]}]}]``. The first annotation that is not cancelled
  is used; a task without one falls back to its ``predictions``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from gpner.atomic import atomic_write_text
from gpner.formats._io import expect, iter_json_lines, load_json_array
from gpner.records import Record, Report, check_entity, finish_record


def read_doccano(path: Path, report: Report) -> list[Record]:
    records = []
    for line, obj in iter_json_lines(path):
        text = expect(obj, "text", str, path, line)
        entities = []
        for item in obj.get("label") or []:
            if isinstance(item, list) and len(item) == 3:
                e = check_entity(text, item[0], item[1], item[2], None, report, line)
            else:
                report.problem(line, "bad entity", f"{item!r:.60} is not [start, end, label]")
                e = None
            if e is not None:
                entities.append(e)
        for item in obj.get("entities") or []:
            if not isinstance(item, dict):
                report.problem(line, "bad entity", f"{item!r:.60} is not an object")
                continue
            e = check_entity(text, item.get("start_offset"), item.get("end_offset"),
                             item.get("label"), None, report, line)
            if e is not None:
                entities.append(e)
        extra = {"id": obj["id"]} if "id" in obj else {}
        records.append(finish_record(text, entities, report, line, **extra))
    return records


def write_doccano(records: Iterable[Record], path: Path) -> None:
    atomic_write_text(path, "".join(
        json.dumps({"text": r["text"], "label": [[e["start"], e["end"], e["label"]]
                                                 for e in r["entities"]]}, ensure_ascii=False)
        + "\n" for r in records))


def read_label_studio(path: Path, report: Report) -> list[Record]:
    records = []
    for line, task in load_json_array(path):
        data = expect(task, "data", dict, path, line)
        text_key = "text" if "text" in data else next(
            (k for k, v in data.items() if isinstance(v, str)), "text")
        text = expect(data, text_key, str, path, line)
        chosen = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        if len(chosen) > 1:
            report.skipped["extra annotations ignored"] += len(chosen) - 1
        results = (chosen[0] if chosen else
                   (task.get("predictions") or [{}])[0]).get("result") or []
        entities = []
        for res in results:
            value = res.get("value") if isinstance(res, dict) else None
            if not isinstance(value, dict) or "start" not in value:
                report.skipped[f"ignored {res.get('type', '?') if isinstance(res, dict) else '?'}"
                               " result"] += 1
                continue
            for label in value.get("labels") or value.get("hypertextlabels") or [None]:
                e = check_entity(text, value.get("start"), value.get("end"), label,
                                 value.get("text"), report, line)
                if e is not None:
                    entities.append(e)
        extra = {"id": task["id"]} if "id" in task else {}
        records.append(finish_record(text, entities, report, line, **extra))
    return records


def write_label_studio(records: Iterable[Record], path: Path) -> None:
    tasks = [{"data": {"text": r["text"]}, "annotations": [{"result": [
        {"from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": e["start"], "end": e["end"], "text": r["text"][e["start"]:e["end"]],
                   "labels": [e["label"]]}} for e in r["entities"]]}]} for r in records]
    atomic_write_text(path, json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")
