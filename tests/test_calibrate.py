"""Per-label thresholds: the exact search against an exhaustive one (ties, a label with no gold),
`gpner calibrate` end to end, and the saved thresholds reaching every path that decodes
(the Python API serial and concurrent, flat decoding, `gpner predict`, `gpner evaluate`, the
service, ONNX, spaCy, the Hugging Face pipeline, the Ray predictor), with `--threshold` still
overriding them. The oracle for each path: the model's own nested predictions at the default
threshold, less the label whose threshold was raised out of reach."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import tiny_config, tiny_data

from gpner.metrics import best_threshold
from gpner.prediction.loading import load

TEXTS = ["张伟在北京大学工作，李娜住在上海。", "Alice Smith works at the Bank of London .",
         "王芳去了杭州，在浙江大学读书。"]


def f1_at(cands, n_gold, t):
    tp = sum(ok for s, ok in cands if s > t)
    fp = sum(not ok for s, ok in cands if s > t)
    return 2 * tp / (2 * tp + fp + n_gold - tp) if n_gold else 0.0


def exhaustive(cands, n_gold, floor):
    """Oracle: F1 at every threshold that can matter (each score, and the floor)."""
    return max(f1_at(cands, n_gold, t) for t in [floor, *(s for s, _ in cands)])


def test_the_search_on_a_worked_example_with_ties_and_no_gold():
    # scores 3, 2, 2 (a tie: one right, one wrong), 1 (right), 0.5 (wrong); 3 gold spans
    cands = [(3.0, True), (2.0, True), (2.0, False), (1.0, True), (0.5, False)]
    t, f1 = best_threshold(cands, 3, -10.0, 0.0)
    # by hand: keep {3}: 2/4 = .5; {3, 2, 2}: 4/6 = .667; {.., 1}: 6/7 = .857; all: 6/8 = .75
    assert f1 == pytest.approx(6 / 7) and t == pytest.approx(0.75)
    assert f1_at(cands, 3, t) == pytest.approx(f1)
    # a tie cannot be split: the two spans scoring 2 go in or out together
    t, f1 = best_threshold([(2.0, True), (2.0, False)], 1, -10.0, 0.0)
    assert f1 == pytest.approx(2 / 3) and t == pytest.approx(-4.0)
    # equal F1s: keep {4} or {4, 3, 2, 1}, both 2/3: the higher threshold (fewer spans) wins
    t, f1 = best_threshold([(4.0, True), (3.0, False), (2.0, False), (1.0, True)], 2, -10.0,
                           0.0)
    assert f1 == pytest.approx(2 / 3) and t == pytest.approx(3.5)
    # no gold: any span would be a false positive, so the threshold rises above them all
    assert best_threshold([(1.5, False), (-2.0, False)], 0, -10.0, 0.0) == (1.5, 0.0)
    assert best_threshold([], 0, -10.0, 0.0) == (0.0, 0.0)
    assert best_threshold([], 4, -10.0, 0.0) == (0.0, 0.0)  # nothing to find: the default


def test_the_search_equals_an_exhaustive_search_on_random_labels():
    rng = random.Random(7)
    for _ in range(300):
        n = rng.randint(0, 12)
        cands = [(round(rng.uniform(-5, 5), rng.choice([0, 1])), rng.random() < 0.5)
                 for _ in range(n)]  # rounding makes ties
        n_gold = sum(ok for _, ok in cands) + rng.randint(0 if cands else 1, 3)
        t, f1 = best_threshold(cands, n_gold, -10.0, 0.0)
        assert f1 == pytest.approx(exhaustive(cands, n_gold, -10.0))
        assert f1_at(cands, n_gold, t) == pytest.approx(f1)


@pytest.fixture(scope="module")
def trained(tagger):
    return tagger


@pytest.fixture()
def gated(trained, tmp_path):
    """A copy whose thresholds keep the model's default for all labels but one, raised out of
    reach; that label, and the oracle."""
    d = tmp_path / "model"
    shutil.copytree(trained, d)
    plain = load(trained, device="cpu")
    nested = plain.predict(TEXTS, flat=False)
    counts = {lab: sum(e["label"] == lab for r in nested for e in r["entities"])
              for lab in plain.labels}
    gone = max(counts, key=counts.get)
    assert counts[gone] > 0  # the label to silence is there at the default threshold
    cfg = json.loads((d / "config.json").read_text())
    cfg["decode"]["thresholds"] = {gone: 50.0}
    # and a calibration map, prob = sigmoid(score - 1): each path's prob must come from it
    cfg["decode"]["calibration"] = {lab: {"method": "platt", "a": 1.0, "b": -1.0}
                                    for lab in plain.labels}
    (d / "config.json").write_text(json.dumps(cfg))
    want = [{**r, "entities": [e for e in r["entities"] if e["label"] != gone]} for r in nested]
    return d, gone, want, nested


def strip(records):
    """Records without prob (compared apart: calibrated(...) checks it)."""
    return [{**r, "entities": [{k: v for k, v in e.items() if k != "prob"}
                               for e in r["entities"]]} for r in records]


def calibrated(records) -> bool:
    """Every entity's prob is the gated model's map of its score, sigmoid(score - 1)."""
    import math

    ents = [e for r in records for e in r["entities"]]
    return bool(ents) and all(abs(e["prob"] - 1 / (1 + math.exp(1 - e["score"]))) < 2e-4
                              for e in ents)


def test_api_serial_and_concurrent_and_flat(gated):
    d, gone, want, nested = gated
    got = load(d).predict(TEXTS, flat=False)
    assert strip(got) == strip(want) and calibrated(got)
    got = load(d, concurrency=2).predict(TEXTS, flat=False)
    assert strip(got) == strip(want) and calibrated(got)
    flat = load(d).predict(TEXTS, flat=True)
    assert all(e["label"] != gone for r in flat for e in r["entities"]) and calibrated(flat)
    # a given threshold overrides them all
    got = load(d).predict(TEXTS, flat=False, threshold=0.0)
    assert strip(got) == strip(nested) and calibrated(got)


def gpner(*args):
    exe = str(Path(sys.executable).parent / "gpner")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True)


def test_cli_predict_and_evaluate(gated, tmp_path):
    d, gone, want, nested = gated
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    res = gpner("predict", d, src, "--nested")
    assert res.returncode == 0, res.stderr
    got = [json.loads(x) for x in res.stdout.splitlines()]
    assert strip(got) == strip(want) and calibrated(got)
    res = gpner("predict", d, src, "--nested", "--threshold", "0")
    assert strip([json.loads(x) for x in res.stdout.splitlines()]) == strip(nested)
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"text": r["text"], "entities": [
        {k: e[k] for k in ("start", "end", "label")} for e in r["entities"]]},
        ensure_ascii=False) + "\n" for r in nested), encoding="utf-8")
    res = gpner("evaluate", d, gold, "--json")
    out = json.loads(res.stdout)
    assert out["per_label"][gone]["tp"] == 0 and out["per_label"][gone]["fn"] > 0


def test_the_service(gated):
    pytest.importorskip("fastapi")
    from test_serving import client_for

    d, gone, want, nested = gated
    c = client_for(load(d, device="cpu"), model="m")
    try:
        got = c.post("/predict", json={"texts": TEXTS, "flat": False}).json()["results"]
        assert [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in got] == \
            [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in want]
        assert calibrated(got)
        got = c.post("/predict", json={"texts": TEXTS, "flat": False,
                                       "threshold": 0.0}).json()["results"]
        assert sum(e["label"] == gone for r in got for e in r["entities"]) > 0
    finally:
        c.__exit__(None, None, None)


def test_onnx(gated):
    pytest.importorskip("onnxruntime")
    from gpner.integrations.onnx_export import export_onnx

    d, gone, want, nested = gated
    export_onnx(d)
    got = load(d, backend="onnx").predict(TEXTS, flat=False)
    key = [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in got]
    assert key == [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in want]
    assert calibrated(got)


def test_spacy(gated):
    spacy = pytest.importorskip("spacy")
    d, gone, want, nested = gated
    nlp = spacy.blank("zh")
    nlp.add_pipe("gpner", config={"model": str(d), "spans_key": "sc"})
    doc = nlp(TEXTS[0])
    assert {s.label_ for s in doc.spans["sc"]} <= set(load(d).labels) - {gone}
    assert calibrated([{"entities": [{"score": s._.score, "prob": s._.prob}
                                     for s in doc.spans["sc"]]}])


def test_ray_predictor(gated):
    np = pytest.importorskip("numpy")
    from gpner.integrations.batch_inference import GpnerPredictor

    d, gone, want, nested = gated
    cols = GpnerPredictor(str(d), flat=False)({"text": np.array(TEXTS, dtype=object)})
    got = [{"entities": e} for e in cols["entities"]]
    assert strip(got) == strip([{"entities": r["entities"]} for r in want]) and calibrated(got)


def test_hugging_face_pipeline(tmp_path, tiny_bert_dir):
    pytest.importorskip("transformers")
    from transformers import pipeline

    import gpner.hf  # noqa: F401
    from gpner.training.trainer import train

    run = tmp_path / "run"
    train(tiny_data(32, 5), None, run, tiny_config(encoder=str(tiny_bert_dir), epochs=1,
                                                   encoder_lr=1e-3, head="gp"), progress=False)
    d = run / "model"
    plain = load(d, device="cpu").predict(TEXTS, threshold=-1.0, flat=False)
    labels = [e["label"] for r in plain for e in r["entities"]]
    assert labels
    gone = max(set(labels), key=labels.count)
    cfg = json.loads((d / "config.json").read_text())
    cfg["decode"].update(threshold=-1.0, flat=False, thresholds={gone: 50.0})
    (d / "config.json").write_text(json.dumps(cfg))
    want = [{**r, "entities": [e for e in r["entities"] if e["label"] != gone]} for r in plain]
    assert pipeline("gpner-ner", model=str(d))(TEXTS) == want


def test_calibrate_end_to_end(trained, tmp_path):
    d = tmp_path / "model"
    shutil.copytree(trained, d)
    dev = tmp_path / "dev.jsonl"
    from gpner.data.formats import write

    write(tiny_data(60, 5), dev)
    res = gpner("calibrate", d, dev, "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    saved = json.loads((d / "config.json").read_text())["decode"]["thresholds"]
    assert saved == {lab: r["threshold"] for lab, r in out["labels"].items()}
    assert all(r["f1"] >= r["f1_at_default"] - 1e-12 for r in out["labels"].values())
    # the thresholds chosen on dev give the dev F1s the search reported
    res = gpner("evaluate", d, dev, "--json")
    per = json.loads(res.stdout)["per_label"]
    for lab, r in out["labels"].items():
        if r["gold"]:
            assert per[lab]["f1"] == pytest.approx(r["f1"], abs=1e-9), lab
