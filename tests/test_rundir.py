"""The run directory writer: one place for every write, silent on non-main ranks; the curve
is optional."""

from __future__ import annotations

import logging
import sys

from gpner.training.rundir import RunDir
from gpner.training.trainer import train
from tests.helpers import tiny_config, tiny_data

HISTORY = [{"epoch": 1, "loss": 2.0, "dev": {"f1": 0.5}}, {"epoch": 2, "loss": 1.0}]


def test_non_main_process_writes_nothing(tmp_path, monkeypatch):
    import gpner.training.trainer

    monkeypatch.setattr(gpner.training.trainer, "is_main_process", lambda: False)
    summary = train(tiny_data(16), tiny_data(4), tmp_path / "r", tiny_config(epochs=1),
                    progress=False)
    assert summary["epochs_run"] == 1 and not (tmp_path / "r").exists()


def test_history_and_curve(tmp_path):
    run = RunDir(tmp_path)
    run.write_history(HISTORY)
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 2
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_without_matplotlib_the_curve_is_skipped_with_a_note(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    run = RunDir(tmp_path)
    with caplog.at_level(logging.INFO, logger="gpner"):
        run.write_history(HISTORY)
        run.write_history(HISTORY)
    assert (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "curve.png").exists()
    notes = [r.message for r in caplog.records if "curve.png skipped" in r.message]
    assert notes == ["curve.png skipped: matplotlib is not installed (pip install 'gpner[plot]')"]
