"""The model directory: the typed, versioned config; directories of format 1 (gpner 0.1.0) still
load; a kill between the two renames of a save leaves a loadable copy."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from gpner.model.artifact import (
    DecodeSettings,
    EncoderSpec,
    ModelConfig,
    resolve_dir,
    save_model,
)
from gpner.prediction.loading import load
from gpner.training.build import build
from tests.helpers import tiny_config, tiny_data

TEXTS = ["张伟在上海大学工作。", "Alice Johnson works at the Bank of London .",
         "据杭州人民医院消息，李娜将访问成都。"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A model directory (format 2) of a tiny model with random weights that finds spans."""
    torch.manual_seed(0)
    model, featurizer, task, config = build(tiny_config(head="gp"), tiny_data(32))
    config.decode = DecodeSettings(threshold=-0.05, flat=False, max_width=8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path_factory.mktemp("m") / "model"
    save_model(model, featurizer, config, path)
    return path


def test_config_round_trip_and_hf_style_labels():
    cfg = ModelConfig(labels=["LOC", "ORG"], head="egp", encoder=EncoderSpec("hf", name="x"),
                      tokenizer={"type": "hf"}, max_length=128,
                      decode=DecodeSettings(0.5, True, 9), train_config={"epochs": 3})
    d = json.loads(json.dumps(cfg.to_dict()))  # through JSON: keys become strings
    assert d["id2label"] == {"0": "LOC", "1": "ORG"} and d["label2id"] == {"LOC": 0, "ORG": 1}
    assert (d["model_type"], d["format_version"], d["task"]) == ("gpner", 2, "ner")
    back = ModelConfig.from_dict(d)
    assert back == cfg and back.id2label == {0: "LOC", 1: "ORG"}


@pytest.mark.parametrize("change,message", [
    (lambda d: d.update(model_type="bert"), "not a gpner model config"),
    (lambda d: d.update(format_version=3), "format_version 3.*upgrade gpner"),
    (lambda d: d.pop("id2label"), r"missing key\(s\) \['id2label'\]"),
    (lambda d: d.update(label2id={"LOC": 1, "ORG": 0}), "does not invert id2label"),
    (lambda d: d.update(id2label={"0": "LOC", "2": "ORG"}), "map 0..C-1"),
    (lambda d: d["decode"].update(thresh=1), "thresh"),
])
def test_config_errors_name_the_problem(saved, change, message):
    d = json.loads((saved / "config.json").read_text())
    change(d)
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict(d, "m/config.json")


def write_format_1(src, dst):
    """``src`` rewritten in gpner 0.1.0's layout: labels as a list, ``format``/``version``
    markers, an ``extra`` training key, and weights named ``head.*``."""
    shutil.copytree(src, dst)
    d = json.loads((src / "config.json").read_text())
    old = {"format": "gpner-model", "version": 1, "gpner_version": "0.1.0",
           "labels": [d["id2label"][str(k)] for k in range(len(d["id2label"]))],
           "head": d["head"], "head_size": d["head_size"], "encoder": d["encoder"],
           "tokenizer": d["tokenizer"], "max_length": d["max_length"], "decode": d["decode"],
           "train_config": {**d["train_config"], "extra": {}}, "data": None}
    for key in ("sizes", "params"):
        assert key in old["encoder"]
    old["encoder"] = {k: v for k, v in old["encoder"].items() if v is not None}
    (dst / "config.json").write_text(json.dumps(old))
    weights = load_file(str(src / "model.safetensors"))
    assert all(k.startswith(("encoder.", "heads.entities.")) for k in weights)
    save_file({k.replace("heads.entities.", "head.", 1): v for k, v in weights.items()},
              str(dst / "model.safetensors"))


def test_format_1_directories_load_with_the_same_predictions(saved, tmp_path):
    write_format_1(saved, tmp_path / "v1")
    new, old = load(saved), load(tmp_path / "v1")
    assert old.config.format_version == 1 and old.config.labels == new.config.labels
    want = new.predict(TEXTS)
    assert sum(len(r["entities"]) for r in want) > 0
    assert old.predict(TEXTS) == want
    # saving a loaded format-1 model writes format 2
    save_model(old.backend.model, old.featurizer, old.config, tmp_path / "v2")
    assert json.loads((tmp_path / "v2" / "config.json").read_text())["format_version"] == 2
    assert load(tmp_path / "v2").predict(TEXTS) == want


def test_run_directory_loads_after_a_kill_between_the_renames(saved, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # the state a kill leaves between swap_dir's two renames: the previous model moved to
    # .model.old, the new one complete in .model.tmp-PID, no model/ at all
    shutil.copytree(saved, run / ".model.old")
    shutil.copytree(saved, run / f".model.tmp-{os.getpid()}")
    assert resolve_dir(run) == run / ".model.old"
    assert load(run).predict(TEXTS) == load(saved).predict(TEXTS)
    shutil.copytree(saved, run / "model")  # once model/ is back, it wins
    assert resolve_dir(run) == run / "model"
    with pytest.raises(FileNotFoundError, match="not a gpner model directory"):
        load(tmp_path)
