"""``gpner select``: each strategy's choice against a brute-force oracle (predict the whole
pool, score every text by the strategy's definition written out here, sort), the heap against a
full sort, texts already labelled never chosen, and the Label Studio and doccano outputs."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import tiny_data

from gpner.active import Best, Chosen, select, text_score
from gpner.prediction.loading import load

FLOOR = -5.0


@pytest.fixture(scope="module")
def model_dir(tagger):
    return tagger


def oracle_score(cands, by, draw):
    """The strategies as the docs define them, computed independently of gpner.active."""
    if by == "random":
        return draw
    if not cands:
        return 0.0
    ps = [e["prob"] for e in cands]
    if by == "uncertainty":
        return max(1 - abs(2 * p - 1) for p in ps)
    if by == "entropy":
        return sum(-(p * math.log2(p) + (1 - p) * math.log2(1 - p)) for p in ps if 0 < p < 1)
    worst = 1.0
    for pos in {(e["start"], e["end"]) for e in cands}:
        here = sorted((e["prob"] for e in cands if (e["start"], e["end"]) == pos), reverse=True)
        second = here[1] if len(here) > 1 else 0.0
        worst = min(worst, abs(here[0] - max(second, 1 - here[0])))
    return 1 - worst


@pytest.mark.parametrize("by", ["uncertainty", "margin", "entropy", "random"])
def test_each_strategy_chooses_what_a_brute_force_ranking_does(model_dir, by):
    model = load(model_dir)
    texts = [r["text"] for r in tiny_data(120, 7)]
    every = model.predict(texts, threshold=FLOOR, flat=False, batch_size=8)
    default = model.predict(texts, batch_size=8)  # the batches select makes with batch_size 8
    rng = random.Random(3)
    draws = [rng.random() for _ in texts]
    scores = [oracle_score(r["entities"], by, d) for r, d in zip(every, draws, strict=True)]
    want = sorted(range(len(texts)), key=lambda k: (-scores[k], k))[:9]
    got = select(model, ((k + 1, t, None) for k, t in enumerate(texts)), 9, by, FLOOR, seed=3,
                 batch_size=8)
    assert [c.line - 1 for c in got] == want
    assert [c.score for c in got] == pytest.approx([scores[k] for k in want])
    # each chosen text carries the model's own decoding as its pre-annotation
    assert [c.record for c in got] == [default[k] for k in want]
    assert len({scores[k] for k in want}) > 1  # the ranking means something


def test_the_heap_keeps_the_n_best_of_a_stream():
    rng = random.Random(0)
    items = [Chosen(round(rng.random(), 2), -k, k, {"text": str(k), "entities": []})
             for k in range(1000)]
    best = Best(7)
    for it in items:
        best.offer(it)
        assert len(best.heap) <= 7
    assert best.ranked() == sorted(items, reverse=True)[:7]
    # equal scores: the earlier text first
    tied = [it for it in best.ranked() if it.score == best.ranked()[0].score]
    assert [it.line for it in tied] == sorted(it.line for it in tied)


def test_worked_scores():
    e = [{"start": 0, "end": 2, "label": "A", "prob": 0.9},
         {"start": 0, "end": 2, "label": "B", "prob": 0.6},
         {"start": 3, "end": 5, "label": "A", "prob": 0.3}]
    assert text_score(e, "uncertainty") == pytest.approx(0.8)  # 0.6 is nearest 0.5: 1 - 0.2
    # margins: (0,2): 0.9 - 0.6 = 0.3; (3,5): |0.3 - 0.7| = 0.4 -> 1 - 0.3
    assert text_score(e, "margin") == pytest.approx(0.7)
    h = lambda p: -(p * math.log2(p) + (1 - p) * math.log2(1 - p))  # noqa: E731
    assert text_score(e, "entropy") == pytest.approx(h(0.9) + h(0.6) + h(0.3))
    assert text_score([], "uncertainty") == 0.0


def gpner(*args):
    exe = str(Path(sys.executable).parent / "gpner")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True)


def test_cli_excludes_labelled_texts_and_writes_each_tool_format(model_dir, tmp_path):
    texts = list(dict.fromkeys(r["text"] for r in tiny_data(80, 7)))
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": t, "id": k}, ensure_ascii=False) + "\n"
                            for k, t in enumerate(texts)), encoding="utf-8")
    first = gpner("select", model_dir, pool, "-n", "5", "-o", tmp_path / "a.jsonl")
    assert first.returncode == 0, first.stderr
    a = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["gpner_select"]["rank"] for r in a] == [1, 2, 3, 4, 5]
    assert all("id" in r for r in a)  # the pool's fields pass through
    # the first batch, labelled, is excluded from the next
    res = gpner("select", model_dir, pool, "-n", "5", "-o", tmp_path / "b.json", "--to",
                "label-studio", "--exclude", tmp_path / "a.jsonl")
    assert res.returncode == 0, res.stderr
    assert "5 already labelled (excluded)" in res.stderr
    tasks = json.loads((tmp_path / "b.json").read_text())
    assert not {t["data"]["text"] for t in tasks} & {r["text"] for r in a}
    model = load(model_dir)
    for t in tasks:
        want = model.predict(t["data"]["text"])
        pred = t["predictions"][0]
        assert [(x["value"]["start"], x["value"]["end"], x["value"]["labels"], x["score"])
                for x in pred["result"]] == [(e["start"], e["end"], [e["label"]], e["prob"])
                                            for e in want["entities"]]
        for x in pred["result"]:
            assert t["data"]["text"][x["value"]["start"]:x["value"]["end"]] == x["value"]["text"]
        assert pred["score"] == t["meta"]["gpner_select"]["score"]
    res = gpner("select", model_dir, pool, "-n", "3", "-o", tmp_path / "c.jsonl", "--to",
                "doccano")
    lines = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert [r["text"] for r in lines] == [r["text"] for r in a[:3]]
    assert [r["label"] for r in lines] == [[[e["start"], e["end"], e["label"]]
                                            for e in r["entities"]] for r in a[:3]]
    # and gpner reads its own selection back as annotated data
    res = gpner("convert", tmp_path / "c.jsonl", "-o", tmp_path / "c2.jsonl")
    assert res.returncode == 0, res.stderr
