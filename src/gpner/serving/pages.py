"""HTML pages that draw entities: the service's page (``/``) and ``gpner render``'s standalone
files. Both inline the same drawing code (``web/draw.js``) and style, so a page needs no server
and no network: gold data, saved predictions, a model's predictions on a data set, or gold and
predicted side by side with the differences marked (``--compare``).
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from gpner.atomic import atomic_write_text
from gpner.errors import ConfigError, InputError
from gpner.records import Entity

DEFAULT_LIMIT = 1000  # records per page: a browser draws thousands, not millions


def web_file(name: str) -> str:
    web = resources.files("gpner.serving").joinpath("web")
    return web.joinpath(name).read_text(encoding="utf-8")


def _inline(template: str, **parts: str) -> str:
    for key, value in parts.items():
        template = template.replace(f"/*{key}*/", value)
    return template


def page_html() -> str:
    """The service's page: a form, and the drawing of ``POST /predict``'s answer."""
    return _inline(web_file("page.html"), STYLE=web_file("style.css"), DRAW=web_file("draw.js"))


def _script_json(value: Any) -> str:
    # "<" escaped: no "</script>" or "<!--" inside the data can end the script element
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def report_html(records: Sequence[dict], labels: Sequence[str], title: str, summary: str) -> str:
    """A standalone page; ``records`` are ``{"index", "text", "entities"}`` or, to compare,
    ``{"index", "text", "gold", "pred", "errors"}`` with a ``status`` on each entity."""
    data = {"title": title, "summary": summary, "labels": list(labels), "records": list(records)}
    return _inline(web_file("report.html"), TITLE=html.escape(title),
                   STYLE=web_file("style.css"), DRAW=web_file("draw.js"),
                   DATA=_script_json(data))


def compare(gold: Sequence[Mapping[str, Any]], pred: Sequence[Mapping[str, Any]]
            ) -> tuple[list[dict], list[dict], int]:
    """Gold and predicted entities with a ``status``: ``correct`` (same start, end and label on
    both sides), ``missing`` (gold only) or ``spurious`` (predicted only); and the error count."""
    def key(e: Mapping[str, Any]) -> tuple:
        return e["start"], e["end"], e["label"]

    g_keys, p_keys = {key(e) for e in gold}, {key(e) for e in pred}
    g = [{**e, "status": "correct" if key(e) in p_keys else "missing"} for e in gold]
    p = [{**e, "status": "correct" if key(e) in g_keys else "spurious"} for e in pred]
    errors = sum(e["status"] != "correct" for e in g) + sum(e["status"] != "correct" for e in p)
    return g, p, errors


def _with_text(text: str, entities: Iterable[Entity]) -> list[dict]:
    return [{**e, "text": text[e["start"]:e["end"]]} for e in entities]


def render(source: str | Path, output: str | Path, data: str | Path | None = None,
           compare_gold: bool = False, limit: int = DEFAULT_LIMIT, errors_only: bool = False,
           flat: bool | None = None, threshold: float | None = None,
           encoding: str | None = None) -> dict:
    """Write a standalone HTML page and return a summary.

    ``source`` a data file (any format gpner reads, predictions included): its entities. A
    model directory: its predictions on the texts of ``data``; with ``compare_gold`` the
    records' own entities beside them, differences marked (``errors_only``: only records with
    a difference)."""
    from gpner.data.formats import read

    if limit < 1:
        raise InputError(f"limit must be >= 1, got {limit}", code="E502")
    source = Path(source)
    if source.is_dir():
        from gpner.prediction.loading import load

        if data is None:
            raise ConfigError(f"{source} is a model: give the data file whose texts it should "
                             "tag (gpner render MODEL DATA -o page.html)", code="E305")
        corpus = read(data, encoding=encoding)
        model = load(source)
        labels = model.labels
        gold = corpus.records
        preds = model.predict([r["text"] for r in gold], flat=flat, threshold=threshold,
                              progress=True)
        title = f"{source} on {Path(data).name}"
    else:
        if compare_gold:
            raise ConfigError("--compare needs a model directory first: gpner render MODEL "
                             "DATA --compare -o page.html", code="E305")
        if data is not None:
            raise ConfigError(f"{source} is a data file; a second file is only taken after a "
                             "model directory", code="E305")
        corpus = read(source, encoding=encoding)
        gold, preds = corpus.records, None
        labels = sorted({e["label"] for r in gold for e in r["entities"]})
        title = source.name
    records: list[dict] = []
    total_errors = 0
    for k, rec in enumerate(gold):
        item: dict[str, Any] = {"index": k, "text": rec["text"]}
        if "id" in rec:
            item["id"] = rec["id"]
        if preds is not None and compare_gold:
            g, p, errors = compare(_with_text(rec["text"], rec["entities"]),
                                   preds[k]["entities"])
            total_errors += errors
            if errors_only and not errors:
                continue
            item.update(gold=g, pred=p, errors=errors)
        else:
            ents = preds[k]["entities"] if preds is not None else rec["entities"]
            item["entities"] = _with_text(rec["text"], ents)
        if len(records) < limit:
            records.append(item)
    summary = (f"{len(records)} of {len(gold)} records"
               + (" (with errors only)" if errors_only else "")
               + (f"; {total_errors} errors (missing + spurious entities)" if compare_gold
                  else "") + f"; {corpus.report.summary()}")
    atomic_write_text(Path(output), report_html(records, labels, title, summary))
    return {"records": len(records), "of": len(gold), "errors": total_errors,
            "output": str(output)}
