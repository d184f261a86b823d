"""The resume checkpoint: a killed run resumes to the same weights; an interrupted checkpoint
swap falls back to the complete previous copy."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from gpner.training.trainer import train
from tests.helpers import tiny_config, tiny_data


class Kill(Exception):
    pass


def _killed_and_resumed(tmp_path, cfg, kill_at, dev=None, before_resume=lambda last: None):
    """Train run "a" whole, run "b" killed at step ``kill_at`` and resumed (after
    ``before_resume(b/last)``); return both runs' final checkpoint weights."""
    records = tiny_data(48, seed=2)
    train(records, dev, tmp_path / "a", cfg, progress=False)

    def kill(step, loss):
        if step == kill_at:
            raise Kill()

    with pytest.raises(Kill):
        train(records, dev, tmp_path / "b", cfg, progress=False, on_step=kill)
    before_resume(tmp_path / "b" / "last")
    train(records, dev, tmp_path / "b", resume=True, progress=False)
    a = load_file(str(tmp_path / "a" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    return a, b


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    cfg = tiny_config(epochs=3, dropout=0.3, word_dropout=0.1, ema=0.9)

    def at_epoch_one(last):
        state = json.loads((last / "state.json").read_text())
        assert (state["epoch"], state["step"]) == (1, 3)  # the checkpoint of epoch 1

    # 3 batches per epoch: step 5 is mid-way through epoch 2
    a, b = _killed_and_resumed(tmp_path, cfg, 5, tiny_data(48, seed=2)[:8], at_epoch_one)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ma = load_file(str(tmp_path / "a" / "model" / "model.safetensors"))
    mb = load_file(str(tmp_path / "b" / "model" / "model.safetensors"))
    assert all(torch.equal(ma[k], mb[k]) for k in ma)


def _as_format_1(last):
    """Rewrite a checkpoint in the layout gpner 0.1.0 wrote: weights named ``head.*`` (EMA
    shadow ``ema.head.*``), no ``checkpoint_version``."""
    def rename(tensors, prefix):
        return {(prefix + "head." + k[len(prefix + "heads.entities."):]
                 if k.startswith(prefix + "heads.entities.") else k): v
                for k, v in tensors.items()}
    for name, prefix in (("model.safetensors", ""), ("state.safetensors", "ema.")):
        tensors = rename(load_file(str(last / name)), prefix)
        assert any(k.startswith(prefix + "head.") for k in tensors)
        save_file(tensors, str(last / name))
    state = json.loads((last / "state.json").read_text())
    del state["checkpoint_version"]
    (last / "state.json").write_text(json.dumps(state))


def test_format_1_checkpoint_resumes_to_the_same_weights(tmp_path):
    cfg = tiny_config(epochs=2, dropout=0.3, ema=0.9)
    a, b = _killed_and_resumed(tmp_path, cfg, 4, before_resume=_as_format_1)
    assert any(k.startswith("heads.entities.") for k in b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_checkpoint_swap_interrupted_falls_back(tmp_path):
    records = tiny_data(16)
    train(records, None, tmp_path / "r", tiny_config(epochs=1), progress=False)
    # a kill between the two renames of a swap leaves only .last.old
    (tmp_path / "r" / "last").rename(tmp_path / "r" / ".last.old")
    summary = train(records, None, tmp_path / "r", resume=True, progress=False)
    assert summary["epochs_run"] == 1  # nothing left to do, but the state was found
