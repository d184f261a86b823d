"""Batch inference: the picklable predictor over the batch shapes Ray, Spark and Dask pass, and
`gpner predict --ray` on a local 2-CPU Ray instance writing the single-process records in order."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from gpner.integrations.batch_inference import GpnerPredictor

TEXTS = ["张伟在上海大学工作。", "", "Alice works at the Bank of London .", "李娜将访问成都。"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from helpers import tiny_config

    from gpner.data.demo import generate
    from gpner.training.trainer import train

    d = tmp_path_factory.mktemp("batch")
    train(generate(96, 1), None, d / "run", tiny_config(epochs=6), progress=False)
    return d / "run"


def test_predictor_pickles_without_weights_and_takes_every_batch_shape(model_dir):
    from gpner.prediction.loading import load

    want = [r["entities"] for r in load(model_dir).predict(TEXTS)]
    pred = GpnerPredictor(str(model_dir))
    assert pred({"text": np.array(TEXTS[:1])})  # loads the model
    blob = pickle.dumps(pred)
    assert len(blob) < 2000  # the settings travel, the weights load where it runs
    copy = pickle.loads(blob)
    cols = copy({"text": np.array(TEXTS, dtype=object), "id": np.arange(4)})
    assert list(cols["id"]) == [0, 1, 2, 3] and list(cols["entities"]) == want
    rows = copy([{"text": t, "k": i} for i, t in enumerate(TEXTS)])
    assert [r["entities"] for r in rows] == want and [r["k"] for r in rows] == [0, 1, 2, 3]
    pd = pytest.importorskip("pandas")
    frame = copy(pd.DataFrame({"text": TEXTS, "n": range(4)}))
    assert list(frame["entities"]) == want and list(frame["n"]) == [0, 1, 2, 3]


def test_ray_writes_the_single_process_output(model_dir, tmp_path):
    pytest.importorskip("ray.data")
    from gpner.data.demo import generate

    src = tmp_path / "in.jsonl"
    lines = [json.dumps({"text": r["text"], "id": k}, ensure_ascii=False)
             for k, r in enumerate(generate(1500, 4))]  # several batches over two actors
    lines[7] = "{not json"
    lines[11] = ""
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    single = tmp_path / "single.jsonl"
    res = subprocess.run([sys.executable, "-m", "gpner.cli", "predict", str(model_dir), str(src),
                          "-o", str(single)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    script = (
        "import ray, sys\n"
        "ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)\n"
        "from gpner.integrations.batch_inference import predict_with_ray\n"
        "n = predict_with_ray(sys.argv[1], sys.argv[2], sys.argv[3], actors=2)\n"
        "print(n)\n")
    out = tmp_path / "ray.jsonl"
    res = subprocess.run([sys.executable, "-c", script, str(model_dir), str(src), str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert int(res.stdout.split()[-1]) == 1498
    # the same records in the same order: fields and spans exact; a score may move by 1e-4,
    # because the replicas batch other texts together (other padding, another summation order)
    got = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    want = [json.loads(x) for x in single.read_text(encoding="utf-8").splitlines()]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert {k: v for k, v in g.items() if k != "entities"} == \
            {k: v for k, v in w.items() if k != "entities"}
        assert [(e["start"], e["end"], e["label"]) for e in g["entities"]] == \
            [(e["start"], e["end"], e["label"]) for e in w["entities"]]
        assert all(abs(a["score"] - b["score"]) <= 2e-4
                   for a, b in zip(g["entities"], w["entities"], strict=True))
    assert "in.jsonl:8: invalid JSON" in res.stderr and "in.jsonl:12: blank line" in res.stderr
