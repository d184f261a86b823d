"""ONNX export and the ONNX Runtime backend: the exported graph gives PyTorch's outputs (within
1e-4) and the same spans at batch sizes and lengths other than the traced ones, for every head and
for a Hugging Face encoder; int8 quantisation runs; and the ONNX path never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from helpers import tiny_config  # noqa: E402

from gpner.data.demo import generate  # noqa: E402
from gpner.integrations.onnx_export import export_onnx  # noqa: E402
from gpner.prediction.loading import load  # noqa: E402
from gpner.tasks.decoding import as_array  # noqa: E402
from gpner.training.trainer import train  # noqa: E402

# texts of many lengths, one far longer than the 40-token windows (several windows)
TEXTS = [r["text"] for r in generate(20, 5)] + ["", "。", " ".join(
    r["text"] for r in generate(12, 6))]


@pytest.fixture(scope="module", params=["gp", "egp", "crf", "softmax"])
def exported(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"onnx-{request.param}")
    train(generate(96, 1), generate(16, 2), d / "run",
          tiny_config(head=request.param, epochs=10, max_length=40), progress=False)
    export_onnx(d / "run", int8=True)
    return d / "run"


def spans(records):
    return [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in records]


def test_onnx_outputs_and_spans_match_pytorch(exported):
    torch_model, onnx_model = load(exported), load(exported, backend="onnx")
    assert onnx_model.backend.inputs and torch_model.config.head == onnx_model.config.head
    for size in (1, 3, 8):  # the graph was traced on a batch of 2 short texts
        windows = []
        for text in TEXTS[size:size + size]:
            enc = torch_model.featurizer.encode(text)
            windows.append(torch_model.featurizer.window(text, enc, 0, min(len(enc), 38)))
        batch = torch_model.featurizer.collate(windows)
        want = {k: as_array(v) for k, v in torch_model.backend(batch).items()}
        got = onnx_model.backend(batch)
        assert set(got) == set(want)
        for k in want:
            assert np.array_equal(np.isfinite(want[k]), np.isfinite(got[k])), k
            fin = np.isfinite(want[k])
            assert np.abs(want[k][fin] - got[k][fin]).max() <= 1e-4, k
    for bs in (1, 4, 32):
        a = torch_model.predict(TEXTS, batch_size=bs)
        b = onnx_model.predict(TEXTS, batch_size=bs)
        assert spans(a) == spans(b)
        assert sum(map(len, spans(a))) > 10  # a model that finds things
        for ra, rb in zip(a, b, strict=True):
            for ea, eb in zip(ra["entities"], rb["entities"], strict=True):
                assert abs(ea["score"] - eb["score"]) <= 2e-4


def test_concurrent_onnx_batches_give_the_serial_records(exported, monkeypatch):
    """One session run from two threads at once (each batch on one core) predicts what one
    batch at a time does. Batches are cut from half the look-ahead (the other half runs
    meanwhile), so they can group windows differently: fp32 scores then move by float noise
    only; int8 quantises activations with one scale per batch, so it is compared on texts of
    one window each (none empty: a record that waits for an earlier text counts against the
    look-ahead), where half the look-ahead gives the same batches."""
    import gpner.prediction.loading

    monkeypatch.setattr(gpner.prediction.loading, "cores", lambda: 4)
    both = load(exported, backend="onnx-int8", concurrency=2)
    assert both.concurrency == 2
    assert both.backend.session.get_session_options().intra_op_num_threads == 2  # 4 cores / 2
    encs = [both.featurizer.encode(t) for t in TEXTS]
    short = [t for t, e in zip(TEXTS, encs, strict=True) if any(e.spannable) and len(e) <= 38] * 3
    assert len(short) == 3 * (len(TEXTS) - 2)  # all but the empty text and the long one
    assert list(both.predict_iter(short, batch_size=2, lookahead=12)) == \
        list(load(exported, backend="onnx-int8").predict_iter(short, batch_size=2, lookahead=6))
    a = load(exported, backend="onnx", concurrency=2).predict(TEXTS * 3, batch_size=2)
    b = load(exported, backend="onnx").predict(TEXTS * 3, batch_size=2)
    assert spans(a) == spans(b) and sum(map(len, spans(a))) > 10
    for ra, rb in zip(a, b, strict=True):
        for ea, eb in zip(ra["entities"], rb["entities"], strict=True):
            assert abs(ea["score"] - eb["score"]) <= 2e-4
    with pytest.raises(ValueError, match="concurrency must be an integer >= 1"):
        load(exported, backend="onnx", concurrency=0)


def test_int8_graph_stays_close_to_fp32(exported):
    """int8 weights move scores a little (the F1 change on real data is measured by
    bench/onnx_speed.py): relative error of the outputs, and the records it predicts."""
    fp32, int8 = load(exported, backend="onnx"), load(exported, backend="onnx-int8")
    windows = []
    for text in TEXTS[:8]:
        enc = fp32.featurizer.encode(text)
        windows.append(fp32.featurizer.window(text, enc, 0, min(len(enc), 38)))
    batch = fp32.featurizer.collate(windows)
    a, b = fp32.backend(batch), int8.backend(batch)
    for k in (k for k in a if a[k].ndim >= 3):  # the scores (CRF transitions stay fp32)
        fin = np.isfinite(a[k])
        assert np.array_equal(fin, np.isfinite(b[k])), k
        err = np.linalg.norm(a[k][fin] - b[k][fin]) / np.linalg.norm(a[k][fin])
        assert 0 < err < 0.15, (k, err)  # 0 would mean the weights were not quantised
    assert [r["text"] for r in int8.predict(TEXTS)] == TEXTS
    spec = json.loads((exported / "model" / "onnx" / "onnx.json").read_text())
    assert spec["int8"] and spec["max_abs_diff_fp32"] <= 1e-4


def test_missing_export_is_a_clear_error(tmp_path):
    train(generate(32, 1), None, tmp_path / "run", tiny_config(epochs=1), progress=False)
    with pytest.raises(FileNotFoundError, match="gpner export .* --onnx --int8"):
        load(tmp_path / "run", backend="onnx-int8")
    with pytest.raises(ValueError, match="backend must be one of"):
        load(tmp_path / "run", backend="tensorrt")


def test_parity_difference_worked_example():
    """Finite cells: the largest |a - b|; cells that are -inf (no span) on one side must be -inf
    on the other: a graph that lost its mask differs by inf, whatever its finite cells say."""
    from gpner.integrations.onnx_export import _max_diff

    inf = np.inf
    assert _max_diff(np.array([1.0, -inf, 2.0]), np.array([1.5, -inf, 1.75])) == 0.5
    assert _max_diff(np.array([1.0, -inf]), np.array([1.0, -1e4])) == inf  # mask lost
    assert _max_diff(np.array([1.0, -1e4]), np.array([1.0, -inf])) == inf  # mask invented
    assert _max_diff(np.array([inf]), np.array([-inf])) == inf  # both infinite, not the same
    assert _max_diff(np.array([-inf, -inf]), np.array([-inf, -inf])) == 0.0


def test_a_tampered_export_is_refused_by_the_parity_check(tmp_path, monkeypatch):
    """A graph that gives PyTorch's scores on every span cell but a finite score where PyTorch
    has -inf (a mask lost in export) is refused, and nothing is left in onnx/."""
    import torch

    import gpner.integrations.onnx_export as onnx_export
    from gpner.model.artifact import save_model
    from gpner.training.build import build

    model, featurizer, _, config = build(tiny_config(head="gp"), generate(16, 1))
    save_model(model.eval(), featurizer, config, tmp_path / "m")

    class MaskLost(onnx_export._Graph):
        def forward(self, *xs):
            return tuple(torch.nan_to_num(x, neginf=-1e4) for x in super().forward(*xs))

    monkeypatch.setattr(onnx_export, "_Graph", MaskLost)
    with pytest.raises(RuntimeError, match="differs from PyTorch by inf"):
        export_onnx(tmp_path / "m")
    assert list((tmp_path / "m" / "onnx").iterdir()) == []


NO_TORCH = """
import json, sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")

sys.meta_path.insert(0, NoTorch())
import gpner

model = gpner.load(sys.argv[1], backend=sys.argv[2])
out = model.predict(json.loads(sys.argv[3]))
print(json.dumps(out, ensure_ascii=False))
"""


def test_onnx_path_runs_without_torch(exported):
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(NO_TORCH), str(exported), "onnx",
                          json.dumps(TEXTS, ensure_ascii=False)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert spans(json.loads(res.stdout)) == spans(load(exported).predict(TEXTS))


def test_hf_encoder_exports_and_runs_without_torch(tmp_path, tiny_bert_dir):
    cfg = tiny_config(encoder=str(tiny_bert_dir), head="gp", epochs=1, max_length=24)
    train(generate(32, 1), None, tmp_path / "run", cfg, progress=False)
    spec = export_onnx(tmp_path / "run")
    assert spec["max_abs_diff_fp32"] <= 1e-4
    torch_model = load(tmp_path / "run")
    for size in (1, 5):
        windows = []
        for text in TEXTS[:size]:
            enc = torch_model.featurizer.encode(text)
            windows.append(torch_model.featurizer.window(text, enc, 0, min(len(enc), 22)))
        batch = torch_model.featurizer.collate(windows)
        a = as_array(torch_model.backend(batch)["entities"])
        b = load(tmp_path / "run", backend="onnx").backend(batch)["entities"]
        fin = np.isfinite(a)
        assert np.array_equal(fin, np.isfinite(b)) and np.abs(a[fin] - b[fin]).max() <= 1e-4
    texts = TEXTS[:6] + [TEXTS[-1]]  # the last one needs windows
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(NO_TORCH), str(tmp_path / "run"),
                          "onnx", json.dumps(texts, ensure_ascii=False)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    want = torch_model.predict(texts)
    assert [r["text"] for r in got] == texts
    for ra, rb in zip(want, got, strict=True):  # an untrained model: compare only decisive scores
        sure = {(e["start"], e["end"], e["label"]) for e in ra["entities"]
                if abs(e["score"]) > 1e-3}
        assert sure <= {(e["start"], e["end"], e["label"]) for e in rb["entities"]}
