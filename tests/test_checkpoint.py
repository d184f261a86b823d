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


class StepClock:
    """A clock of the trainer's that moves 10 s per optimizer step: the same run sees the same
    times whatever the machine does. ``offset`` stands for the hours a killed run waits before
    it is resumed (the wall clock goes on; only the time spent training counts)."""

    def __init__(self, offset: float = 0.0):
        self.now = offset

    def __call__(self) -> float:
        return self.now

    def step(self, step, loss):
        self.now += 10.0


def test_resume_under_max_minutes_reaches_the_uninterrupted_schedule(tmp_path, monkeypatch):
    """Under a time budget the schedule is refitted after every epoch from the time spent so
    far; a resumed run must count the time before the kill, or it plans more epochs than the
    run that was never interrupted (and stops later)."""
    import gpner.training.trainer as trainer

    records = tiny_data(48, seed=2)  # 3 batches an epoch: 30 s an epoch on the clock
    cfg = tiny_config(epochs=20, max_minutes=2.5)  # 150 s: 5 epochs fit
    clock = StepClock()
    monkeypatch.setattr(trainer, "clock", clock)
    whole = train(records, None, tmp_path / "a", cfg, progress=False, on_step=clock.step)

    clock = StepClock()
    monkeypatch.setattr(trainer, "clock", clock)

    def kill(step, loss):
        clock.step(step, loss)
        if step == 7:  # in epoch 3, after the checkpoint of epoch 2 (60 s spent)
            raise Kill()

    with pytest.raises(Kill):
        train(records, None, tmp_path / "b", cfg, progress=False, on_step=kill)
    clock = StepClock(offset=86_400.0)  # resumed a day later
    monkeypatch.setattr(trainer, "clock", clock)
    resumed = train(records, None, tmp_path / "b", resume=True, progress=False,
                    on_step=clock.step)

    assert whole["epochs_run"] == 5 and whole["steps"] == 15  # the budget, to the step
    assert (resumed["epochs_run"], resumed["steps"]) == (whole["epochs_run"], whole["steps"])
    rows_a = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().split("\n")
              if x]
    rows_b = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().split("\n")
              if x]
    # the same learning rate at every epoch's end (the schedule), the same minutes
    assert [(r["step"], r["lr"], r["minutes"]) for r in rows_b] == \
        [(r["step"], r["lr"], r["minutes"]) for r in rows_a]
    assert rows_a[-1]["minutes"] == pytest.approx(2.5)
    a = load_file(str(tmp_path / "a" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_state_round_trips_through_a_checkpoint_dict():
    from gpner.training.state import TrainState

    state = TrainState(epoch=2, batch=1, step=7, total=30, best_f1=0.5, best_epoch=2,
                       history=[{"epoch": 1}], elapsed=61.5, loss_sum=1.25, loss_n=3)
    saved = state.to_dict() | {"param_groups": [], "checkpoint_version": 2}  # the checkpoint's
    assert TrainState.from_dict(saved) == state
    assert state.epoch_loss() == pytest.approx(1.25 / 3)
