"""Relation extraction (GPLinker): decoding against a brute-force enumeration of every
(s_h, s_t, o_h, o_t, p), the loss on the link matrices against a loop over cells, targets by
hand, windows merged like entities, and a tiny end-to-end run that recovers its triples."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from helpers import tiny_config, window_spans

from gpner.contracts import Triple
from gpner.data.demo import generate_relations
from gpner.metrics import evaluate_relations, triple_set
from gpner.tasks import relations as rel
from gpner.tasks.relations import RelationTask
from gpner.text.alignment import TokenSpan


def _masked(rng: np.random.Generator, B: int, C: int, L: int, full: bool, lengths: list[int]
            ) -> np.ndarray:
    """Random scores (B, C, L, L), -inf where a cell can never be a span (padding; i > j unless
    ``full``), as the heads produce them."""
    s = rng.normal(-0.5, 1.5, size=(B, C, L, L)).astype(np.float32)
    for b, n in enumerate(lengths):
        s[b, :, n:, :] = -np.inf
        s[b, :, :, n:] = -np.inf
        if not full:
            s[b] = np.where(np.triu(np.ones((L, L), bool)), s[b], -np.inf)
    return s


def brute_force(ent: np.ndarray, heads: np.ndarray, tails: np.ndarray, t: float) -> set:
    """Every (s_h, s_t, o_h, o_t, p) with all four parts above t; an entity's part is its best
    label at that position."""
    L = ent.shape[-1]
    out = set()
    for sh, st, oh, ot in itertools.product(range(L), repeat=4):
        if sh > st or oh > ot:
            continue
        es, eo = ent[:, sh, st].max(), ent[:, oh, ot].max()
        for p in range(heads.shape[0]):
            parts = (es, eo, heads[p, sh, oh], tails[p, st, ot])
            if min(parts) > t:
                out.add((sh, st + 1, oh, ot + 1, p, round(float(min(parts)), 5)))
    return out


@pytest.mark.parametrize("threshold", [0.0, 0.7])
def test_decoded_triples_are_the_brute_force_enumeration(threshold, monkeypatch):
    monkeypatch.setattr(rel, "CANDIDATES_PER_TOKEN", 100)  # pair every candidate
    rng = np.random.default_rng(3)
    B, C, R, L = 3, 2, 3, 7
    lengths = [7, 5, 1]
    outputs = {"entities": _masked(rng, B, C, L, False, lengths),
               "heads": _masked(rng, B, R, L, True, lengths),
               "tails": _masked(rng, B, R, L, True, lengths)}
    task = RelationTask(["A", "B"], "egp", 8, relations=["r0", "r1", "r2"])
    got = task.decode(outputs, {}, threshold)
    total = 0
    for b in range(B):
        want = brute_force(outputs["entities"][b], outputs["heads"][b], outputs["tails"][b],
                           threshold)
        have = {(*t[:5], round(t.score, 5)) for t in got[b].triples}
        assert have == want
        total += len(want)
    assert total > 10  # the random scores leave plenty of triples to get wrong
    # torch tensors give the same triples; so does pairing in many small chunks
    as_torch = task.decode({k: torch.from_numpy(v) for k, v in outputs.items()}, {}, threshold)
    monkeypatch.setattr(rel, "PAIR_BUDGET", 5)
    chunked = task.decode(outputs, {}, threshold)
    for b in range(B):
        assert [t[:5] for t in as_torch[b].triples] == [t[:5] for t in got[b].triples]
        assert chunked[b].triples == got[b].triples


def test_pairing_keeps_the_best_candidates_of_a_crowded_window(monkeypatch):
    """More candidates than 2 per token: only the best 2L are paired (an untrained model would
    otherwise cost R * E^2); with few candidates nothing is left out."""
    L = 3
    heads = np.ones((1, L, L), np.float32)  # every link open: triples = all candidate pairs
    spans = [TokenSpan(i, j + 1, 0, float(10 * i + j)) for i in range(L) for j in range(i, L)]
    got = rel.link(spans, heads, heads)  # 6 candidates = 2L: all paired
    assert len(got) == 36
    spans.append(TokenSpan(0, 1, 1, -1.0))  # a second label at a position: still one candidate
    assert len(rel.link(spans, heads, heads)) == 36
    monkeypatch.setattr(rel, "CANDIDATES_PER_TOKEN", 1)
    got = rel.link(spans, heads, heads)  # the best 3 positions: (2,3), (1,3), (1,2)
    assert {(t.s_start, t.s_end) for t in got} == {(2, 3), (1, 3), (1, 2)} and len(got) == 9


def test_targets_by_hand():
    task = RelationTask(["LOC", "PER"], "gp", 8, relations=["born_in", "lives_in"])
    # one window: PER tokens 1-2, LOC token 5, LOC tokens 7-8; PER born_in LOC(5),
    # PER lives_in LOC(7-8), and a second example with one relation object-first
    spans = [[TokenSpan(1, 3, 1), TokenSpan(5, 6, 0), TokenSpan(7, 9, 0)],
             [TokenSpan(4, 5, 0), TokenSpan(0, 2, 1)]]
    relations = [[(0, 1, 0), (0, 2, 1)], [(1, 0, 0)]]
    t = task.targets(spans, {}, relations)
    assert t["positives"].tolist() == [[0, 0, 5, 5], [0, 0, 7, 8], [0, 1, 1, 2], [1, 0, 4, 4],
                                       [1, 1, 0, 1]]
    assert t["head_links"].tolist() == [[0, 0, 1, 5], [0, 1, 1, 7], [1, 0, 0, 4]]
    assert t["tail_links"].tolist() == [[0, 0, 2, 5], [0, 1, 2, 8], [1, 0, 1, 4]]
    # two triples sharing a subject start and an object start give one head cell, not two
    t = task.targets([[TokenSpan(0, 1, 0), TokenSpan(0, 2, 0), TokenSpan(3, 4, 0)]], {},
                     [[(0, 2, 0), (1, 2, 0)]])
    assert t["head_links"].tolist() == [[0, 0, 0, 3]]
    assert t["tail_links"].tolist() == [[0, 0, 0, 3], [0, 0, 1, 3]]


def _loop_loss(scores: torch.Tensor, gold: set) -> float:
    """log(1 + sum_neg e^s) + log(1 + sum_pos e^-s) per (b, c), over finite cells; summed over
    c, averaged over b."""
    B, C, L, _ = scores.shape
    total = 0.0
    for b in range(B):
        for c in range(C):
            neg, pos = 1.0, 1.0
            for i in range(L):
                for j in range(L):
                    s = float(scores[b, c, i, j])
                    if math.isinf(s):
                        continue
                    if (b, c, i, j) in gold:
                        pos += math.exp(-s)
                    else:
                        neg += math.exp(s)
            total += math.log(neg) + math.log(pos)
    return total / B


def test_loss_is_the_three_sparse_losses_against_a_loop():
    rng = np.random.default_rng(0)
    B, C, R, L = 2, 2, 3, 6
    out = {"entities": _masked(rng, B, C, L, False, [6, 4]),
           "heads": _masked(rng, B, R, L, True, [6, 4]),
           "tails": _masked(rng, B, R, L, True, [6, 4])}
    out = {k: torch.from_numpy(v).double().requires_grad_() for k, v in out.items()}
    task = RelationTask(["A", "B"], "gp", 8, relations=["x", "y", "z"])
    spans = [[TokenSpan(0, 2, 0), TokenSpan(3, 6, 1), TokenSpan(4, 5, 0)],
             [TokenSpan(1, 2, 1), TokenSpan(2, 4, 0)]]
    relations = [[(0, 1, 2), (1, 0, 0), (2, 2, 1), (0, 2, 2)], [(1, 0, 1)]]
    batch = task.targets(spans, {}, relations)
    loss = task.loss(out, batch)
    want = sum(_loop_loss(out[k].detach(), {tuple(r) for r in batch[key].tolist()})
               for k, key in (("entities", "positives"), ("heads", "head_links"),
                              ("tails", "tail_links")))
    assert float(loss.detach()) == pytest.approx(want, rel=1e-9)
    loss.backward()
    assert all(torch.isfinite(v.grad).all() for v in out.values())


def test_relation_task_refuses_tag_heads_and_no_relations():
    with pytest.raises(ValueError, match="span head"):
        RelationTask(["A"], "crf", 8, relations=["r"])
    with pytest.raises(ValueError, match="at least one relation"):
        RelationTask(["A"], "egp", 8, relations=[])


def test_windows_merge_triples_and_drop_those_cut_by_an_edge():
    """A fake model that finds exactly the gold triple of the text wherever a window holds both
    entities whole: the predictor must report each triple once, at text offsets, keep the one
    a window cut at its edge only from the window that sees it whole, and drop a triple whose
    entities no window holds together."""
    from gpner.model.artifact import DecodeSettings, EncoderSpec, ModelConfig
    from gpner.prediction.predictor import Predictor
    from gpner.text.features import BuiltinFeaturizer

    words = ["".join(p) for p in itertools.product("abcdefg", repeat=2)][:40]  # one token each
    text = " ".join(words)
    fz = BuiltinFeaturizer.build([text], 1)
    assert len(fz.encode(text)) == 40
    # text tokens: (subject, object, relation): near; a subject across the first window's edge
    # (12 tokens, one every 6) after its object; too far apart for any window
    gold = [((2, 4), (6, 7), 0), ((11, 13), (8, 10), 1), ((1, 2), (37, 38), 0)]
    word_of = {fz.words.index[w]: k for k, w in enumerate(words)}

    class Oracle:
        has_relations, span_head = True, True
        relations = ["near", "far"]

        def decode(self, outputs, batch, threshold, max_width):
            out = []
            for ids in outputs["ids"]:
                pos = {word_of[i]: n for n, i in enumerate(ids.tolist()) if i in word_of}
                spans, triples = [], []
                for (ss, se), (os_, oe), p in gold:
                    if all(k in pos for k in (ss, se - 1, os_, oe - 1)):
                        s = TokenSpan(pos[ss], pos[se - 1] + 1, 0, 3.0)
                        o = TokenSpan(pos[os_], pos[oe - 1] + 1, 0, 2.0)
                        spans += [s, o]
                        triples.append(Triple(s.start, s.end, o.start, o.end, p, 1.5))
                    elif ss in pos and se - 1 not in pos:  # the edge cuts the subject
                        s = TokenSpan(pos[ss], max(pos.values()) + 1, 0, 5.0)
                        spans.append(s)
                        if os_ in pos and oe - 1 in pos:  # and links the piece: a wrong triple
                            o = TokenSpan(pos[os_], pos[oe - 1] + 1, 0, 2.0)
                            spans.append(o)
                            triples.append(Triple(s.start, s.end, o.start, o.end, p, 4.0))
                out.append(window_spans(spans, triples))
            return out

    config = ModelConfig(labels=["E"], head="egp", encoder=EncoderSpec("builtin"), tokenizer={},
                         max_length=12, task="relations", relations=["near", "far"],
                         decode=DecodeSettings(threshold=0.0, flat=False))
    predictor = Predictor(config, fz, Oracle(), lambda batch: {"ids": batch["ids"]})
    record = predictor.predict(text, batch_size=3)
    ents = record["entities"]
    triples = {(ents[r["head"]]["text"], r["label"], ents[r["tail"]]["text"])
               for r in record["relations"]}
    w = words
    assert triples == {(f"{w[2]} {w[3]}", "near", w[6]), (f"{w[11]} {w[12]}", "far",
                                                          f"{w[8]} {w[9]}")}
    # the subject piece cut by the first window's edge, and its triple, are gone
    assert [e["text"] for e in ents] == [f"{w[2]} {w[3]}", w[6], f"{w[8]} {w[9]}",
                                         f"{w[11]} {w[12]}"]
    assert all(r["score"] == 1.5 for r in record["relations"])


def test_record_metrics_worked_example():
    text = "Alan Bean flew Apollo 12 from Texas"
    ents = [{"start": 0, "end": 9, "label": "E"}, {"start": 15, "end": 24, "label": "E"},
            {"start": 30, "end": 35, "label": "E"}, {"start": 5, "end": 9, "label": "E"}]
    gold = [{"text": text, "entities": ents,
             "relations": [{"head": 0, "tail": 1, "label": "crew"},
                           {"head": 0, "tail": 2, "label": "born"},
                           {"head": 0, "tail": 1, "label": "pilot"}]}]
    # predicted: crew right; born with subject "Bean" only (partial match, not strict);
    # one spurious relation
    pred = [{"text": text, "entities": ents,
             "relations": [{"head": 0, "tail": 1, "label": "crew"},
                           {"head": 3, "tail": 2, "label": "born"},
                           {"head": 2, "tail": 1, "label": "crew"}]}]
    r = evaluate_relations(gold, pred)
    assert (r["tp"], r["fp"], r["fn"]) == (1, 2, 2)
    assert r["f1"] == pytest.approx(2 * (1 / 3) * (1 / 3) / (2 / 3))
    assert (r["partial"]["tp"], r["partial"]["fp"], r["partial"]["fn"]) == (2, 1, 1)
    assert r["per_label"]["pilot"]["fn"] == 1 and r["per_label"]["crew"]["fp"] == 1
    # crew and pilot link one (subject, object) pair: EPO; Alan Bean in two pairs: SEO
    assert set(r["by_overlap"]) == {"EPO", "SEO"}
    assert r["by_overlap"]["EPO"]["sentences"] == 1 and r["by_count"]["3"]["tp"] == 1
    assert triple_set(gold[0], partial=True) == {("Bean", "crew", "12"), ("Bean", "born", "Texas"),
                                                 ("Bean", "pilot", "12")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from gpner.training.trainer import train

    d = tmp_path_factory.mktemp("relations")
    data = generate_relations(80, 1)
    summary = train(data, data[:20], d / "run",
                    tiny_config(epochs=25, lstm_hidden=48, head_size=16, max_length=24),
                    progress=False)
    return d / "run", data, summary


def test_tiny_run_recovers_its_training_triples(trained):
    from gpner.prediction.loading import load

    run, data, summary = trained
    assert summary["decode"]["flat"] is False and summary["config"]["task"] == "relations"
    model = load(run)
    assert model.config.relations == ["born_in", "lives_in", "located_in", "works_for"]
    result = model.evaluate(data)
    assert result["f1"] >= 0.9, result["f1"]
    assert result["entities"]["f1"] >= 0.9
    pred = model.predict(data[1]["text"])
    assert triple_set(pred) == triple_set(data[1]) and triple_set(data[1])


def test_onnx_and_http_give_the_same_triples(trained):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from gpner.integrations.onnx_export import export_onnx
    from gpner.prediction.loading import load
    from gpner.serving.app import ServeSettings, create_app

    run, data, _ = trained
    texts = [r["text"] for r in data[:30]] + [" ".join(r["text"] for r in data[1:12:2])]
    torch_model = load(run, device="cpu")
    want = torch_model.predict(texts)
    assert sum(len(r["relations"]) for r in want) > 30
    assert len(torch_model.featurizer.encode(texts[-1])) > 24  # the long text runs in windows
    export_onnx(run)
    got = load(run, backend="onnx").predict(texts)
    assert [triple_set(r) for r in got] == [triple_set(r) for r in want]
    with TestClient(create_app(ServeSettings(model=str(run)), torch_model)) as client:
        for _ in range(200):
            if client.get("/health").status_code == 200:
                break
        body = client.post("/predict", json={"texts": texts[:8]}).json()["results"]
        assert [triple_set(r) for r in body] == [triple_set(r) for r in want[:8]]
        # labels keeps those entities and the relations between them, re-indexed
        body = client.post("/predict", json={"texts": texts[:8], "labels": ["PER", "ORG"]}
                           ).json()["results"]
    from gpner.integrations.batch_inference import (
        GpnerPredictor,  # Ray Data / Spark / Dask: a relations column too
    )

    rows = GpnerPredictor(str(run))([{"text": t, "id": k} for k, t in enumerate(texts[:4])])
    assert [triple_set(r) for r in rows] == [triple_set(r) for r in want[:4]]
    assert [r["id"] for r in rows] == [0, 1, 2, 3]
    checked = 0
    for full, kept in zip(want[:8], body, strict=True):
        ents = full["entities"]
        between = {t for t, r in zip(sorted(triple_set(full)), sorted(
            full["relations"], key=lambda r: (ents[r["head"]]["start"], ents[r["head"]]["end"],
                                              r["label"], ents[r["tail"]]["start"],
                                              ents[r["tail"]]["end"])), strict=True)
                   if {ents[r["head"]]["label"], ents[r["tail"]]["label"]} <= {"PER", "ORG"}}
        assert triple_set(kept) == between
        assert [e for e in ents if e["label"] in ("PER", "ORG")] == kept["entities"]
        checked += len(between) < len(full["relations"])
    assert checked  # some relations (located_in: ORG -> LOC) were filtered out


def test_cli_convert_train_evaluate_predict(tmp_path, trained):
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    run, data, _ = trained
    src = tmp_path / "webnlg.json"  # CasRel layout: strings only
    src.write_text(json.dumps([{"text": r["text"], "triple_list": [
        [r["text"][r["entities"][x["head"]]["start"]:r["entities"][x["head"]]["end"]], x["label"],
         r["text"][r["entities"][x["tail"]]["start"]:r["entities"][x["tail"]]["end"]]]
        for x in r["relations"]]} for r in data[:10]]), encoding="utf-8")

    exe = shutil.which("gpner") or str(Path(sys.executable).parent / "gpner")

    def gpner(*args):
        res = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        return res

    res = gpner("convert", src, "-o", tmp_path / "out.jsonl")
    assert "relations" in res.stderr
    converted = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()]
    assert [triple_set(r, partial=True) for r in converted] == \
        [triple_set(r, partial=True) for r in data[:10]]
    res = gpner("evaluate", run, tmp_path / "out.jsonl")
    assert "partial match" in res.stdout and "overlap class" in res.stdout
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": k, "text": r["text"], "relations": [{"x": 1}]})
                           + "\n" for k, r in enumerate(data[:5])), encoding="utf-8")
    gpner("predict", run, inp, "-o", tmp_path / "pred.jsonl")
    pred = [json.loads(x) for x in (tmp_path / "pred.jsonl").read_text("utf-8").splitlines()]
    assert [p["id"] for p in pred] == list(range(5))
    assert [triple_set(p) for p in pred] == \
        [triple_set(r) for r in load_predictor(run).predict([r["text"] for r in data[:5]])]


def load_predictor(run):
    from gpner.prediction.loading import load

    return load(run, device="cpu")


def test_task_is_detected_from_the_data_and_checked():
    from gpner.training.build import build, resolve_task
    from gpner.training.config import TrainConfig

    data = generate_relations(6, 2)
    plain = [{"text": r["text"], "entities": r["entities"]} for r in data]
    assert resolve_task(TrainConfig(), data).task == "relations"
    assert resolve_task(TrainConfig(), plain).task == "ner"
    assert resolve_task(TrainConfig(task="ner"), data).task == "ner"  # said so: NER only
    with pytest.raises(ValueError, match="no relations"):
        build(tiny_config(task="relations"), plain)
    with pytest.raises(ValueError, match="span head"):
        tiny_config(task="relations", head="crf")


def test_training_windows_hold_relations_or_count_them():
    from gpner.records import Report
    from gpner.text.features import BuiltinFeaturizer
    from gpner.training.examples import make_examples

    text = "Alice lives in Paris . " + "and so on " * 10 + "Bob lives in Rome ."
    s = text.index
    rec = {"text": text, "entities": [
        {"start": 0, "end": 5, "label": "PER"}, {"start": s("Paris"), "end": s("Paris") + 5,
                                                 "label": "LOC"},
        {"start": s("Bob"), "end": s("Bob") + 3, "label": "PER"},
        {"start": s("Rome"), "end": s("Rome") + 4, "label": "LOC"},
        {"start": 1, "end": 5, "label": "PER"}],  # "lice": a boundary inside a token
        "relations": [{"head": 0, "tail": 1, "label": "lives_in"},
                      {"head": 2, "tail": 3, "label": "lives_in"},
                      {"head": 0, "tail": 3, "label": "knows_city"},  # 30 tokens apart
                      {"head": 4, "tail": 1, "label": "lives_in"}]}
    fz = BuiltinFeaturizer.build([text], 1)
    report = Report("t")
    ex = make_examples([rec], fz, ["LOC", "PER"], 12, report,
                       relations=["knows_city", "lives_in"])
    found = set()
    for e in ex:
        for h, t, p in e.relations:
            a, b = e.spans[h], e.spans[t]
            w = e.window
            found.add((w.start + a.start - w.prefix, w.start + b.start - w.prefix, p))
    # token indices in the text: Alice 0, Paris 3, Bob 35, Rome 38; lives_in is relation 1
    assert found == {(0, 3, 1), (35, 38, 1)}
    assert report.skipped["relation wider than a window"] == 1
    assert report.skipped["relation on a skipped entity"] == 1
    assert report.skipped["boundary inside a token"] == 1
    assert report.relations == 3 and report.entities == 4


def test_regularisers_see_all_three_heads(tmp_path):
    """The GP divergence of the task sums over entities, heads and tails (zero for equal
    outputs, and each head's difference counts); R-Drop trains a gp relation model."""
    from gpner.model.losses import gp_divergence
    from gpner.training.trainer import train

    rng = np.random.default_rng(1)
    a = {k: torch.from_numpy(_masked(rng, 2, c, 5, k != "entities", [5, 3]))
         for k, c in (("entities", 2), ("heads", 3), ("tails", 3))}
    b = {k: v + torch.from_numpy(rng.normal(0, 0.3, v.shape).astype(np.float32))
         for k, v in a.items()}
    task = RelationTask(["A", "B"], "gp", 8, relations=["x", "y", "z"])
    assert float(task.divergence(a, a)) == 0.0
    want = sum(float(gp_divergence(a[k], b[k])) for k in a)
    assert float(task.divergence(a, b)) == pytest.approx(want, rel=1e-6)
    assert all(float(gp_divergence(a[k], b[k])) > 0 for k in a)
    data = generate_relations(24, 4)
    summary = train(data, data[:6], tmp_path / "run", tiny_config(head="gp", rdrop=1.0, epochs=2),
                    progress=False)
    assert summary["skipped_steps"] == 0 and summary["config"]["head"] == "gp"


def test_a_triple_on_a_span_cut_by_a_window_edge_is_dropped_with_that_span():
    """Windows of 8 tokens every 4 over 20 one-character tokens: (0, 8), (4, 12), (8, 16),
    (12, 20). Window (0, 8) sees X = tokens 6..7 at its inner edge (maybe a piece of a longer
    entity) and a triple Y -> X; window (4, 12) holds X with context on both sides, finds it
    whole, and no triple (Y lies outside it). X is kept from window (4, 12); the triple, found
    only where X touched the edge, goes with the piece it was about. Y -> Z, both inside window
    (0, 8), stays."""
    from gpner.contracts import WindowSpans
    from gpner.model.artifact import DecodeSettings, EncoderSpec, ModelConfig
    from gpner.prediction.predictor import Predictor
    from gpner.text.features import BuiltinFeaturizer

    text = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉"
    fz = BuiltinFeaturizer.build([text])
    position = {fz.words.index[ch]: k for k, ch in enumerate(text)}
    Y, Z, X = TokenSpan(2, 4, 0, 3.0), TokenSpan(4, 5, 0, 2.5), TokenSpan(6, 8, 0, 2.0)

    class Planted:
        """Per window (by its first text token): the spans (text tokens) and triples it finds."""

        name, output, labels, relations = "relations", "entities", ["E"], ["r"]
        head, head_size, span_head, has_relations = "gp", 8, True, True
        found = {0: ([Y, Z, X], [Triple(2, 4, 6, 8, 0, 1.5), Triple(2, 4, 4, 5, 0, 1.0)]),
                 4: ([Z, X], [])}

        def decode(self, outputs, batch, threshold=0.0, max_width=None):
            out = []
            for ids in outputs["ids"].tolist():
                start = position[ids[0]]
                spans, triples = self.found.get(start, ([], []))
                local = [sp._replace(start=sp.start - start, end=sp.end - start)
                         for sp in spans]
                shifted = [t._replace(s_start=t.s_start - start, s_end=t.s_end - start,
                                      o_start=t.o_start - start, o_end=t.o_end - start)
                           for t in triples]
                out.append(window_spans(local, shifted))
            assert all(isinstance(w, WindowSpans) for w in out)
            return out

    config = ModelConfig(labels=["E"], head="gp", encoder=EncoderSpec("builtin"), tokenizer={},
                         max_length=8, task="relations", relations=["r"],
                         decode=DecodeSettings(threshold=0.0, flat=False))
    record = Predictor(config, fz, Planted(), lambda batch: {"ids": batch["ids"]}).predict(text)
    ents = record["entities"]
    assert [(e["text"], e["score"]) for e in ents] == [("丙丁", 3.0), ("戊", 2.5), ("庚辛", 2.0)]
    assert [(ents[r["head"]]["text"], ents[r["tail"]]["text"], r["score"])
            for r in record["relations"]] == [("丙丁", "戊", 1.0)]


def test_triple_decoding_worked_example():
    """Three tokens, one entity type, one relation. Entities: token 0 (2.0), token 2 (1.0), token
    1 below the threshold (-0.3). Links: subject starting at 0 -> object starting at 2 scores
    0.5 on the head link and 3.0 on the tail link: a triple, scored min(2.0, 1.0, 0.5, 3.0) =
    0.5. The reverse pair scores 4.0 on the head link but -0.2 on the tail link: none."""
    ninf = -np.inf
    ent = np.full((1, 1, 3, 3), ninf)
    ent[0, 0, 0, 0], ent[0, 0, 2, 2], ent[0, 0, 1, 1] = 2.0, 1.0, -0.3
    heads, tails = np.full((1, 1, 3, 3), -1.0), np.full((1, 1, 3, 3), -1.0)
    heads[0, 0, 0, 2], tails[0, 0, 0, 2] = 0.5, 3.0
    heads[0, 0, 2, 0], tails[0, 0, 2, 0] = 4.0, -0.2
    task = RelationTask(["E"], "gp", 8, relations=["r"])
    (window,) = task.decode({"entities": ent, "heads": heads, "tails": tails}, {}, 0.0)
    assert window.rows.tolist() == [[0, 0, 1], [0, 2, 3]]  # (label, start, end)
    assert window.triples == [Triple(0, 1, 2, 3, 0, 0.5)]
