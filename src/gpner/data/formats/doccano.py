"""doccano and Label Studio exports (character offsets, end exclusive).

* doccano (JSON lines): ``{"text", "label": [[start, end, "LABEL"], ...]}`` (sequence labelling
  export) or ``{"text", "entities": [{"start_offset", "end_offset", "label"}]}`` (newer export);
  the relation export adds ``"relations": [{"from_id", "to_id", "type"}]`` on the entities' ids.
* Label Studio (JSON array): ``[{"data": {"text"}, "annotations": [{"result": [{"value":
  {"start", "end", "text", "labels": [...]}}]}]}]``. The first annotation that is not cancelled
  is used; a task without one falls back to its ``predictions``. Relation results
  ``{"type": "relation", "from_id", "to_id", "direction", "labels"}`` link the span results'
  ``id``s (``direction`` ``left`` swaps them, ``bi`` gives both directions; a relation without a
  label is counted and skipped: a triple needs one).
* Label Studio JSON-MIN (JSON array): the task's data fields at the top, each labels control
  a list of its spans: ``[{"text", "label": [{"start", "end", "text", "labels": [...]}]}]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from gpner.atomic import atomic_write_text
from gpner.data.formats._io import expect, listed
from gpner.records import Entity, FormatError, Record, Report, check_entity, finish_record
from gpner.textfiles import iter_json_lines, json_line, load_json_array


def read_doccano(path: Path, report: Report) -> list[Record]:
    records = []
    for line, obj in iter_json_lines(path, report.encoding):
        text = expect(obj, "text", str, path, line)
        entities: list[Entity | None] = []
        for item in listed(obj, "label", path, line):
            if isinstance(item, list) and len(item) == 3:
                e = check_entity(text, item[0], item[1], item[2], None, report, line)
            else:
                report.problem(line, "bad entity", f"{item!r:.60} is not [start, end, label]")
                e = None
            if e is not None:
                entities.append(e)
        ids: dict = {}
        for item in listed(obj, "entities", path, line):
            if not isinstance(item, dict):
                report.problem(line, "bad entity", f"{item!r:.60} is not an object")
                continue
            if "id" in item:
                ids[item["id"]] = len(entities)
            entities.append(check_entity(text, item.get("start_offset"), item.get("end_offset"),
                                         item.get("label"), None, report, line))
        relations = None
        if "relations" in obj:
            relations = []
            for item in listed(obj, "relations", path, line):
                ok = isinstance(item, dict) and item.get("from_id") in ids \
                    and item.get("to_id") in ids
                if not ok:
                    report.problem(line, "bad relation", f"{item!r:.80}: from_id/to_id name no "
                                                         "entity of this record")
                    continue
                relations.append({"head": ids[item["from_id"]], "tail": ids[item["to_id"]],
                                  "label": item.get("type")})
        extra = {"id": obj["id"]} if "id" in obj else {}
        records.append(finish_record(text, entities, report, line, relations=relations,
                                     **extra))
    return records


def write_doccano(records: Iterable[Record], path: Path) -> None:
    """``label`` lists; relation data in doccano's relation layout (entity objects with ids,
    ``relations`` of ``from_id``/``to_id``/``type``), every line alike."""
    records = list(records)
    if not any(r.get("relations") for r in records):
        atomic_write_text(path, "".join(
            json_line({"text": r["text"], "label": [[e["start"], e["end"], e["label"]]
                                                    for e in r["entities"]]}) + "\n"
            for r in records))
        return
    lines, next_id = [], 1  # ids unique in the file, as doccano exports them
    for r in records:
        ids = list(range(next_id, next_id + len(r["entities"])))
        next_id += len(ids)
        entities = [{"id": i, "label": e["label"], "start_offset": e["start"],
                     "end_offset": e["end"]} for i, e in zip(ids, r["entities"], strict=True)]
        relations = [{"id": k, "from_id": ids[x["head"]], "to_id": ids[x["tail"]],
                      "type": x["label"]} for k, x in enumerate(r.get("relations") or [], 1)]
        lines.append(json_line({"text": r["text"], "entities": entities,
                                "relations": relations}) + "\n")
    atomic_write_text(path, "".join(lines))


def min_spans(task: object) -> str | None:
    """The key of a Label Studio JSON-MIN task that holds its spans (a list of objects with
    ``start``, ``end`` and ``labels``), or None."""
    if not isinstance(task, dict) or "data" in task:
        return None
    for key, value in task.items():
        if (isinstance(value, list) and value and isinstance(value[0], dict)
                and {"start", "end"} <= set(value[0])
                and ("labels" in value[0] or "hypertextlabels" in value[0])):
            return key
    return None


def _read_min(path: Path, report: Report, line: int, task: dict) -> Record:
    """One JSON-MIN task: the spans under every labels control (their keys vary with the
    labeling config), the first string field for the text if there is no ``text``."""
    text_key = "text" if "text" in task else next(
        (k for k, v in task.items() if isinstance(v, str)), "text")
    text = expect(task, text_key, str, path, line)
    entities: list = []
    for key, value in task.items():
        if not (isinstance(value, list) and value and isinstance(value[0], dict)
                and "start" in value[0]):
            continue
        for span in value:
            if not isinstance(span, dict):
                report.problem(line, "bad entity", f"{key}: {span!r:.60} is not an object")
                continue
            labels = span.get("labels") or span.get("hypertextlabels") or [None]
            for label in labels if isinstance(labels, list) else [labels]:
                entities.append(check_entity(text, span.get("start"), span.get("end"), label,
                                             span.get("text"), report, line))
    extra = {"id": task["id"]} if "id" in task else {}
    return finish_record(text, entities, report, line, **extra)


def read_label_studio(path: Path, report: Report) -> list[Record]:
    records = []
    tasks = load_json_array(path, report.encoding)
    # a JSON-MIN export: some task has its spans at the top; its tasks without spans have no
    # "data" either
    json_min = any(min_spans(task) is not None for _, task in tasks)
    for line, task in tasks:
        if json_min and isinstance(task, dict) and "data" not in task:
            records.append(_read_min(path, report, line, task))
            continue
        data = expect(task, "data", dict, path, line)
        text_key = "text" if "text" in data else next(
            (k for k, v in data.items() if isinstance(v, str)), "text")
        text = expect(data, text_key, str, path, line)
        done = listed(task, "annotations", path, line)
        chosen = [a for a in done if not (isinstance(a, dict) and a.get("was_cancelled"))]
        if len(chosen) > 1:
            report.skipped["extra annotations ignored"] += len(chosen) - 1
        # the first kept annotation, else the model's first prediction
        first = chosen[0] if chosen else (listed(task, "predictions", path, line) or [{}])[0]
        if not isinstance(first, dict):
            raise FormatError(f"{path}:{line}: an annotation should be an object, found "
                              f"{type(first).__name__}: {str(first)[:60]!r}")
        results = listed(first, "result", path, line)
        entities: list = []
        ids: dict = {}  # result id -> indices of its entities (one per label)
        links = []
        for res in results:
            if isinstance(res, dict) and res.get("type") == "relation":
                links.append(res)
                continue
            value = res.get("value") if isinstance(res, dict) else None
            if not isinstance(value, dict) or "start" not in value:
                report.skipped[f"ignored {res.get('type', '?') if isinstance(res, dict) else '?'}"
                               " result"] += 1
                continue
            key = "labels" if value.get("labels") else "hypertextlabels"
            for label in listed(value, key, path, line) or [None]:
                ids.setdefault(res.get("id"), []).append(len(entities))
                entities.append(check_entity(text, value.get("start"), value.get("end"), label,
                                             value.get("text"), report, line))
        relations = _ls_relations(links, ids, report, path, line) if links else None
        extra = {"id": task["id"]} if "id" in task else {}
        records.append(finish_record(text, entities, report, line, relations=relations,
                                     **extra))
    return records


def _ls_relations(links: list[dict], ids: dict, report: Report, path: Path, line: int
                  ) -> list[dict]:
    out = []
    for res in links:
        a, b = res.get("from_id"), res.get("to_id")
        if a not in ids or b not in ids:
            report.problem(line, "bad relation", f"from_id/to_id {a!r}/{b!r} name no span result")
            continue
        labels = listed(res, "labels", path, line)
        if not labels:
            report.problem(line, "relation without a label", f"{a} -> {b}")
            continue
        direction = res.get("direction", "right")
        pairs = {"right": [(a, b)], "left": [(b, a)], "bi": [(a, b), (b, a)]}.get(direction)
        if pairs is None:
            report.problem(line, "bad relation", f"direction {direction!r}")
            continue
        out += [{"head": h, "tail": t, "label": lab} for x, y in pairs for lab in labels
                for h in ids[x] for t in ids[y]]
    return out


def write_label_studio(records: Iterable[Record], path: Path) -> None:
    """One annotation per task: a ``labels`` result per entity (id ``e<k>``) and a ``relation``
    result (direction ``right``: from the head) per relation."""
    tasks = []
    for r in records:
        result = [{"id": f"e{k}", "from_name": "label", "to_name": "text", "type": "labels",
                   "value": {"start": e["start"], "end": e["end"],
                             "text": r["text"][e["start"]:e["end"]], "labels": [e["label"]]}}
                  for k, e in enumerate(r["entities"])]
        result += [{"type": "relation", "from_id": f"e{x['head']}", "to_id": f"e{x['tail']}",
                    "direction": "right", "labels": [x["label"]]}
                   for x in r.get("relations") or []]
        tasks.append({"data": {"text": r["text"]}, "annotations": [{"result": result}]})
    atomic_write_text(path, json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")
