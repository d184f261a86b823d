"""`gpner render`: the comparison against a worked example, the data embedded so that no text
can end the page's script, and the pages a data file and a model make (the drawing itself is
checked in a browser by test_web.py)."""

from __future__ import annotations

import json
import re

import pytest

from gpner.prediction.loading import load
from gpner.serving.pages import compare, render, report_html


def page_data(path) -> dict:
    html = path.read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    return json.loads(block.group(1))


def test_compare_marks_each_entity_on_a_worked_example():
    gold = [{"start": 0, "end": 2, "label": "PER"}, {"start": 3, "end": 7, "label": "ORG"}]
    pred = [{"start": 0, "end": 2, "label": "PER", "score": 3.0},
            {"start": 3, "end": 5, "label": "LOC", "score": 1.0},
            {"start": 3, "end": 7, "label": "LOC", "score": 0.5}]  # right span, wrong label
    g, p, errors = compare(gold, pred)
    assert [e["status"] for e in g] == ["correct", "missing"]
    assert [e["status"] for e in p] == ["correct", "spurious", "spurious"]
    assert errors == 3 and p[0]["score"] == 3.0  # fields kept


def test_no_text_can_end_the_script_that_holds_the_data(tmp_path):
    text = 'a</script><script>alert(1)</script><!-- "quote" \\ 北京'
    out = tmp_path / "p.html"
    out.write_text(report_html([{"index": 0, "text": text, "entities": []}], ["X"],
                               "t</title>", "s"), encoding="utf-8")
    html = out.read_text(encoding="utf-8")
    assert html.count("</script>") == 3  # the data block and the two scripts: none from the text
    assert "<title>t&lt;/title&gt;</title>" in html
    assert page_data(out)["records"][0]["text"] == text


def test_a_data_file_page_holds_its_records(tmp_path):
    data = tmp_path / "d.jsonl"
    recs = [{"text": "张伟在北京大学工作。", "id": "a",
             "entities": [{"start": 0, "end": 2, "label": "PER"},
                          {"start": 3, "end": 7, "label": "ORG"},
                          {"start": 3, "end": 5, "label": "LOC"}]},
            {"text": "今天天气很好。", "entities": []}] * 3
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    out = render(data, tmp_path / "p.html", limit=4)
    assert (out["records"], out["of"]) == (4, 6)
    d = page_data(tmp_path / "p.html")
    assert d["labels"] == ["LOC", "ORG", "PER"] and len(d["records"]) == 4
    assert d["records"][0]["id"] == "a" and d["records"][0]["index"] == 0
    assert [e["text"] for e in d["records"][0]["entities"]] == ["张伟", "北京", "北京大学"]
    assert "6 records, 9 entities" in d["summary"]
    with pytest.raises(ValueError, match="--compare needs a model"):
        render(data, tmp_path / "x.html", compare_gold=True)


def test_a_model_page_compares_with_gold_and_keeps_errors_only(nested_model_dir, tmp_path):
    data = tmp_path / "d.jsonl"
    recs = [{"text": "张伟在北京大学工作。", "entities": [
                {"start": 0, "end": 2, "label": "PER"}, {"start": 3, "end": 7, "label": "ORG"},
                {"start": 3, "end": 5, "label": "LOC"}]},
            {"text": "李娜是上海银行的研究员，住在杭州。", "entities": []},
            {"text": "今天天气很好。", "entities": []}]
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    model = load(nested_model_dir, device="cpu")
    preds = model.predict([r["text"] for r in recs])
    want = [compare([{**e, "text": r["text"][e["start"]:e["end"]]} for e in r["entities"]],
                    p["entities"])[2] for r, p in zip(recs, preds, strict=True)]
    assert want[1] > 0 and want[2] == 0  # the oracle has errors to find, and a clean record
    out = render(nested_model_dir, tmp_path / "p.html", data, compare_gold=True,
                 errors_only=True)
    d = page_data(tmp_path / "p.html")
    assert out["errors"] == sum(want)
    assert [r["index"] for r in d["records"]] == [k for k, n in enumerate(want) if n]
    assert all(r["errors"] == want[r["index"]] for r in d["records"])
    with pytest.raises(ValueError, match="give the data file"):
        render(nested_model_dir, tmp_path / "x.html")
