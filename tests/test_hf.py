"""Hugging Face integration: a model directory gpner saved (a tiny random BERT encoder here) is
a transformers model directory: AutoConfig/AutoModel load it, with the registered classes or as
remote code; the span logits equal gpner's; labels give the dense loss; save_pretrained writes
a directory gpner loads again; pipeline("gpner-ner") answers gpner's records; the model card
says what the model is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("transformers")

from helpers import tiny_config, tiny_data  # noqa: E402

from gpner.prediction.loading import load  # noqa: E402
from gpner.training.trainer import train  # noqa: E402

TEXTS = ["张伟在北京工作。", "Bob Smith works in London ."]


@pytest.fixture(scope="module")
def hf_model_dir(tmp_path_factory, tiny_bert_dir):
    run = tmp_path_factory.mktemp("hf") / "run"
    records = tiny_data(32, seed=5)
    train(records, records[:8], run, tiny_config(encoder=str(tiny_bert_dir), epochs=1,
                                                  encoder_lr=1e-3, head="gp"), progress=False)
    return run / "model"


def test_config_json_is_a_transformers_config(hf_model_dir):
    from transformers import AutoConfig

    import gpner.hf  # noqa: F401  (registers)

    raw = json.loads((hf_model_dir / "config.json").read_text())
    assert raw["model_type"] == "gpner" and raw["architectures"] == [
        "GlobalPointerForSpanClassification"]
    assert raw["auto_map"]["AutoModel"] == "gpner_hf.GlobalPointerForSpanClassification"
    assert (hf_model_dir / "gpner_hf.py").is_file()
    cfg = AutoConfig.from_pretrained(hf_model_dir)
    assert type(cfg).__name__ == "GpnerConfig"
    assert cfg.id2label == {0: "LOC", 1: "ORG", 2: "PER"} and cfg.label2id["PER"] == 2
    assert cfg.num_labels == 3 and cfg.encoder_config["model_type"] == "bert"


def test_automodel_logits_equal_gpners_and_labels_give_the_loss(hf_model_dir):
    from transformers import AutoModel, AutoTokenizer

    import gpner.hf  # noqa: F401
    from gpner.model.losses import mcce_dense

    model = AutoModel.from_pretrained(hf_model_dir).eval()
    assert type(model).__name__ == "GlobalPointerForSpanClassification"
    tok = AutoTokenizer.from_pretrained(hf_model_dir)
    enc = tok(TEXTS, return_tensors="pt", padding=True, return_special_tokens_mask=True)
    with torch.no_grad():
        out = model(**enc)
    B, L = enc["input_ids"].shape
    assert out.logits.shape == (B, 3, L, L) and out.loss is None
    # gpner's own model on the same batch: the same weights, the same logits
    predictor = load(hf_model_dir, device="cpu")
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
             "mask": enc["attention_mask"].bool() & ~enc["special_tokens_mask"].bool()}
    with torch.no_grad():
        want = predictor.backend.model(batch)["entities"]
    assert torch.allclose(out.logits, want, atol=1e-5, equal_nan=True)
    assert torch.isneginf(out.logits[:, :, 0, :]).all()  # [CLS] starts no span
    labels = torch.zeros_like(out.logits)
    labels[1, 2, 1, 2] = 1  # "bob smith" as PER (tokens 1..2)
    out = model(**enc, labels=labels)
    assert torch.allclose(out.loss, mcce_dense(out.logits, labels))
    out.loss.backward()  # trainable
    assert model.heads["entities"].proj.weight.grad is not None


def test_remote_code_needs_no_import_and_save_pretrained_round_trips(hf_model_dir, tmp_path):
    code = ("from transformers import AutoModel; import sys; "
            f"m = AutoModel.from_pretrained({str(hf_model_dir)!r}, trust_remote_code=True); "
            "print(type(m).__name__, 'gpner.hf' in sys.modules)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["GlobalPointerForSpanClassification", "True"]

    from transformers import AutoModel, AutoTokenizer

    import gpner.hf  # noqa: F401

    model = AutoModel.from_pretrained(hf_model_dir)
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    AutoTokenizer.from_pretrained(hf_model_dir).save_pretrained(saved)
    for name in ("special_tokens.json",):  # gpner's one extra tokenizer file
        (saved / name).write_bytes((hf_model_dir / name).read_bytes())
    assert (saved / "model.safetensors").is_file()
    a, b = load(hf_model_dir, device="cpu"), load(saved, device="cpu")
    assert a.predict(TEXTS) == b.predict(TEXTS)


def test_pipeline_returns_gpners_records(hf_model_dir):
    from transformers import pipeline

    import gpner.hf  # noqa: F401

    nlp = pipeline("gpner-ner", model=str(hf_model_dir))
    gp = load(hf_model_dir, device="cpu")
    long_text = "Bob Smith works in London . " * 20  # several windows of 64 positions
    for kwargs in ({}, {"threshold": -1.0}, {"flat": True}):
        assert nlp(TEXTS, **kwargs) == gp.predict(TEXTS, **kwargs)
        assert nlp(long_text, **kwargs) == gp.predict(long_text, **kwargs)
    assert any(r["entities"] for r in gp.predict(TEXTS, threshold=-1.0))


def test_model_card(hf_model_dir, tmp_path):
    card = (hf_model_dir / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: gpner")
    for part in ("**Labels** (3): `LOC`, `ORG`, `PER`", "**Dev scores** (epoch 1", " F1 ",
                 'pipeline("gpner-ner", model=DIR)', "gp head"):
        assert part in card, part
    assert "Trained with" not in card  # trained from Python: no command to show
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in tiny_data(20)))
    out = subprocess.run([sys.executable, "-m", "gpner.cli", "train", "--train", str(data),
                          "--dev", str(data), "-o", str(tmp_path / "run"), "epochs=1",
                          "word_dim=8", "lstm_hidden=8", "char_channels=4", "head_size=4"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert f"gpner train --train {data} --dev {data}" in card
    n = sum(len(r["entities"]) for r in tiny_data(20))
    assert f"train: `t.jsonl (20 records, {n} entities)`" in card
