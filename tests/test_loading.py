"""Model directory round trips for every head and for the Hugging Face encoder path (windows
over a long text included)."""

from __future__ import annotations

import json

import pytest
import torch

from gpner.model.artifact import save_model
from gpner.model.encoders import EncoderNotFound, load_hf
from gpner.prediction.backends import TorchBackend
from gpner.prediction.loading import load
from gpner.prediction.predictor import Predictor
from gpner.training.build import build
from tests.helpers import tiny_config, tiny_data

TEXTS = ["张伟在上海大学工作。", "Alice Johnson works at the Bank of London .", "", "   "]


@pytest.mark.parametrize("head", ["gp", "egp", "crf", "softmax"])
def test_save_load_gives_identical_predictions(tmp_path, head):
    torch.manual_seed(0)
    records = tiny_data(32)
    model, featurizer, task, config = build(tiny_config(head=head), records)
    config.decode.flat, config.decode.max_width, config.decode.threshold = False, 8, -0.05
    with torch.no_grad():  # make sure random weights produce some spans to compare
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    before = Predictor(config, featurizer, task, TorchBackend(model.eval())).predict(TEXTS)
    save_model(model, featurizer, config, tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["README.md", "config.json", "features.json", "gpner_hf.py",
                     "model.safetensors", "vocab.json"]  # a model card, transformers' remote code
    after = load(tmp_path / "m").predict(TEXTS)
    assert after == before
    assert before[2] == {"text": "", "entities": []} and before[3]["entities"] == []
    assert sum(len(r["entities"]) for r in before) > 0
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["id2label"] == {"0": "LOC", "1": "ORG", "2": "PER"} and saved["head"] == head
    assert saved["label2id"] == {"LOC": 0, "ORG": 1, "PER": 2}
    assert (saved["model_type"], saved["format_version"], saved["task"]) == ("gpner", 2, "ner")
    assert saved["train_config"]["head"] == head and saved["decode"]["max_width"] == 8
    assert saved["tokenizer"]["type"] == "builtin" and "vocab.json" in saved["tokenizer"]["files"]


def test_hf_encoder_round_trip_and_windows(tmp_path, tiny_bert_dir):
    torch.manual_seed(0)
    records = tiny_data(16)
    cfg = tiny_config(encoder=str(tiny_bert_dir), head="gp")
    model, featurizer, task, config = build(cfg, records)
    assert config.max_length == 64 and featurizer.num_special == 2
    config.decode.flat, config.decode.max_width, config.decode.threshold = False, 6, -0.01
    long_text = "Bob Smith works in London . " * 40  # about 240 tokens: several windows
    texts = TEXTS + [long_text]
    before = Predictor(config, featurizer, task, TorchBackend(model.eval())).predict(texts)
    save_model(model, featurizer, config, tmp_path / "m")
    assert (tmp_path / "m" / "encoder" / "config.json").exists()
    assert (tmp_path / "m" / "tokenizer.json").exists()
    after = load(tmp_path / "m").predict(texts)
    assert after == before
    ends = [e["end"] for e in after[-1]["entities"]]
    assert ends and max(ends) > len(long_text) // 2  # spans found beyond the first window


def test_missing_encoder_error_names_it(monkeypatch, tmp_path):
    import huggingface_hub.constants

    # read at import time by huggingface_hub: patch the constant, not the environment
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(EncoderNotFound, match=r"no-such-org/no-such-model.*--encoder /path/to/model"):
        load_hf("no-such-org/no-such-model")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EncoderNotFound, match="local directory"):
        load_hf(str(empty))


def test_load_rejects_non_model_dirs(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a gpner model directory"):
        load(tmp_path)
