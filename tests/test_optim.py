"""The learning-rate schedule and its fit to a time budget."""

from __future__ import annotations

import pytest

from gpner.training.optim import fit_schedule, lr_factor
from gpner.training.state import TrainState
from tests.helpers import tiny_config


def test_lr_schedule():
    assert lr_factor(0, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(10, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(55, 100, 0.1) == pytest.approx(0.5)
    assert lr_factor(100, 100, 0.1) == 0.0
    assert lr_factor(0, 10, 0.0) == 1.0
    assert lr_factor(0, 100, 0.1, "constant") == pytest.approx(0.1)  # warm-up still applies
    assert lr_factor(55, 100, 0.1, "constant") == lr_factor(100, 100, 0.1, "constant") == 1.0


def test_max_minutes_fits_the_schedule():
    cfg = tiny_config(epochs=20, max_minutes=10)
    state = TrainState(epoch=2, step=200, total=2000, history=[])
    fit_schedule(state, cfg, per_epoch=100, elapsed=120.0)  # 1 min/epoch: 8 more fit
    assert state.total == 1000
    fit_schedule(state, cfg, per_epoch=100, elapsed=120.0)  # idempotent
    assert state.total == 1000
    fast = TrainState(epoch=2, step=200, total=2000, history=[])
    fit_schedule(fast, cfg, per_epoch=100, elapsed=6.0)  # everything fits: unchanged
    assert fast.total == 2000
    # a slow first epoch (2 min) then 0.5 min epochs: the estimate uses the later epochs
    # and the plan grows again, up to the cap of cfg.epochs
    slow = TrainState(epoch=1, step=100, total=2000, history=[{"minutes": 2.0}])
    fit_schedule(slow, cfg, per_epoch=100, elapsed=120.0)
    assert slow.total == 500  # 1 done + 4 more at 2 min each
    slow.epoch, slow.step = 3, 300
    slow.history = [{"minutes": m} for m in (2.0, 2.5, 3.0)]
    fit_schedule(slow, cfg, per_epoch=100, elapsed=180.0)
    assert slow.total == 1700  # 3 done + 14 more at 0.5 min each
    cfg_short = tiny_config(epochs=5, max_minutes=10)
    fit_schedule(slow, cfg_short, per_epoch=100, elapsed=180.0)
    assert slow.total == 500  # never past the epoch cap
