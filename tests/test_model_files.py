"""Model files are checked before they are trusted: each way a model directory can lie (it once
loaded with exit 0 and gave wrong output, or died with "unexpected error") is now a coded error
naming the file and the value. The untouched copy loads, so each check is shown to be the thing
that refuses its tampered copy."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from gpner.errors import GpnerError
from gpner.prediction.loading import load


@pytest.fixture()
def copy(nested_model_dir, tmp_path):
    d = tmp_path / "model"
    shutil.copytree(nested_model_dir, d)
    return d


def edit_config(d, change):
    cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
    change(cfg)
    (d / "config.json").write_text(json.dumps(cfg), encoding="utf-8")


def edit_weights(d, change):
    from safetensors.torch import load_file, save_file

    state = load_file(str(d / "model.safetensors"))
    change(state)
    save_file(state, str(d / "model.safetensors"))


def first_float(state):
    return next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)


def test_the_untouched_copy_loads(copy):
    assert load(copy).predict("北京大学")["text"] == "北京大学"


def _dup(cfg):
    labels = cfg["id2label"]
    labels["1"] = labels["0"]
    cfg.pop("label2id")


def _params(key, value):
    def change(cfg):
        cfg["encoder"]["params"][key] = value
    return change


def _vocab(cfg):
    cfg["encoder"]["sizes"]["chars"] = 5  # embeddings of 5 rows for a larger vocabulary


@pytest.mark.parametrize("change, code, words", [
    (_dup, "E203", "names ['"),
    (lambda c: c.update(max_length=2.9), "E203", "max_length should be a whole number"),
    (lambda c: c.update(max_length=10 ** 12), "E203", "from 8 to 8192"),
    (lambda c: c.update(max_length=True), "E203", "max_length"),
    (lambda c: c.update(head_size=-8), "E203", "head_size"),
    (_params("lstm_hidden", -32), "E203", "encoder.params.lstm_hidden"),
    (_params("dropout", 1.5), "E203", "encoder.params.dropout"),
    (lambda c: c["encoder"]["sizes"].update(words=0), "E203", "encoder.sizes should map"),
    (lambda c: c["encoder"]["sizes"].update(words=1 << 30), "E203", "encoder.sizes.words"),
])
def test_config_numbers_and_labels_are_checked(copy, change, code, words):
    edit_config(copy, change)
    with pytest.raises(GpnerError, match=rf"\[{code}\].*config\.json.*") as err:
        load(copy)
    assert words in str(err.value)


def test_a_vocabulary_larger_than_the_embeddings_is_refused(copy):
    # the config's sizes build the embedding table; the weights are cut to match them, so only
    # the vocabulary check can tell the tokenizer files belong to a larger model
    cfg = json.loads((copy / "config.json").read_text(encoding="utf-8"))
    chars = cfg["encoder"]["sizes"]["chars"]
    edit_config(copy, _vocab)

    def cut(state):
        state["encoder.char.weight"] = state["encoder.char.weight"][:5].clone()

    edit_weights(copy, cut)
    with pytest.raises(GpnerError, match=rf"\[E206\].*vocabulary has {chars} chars, the "
                       r"embeddings 5 rows"):
        load(copy)


@pytest.mark.parametrize("poison, words", [
    ("int", "is torch.int64, the model's is torch.float32"),
    ("nan", "NaN or infinite"),
    ("inf", "NaN or infinite"),
])
def test_weights_of_the_wrong_dtype_or_not_finite_are_refused(copy, poison, words):
    import torch

    def change(state):
        k = first_float(state)
        if poison == "int":
            state[k] = state[k].round().to(torch.int64)
        else:
            state[k] = state[k].clone()
            state[k].view(-1)[0] = float(poison)

    edit_weights(copy, change)
    with pytest.raises(GpnerError, match=r"\[E208\].*model\.safetensors: tensor ") as err:
        load(copy)
    assert words in str(err.value)


@pytest.mark.parametrize("kind", ["fifo", "directory", "dev-zero", "dangling"])
def test_a_model_file_that_is_not_a_regular_file_is_named(copy, kind):
    target = copy / "model.safetensors"
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    elif kind == "dev-zero":
        target.symlink_to("/dev/zero")
    else:
        target.symlink_to(copy / "gone.safetensors")
    with pytest.raises(GpnerError, match=r"\[E209\].*model\.safetensors: ") as err:
        load(copy)
    assert {"fifo": "FIFO", "directory": "a directory", "dev-zero": "a device",
            "dangling": "does not exist"}[kind] in str(err.value)
