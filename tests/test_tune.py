"""``gpner tune``: the space file, a whole study (run directories, best/, table, plots), the
pruner stopping a trial made to be worse, failed trials keeping the study alive, a killed tune
resuming without repeating finished trials, and two processes sharing one SQLite study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gpner.errors import ConfigError
from gpner.training.tuning import (
    RUNNING_TOO_LONG,
    TuneSettings,
    _retry_interrupted,
    read_space,
    tune,
)
from tests.helpers import TINY, tiny_config, tiny_data

optuna = pytest.importorskip("optuna")

BASE = [f"{k}={v}" for k, v in TINY.items()]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("tune-data")
    records = tiny_data(96, seed=5)
    for name, part in (("train", records[:72]), ("dev", records[72:])):
        (d / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    return d


def space(tmp_path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def settings(tmp_path, text: str, **kw) -> TuneSettings:
    return TuneSettings(space=read_space(space(tmp_path, text)), base=tiny_config(),
                        progress=False, **kw)


def states(study) -> list[str]:
    return [t.state.name for t in study.get_trials(deepcopy=False)]


@pytest.mark.parametrize("text, message", [
    ("lr: {low: 1, high: 2}\nbogus: 3\n", r"space.yaml: unknown setting\(s\) \['bogus'\]"),
    ("lr: {low: 2.0e-3, high: 1.0e-3}\n", r"space.yaml: lr: low 0.002 is above high 0.001"),
    ("lr: {low: 0, high: 1, log: true}\n", r"space.yaml: lr: a log range needs low > 0"),
    ("lstm_layers: {low: 1, high: 2.5}\n", r"lstm_layers is an integer setting, got 1..2.5"),
    ("head: {low: 1, high: 2}\n", r"head is a str setting: give choices"),
    ("lr: {low: 1, hi: 2}\n", r"lr: unknown field\(s\) \['hi'\]"),
    ("lr: {choices: []}\n", r"lr: choices must be a non-empty list"),
    ("epochs: 3\n", r"nothing to search"),
    ("- lr\n", r"a search space is a mapping"),
])
def test_bad_space_files_name_the_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        read_space(space(tmp_path, text))


def test_space_reads_ranges_choices_and_fixed_values(tmp_path):
    s = read_space(space(tmp_path, "lr: {low: 1e-3, high: 1e-2, log: true}\n"
                                   "lstm_layers: {low: 1, high: 3}\n"
                                   "head: {choices: [gp, egp]}\nepochs: 4\n"))
    assert [(p.name, p.kind, p.low, p.high, p.log) for p in s.params] == [
        ("lr", "float", 1e-3, 1e-2, True), ("lstm_layers", "int", 1, 3, False),
        ("head", "choice", None, None, False)]
    assert s.fixed == {"epochs": 4}


def test_a_study_writes_trials_best_table_and_plots(data, tmp_path):
    out = tmp_path / "study"
    res = subprocess.run(
        [sys.executable, "-m", "gpner.cli", "tune", "--train", data / "train.jsonl", "--dev",
         data / "dev.jsonl", "-o", out, "--space",
         space(tmp_path, "lr: {low: 5.0e-3, high: 3.0e-2, log: true}\n"
                         "head: {choices: [gp, egp]}\nepochs: 3\n"),
         "--trials", "3", "--no-progress", "--pruner", "none", *BASE],
        capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    table = json.loads((out / "trials.json").read_text())
    assert [r["state"] for r in table["trials"]] == ["complete"] * 3
    best = max(table["trials"], key=lambda r: r["dev_f1"])
    assert table["best"]["number"] == best["number"] and best["dev_f1"] > 0
    for r in table["trials"]:  # every trial an ordinary run with the trial's settings
        summary = json.loads((out / "trials" / f"{r['number']:03d}" / "summary.json")
                             .read_text())
        assert summary["best_dev_f1"] == r["dev_f1"]
        assert {k: summary["config"][k] for k in r["params"]} == r["params"]
    # best/ is a copy of the best trial's run: a model that evaluates to the trial's score
    ev = subprocess.run([sys.executable, "-m", "gpner.cli", "evaluate", out / "best",
                         data / "dev.jsonl", "--json", "--no-progress"], capture_output=True,
                        text=True)
    assert json.loads(ev.stdout)["f1"] == pytest.approx(best["dev_f1"])
    assert f"best: trial {best['number']}" in res.stderr
    for png in ("history.png", "importance.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "trials.md").read_text().splitlines()
    assert md[0].startswith("| trial | state | dev F1") and len(md) == 5
    assert md[2].startswith(f"| {best['number']} | complete | {best['dev_f1'] * 100:.2f}")
    # the same output again is refused: a study is there
    again = subprocess.run([sys.executable, "-m", "gpner.cli", "tune", "--train",
                            data / "train.jsonl", "--dev", data / "dev.jsonl", "-o", out,
                            "--space", tmp_path / "space.yaml", "--trials", "1"],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "E401" in again.stderr and "--resume" in again.stderr


def test_the_pruner_stops_a_trial_made_to_be_worse(data, tmp_path):
    """Two good trials, then one with lr=1e-7 (it learns nothing): the median pruner stops it
    at the first epoch it judges where it is below the median (epoch 3: at epochs 1-2 the
    untrained model's few lucky spans score 0.04 and the learning ones 0); a fourth good trial
    runs to the end."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, study_name="p", direction="maximize")
    for lr in (0.03, 0.03, 1e-7, 0.03):
        study.enqueue_trial({"lr": lr})
    s = settings(tmp_path, "lr: {choices: [0.03, 1.0e-7]}\nepochs: 4\n", trials=4,
                 storage=url, study="p", startup_trials=2, warmup_epochs=1)
    # (warmup_epochs=1: judged from epoch 2 on)
    out = tune(data / "train.jsonl", data / "dev.jsonl", tmp_path / "out", s)
    by = {r["number"]: r for r in out["trials"]}
    assert [by[n]["state"] for n in range(4)] == ["complete", "complete", "pruned", "complete"]
    assert by[2]["pruned_after_epoch"] == 3 and by[2]["epochs"] == 3
    assert by[3]["epochs"] == 4
    assert min(by[0]["dev_f1"], by[1]["dev_f1"]) > 0.2  # the good trials find entities
    # the pruned trial's directory is a finished run of three epochs
    summary = json.loads((tmp_path / "out" / "trials" / "002" / "summary.json").read_text())
    assert summary["epochs_run"] == 3
    assert out["pruned_minutes_saved"] is not None


def test_failed_trials_keep_the_study_alive(data, tmp_path, monkeypatch):
    """A setting out of range and a non-finite loss: both recorded as failed with the reason;
    the other trials run."""
    from gpner.training import trainer

    real = trainer.Trainer.objective

    def objective(self, outputs, batch):  # lr=0.02 trains on a NaN loss
        loss = real(self, outputs, batch)
        return loss * float("nan") if self.cfg.lr == 0.02 else loss

    monkeypatch.setattr(trainer.Trainer, "objective", objective)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, study_name="f", direction="maximize")
    for p in ({"lr": 0.03, "dropout": 1.5}, {"lr": 0.02, "dropout": 0.1},
              {"lr": 0.03, "dropout": 0.1}):
        study.enqueue_trial(p)
    s = settings(tmp_path, "lr: {choices: [0.03, 0.02]}\ndropout: {choices: [0.1, 1.5]}\n"
                 "epochs: 2\n", trials=3, storage=url, study="f", pruner="none")
    out = tune(data / "train.jsonl", data / "dev.jsonl", tmp_path / "out", s)
    rows = sorted(out["trials"], key=lambda r: r["number"])
    assert [r["state"] for r in rows] == ["fail", "fail", "complete"]
    assert "dropout=1.5 is out of range" in rows[0]["error"]
    assert "non-finite loss: 10 of 10 steps skipped" in rows[1]["error"]
    assert out["best"]["number"] == 2
    assert "dropout=1.5" in (tmp_path / "out" / "trials.md").read_text()


def _tune_cmd(data, out, space_path, *extra):
    return [sys.executable, "-m", "gpner.cli", "tune", "--train", str(data / "train.jsonl"),
            "--dev", str(data / "dev.jsonl"), "-o", str(out), "--space", str(space_path),
            "--no-progress", "--pruner", "none", *extra, *BASE]


def _wait(pred, timeout=120.0):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_a_killed_tune_resumes_without_repeating_finished_trials(data, tmp_path):
    out = tmp_path / "study"
    sp = space(tmp_path, "lr: {low: 5.0e-3, high: 3.0e-2, log: true}\nepochs: 5\n")
    proc = subprocess.Popen(_tune_cmd(data, out, sp, "--trials", "3"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"sqlite:///{out / 'study.db'}"

    def two_done_one_running():
        try:
            study = optuna.load_study(study_name="gpner-tune", storage=url)
            st = states(study)
        except Exception:
            return False
        # the running trial must hold its sampled settings: a kill between Optuna creating
        # the trial and the first suggest leaves a trial with no params (CI saw it once)
        running = [t for t in study.trials if t.state.name == "RUNNING"]
        return (st.count("COMPLETE") == 2 and len(running) == 1
                and bool(running[0].params))

    try:
        _wait(two_done_one_running)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {t.number: (t.params, t.value, t.datetime_complete)
              for t in optuna.load_study(study_name="gpner-tune", storage=url).trials
              if t.state.name == "COMPLETE"}
    res = subprocess.run(_tune_cmd(data, out, sp, "--trials", "3", "--resume"),
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    trials = optuna.load_study(study_name="gpner-tune", storage=url).trials
    # finished trials kept as they were, not run again
    assert {t.number: (t.params, t.value, t.datetime_complete) for t in trials
            if t.number in before} == before
    interrupted = [t for t in trials if t.state.name == "FAIL"]
    assert len(interrupted) == 1 and interrupted[0].user_attrs["error"] == RUNNING_TOO_LONG
    retry = [t for t in trials if t.user_attrs.get("retry_of") == interrupted[0].number]
    assert len(retry) == 1 and retry[0].params == interrupted[0].params
    assert retry[0].state.name == "COMPLETE"
    assert [t.state.name for t in trials].count("COMPLETE") == 3  # the budget: 3 trials
    assert "trial 2 was interrupted" in res.stderr


def test_two_processes_share_one_sqlite_study(data, tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    sp = space(tmp_path, "lr: {low: 5.0e-3, high: 3.0e-2, log: true}\nepochs: 2\n")
    procs = [subprocess.Popen(_tune_cmd(data, tmp_path / f"worker{i}", sp, "--trials", "6",
                                        "--storage", url, "--study", "shared", "--seed",
                                        str(i)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    trials = optuna.load_study(study_name="shared", storage=url).trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    # 6 finished trials, and at most one more that the other worker was running at the end
    assert 6 <= len(trials) <= 7 and all(t.state.name == "COMPLETE" for t in trials)
    workers = {t.user_attrs["run_dir"].split(os.sep)[-3] for t in trials}
    assert workers == {"worker0", "worker1"}  # both worked on the one study
    for t in trials:
        assert os.path.isdir(os.path.join(t.user_attrs["run_dir"], "model"))


def test_the_time_budget_caps_each_trial(data, tmp_path):
    with pytest.raises(ConfigError, match="give a budget"):
        tune(data / "train.jsonl", data / "dev.jsonl", tmp_path / "o",
             settings(tmp_path, "lr: {choices: [0.01]}\n"))
    s = settings(tmp_path, "lr: {choices: [0.01]}\nmax_minutes: 100\nepochs: 1\n",
                 minutes=1.5, trials=1)
    out = tune(data / "train.jsonl", data / "dev.jsonl", tmp_path / "o", s)
    summary = json.loads((tmp_path / "o" / "trials" / "000" / "summary.json").read_text())
    assert 1.0 < summary["config"]["max_minutes"] <= 1.5  # what was left, not the space's 100
    assert [r["state"] for r in out["trials"]] == ["complete"]


def test_a_trial_that_fits_one_epoch_says_so(data, tmp_path):
    s = settings(tmp_path, "lr: {choices: [0.01]}\nmax_minutes: 0.001\nepochs: 3\n", trials=1,
                 pruner="none")
    out = tune(data / "train.jsonl", data / "dev.jsonl", tmp_path / "o", s)
    row = out["trials"][0]
    assert (row["state"], row["epochs"]) == ("complete", 1)
    assert row["note"] == "only 1 epoch(s) fitted in max_minutes=0.001"
    assert "only 1 epoch(s) fitted" in (tmp_path / "o" / "trials.md").read_text()


def test_a_trial_killed_before_sampling_is_retried_afresh(tmp_path):
    # the state CI once caught: a RUNNING trial with no params (killed right after Optuna
    # created it); it is failed with the reason and retried, and the two ordinary
    # interrupted trials keep their settings
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    bare = study.ask()
    sampled = study.ask()
    sampled.suggest_float("lr", 1e-3, 1e-1, log=True)
    _retry_interrupted(study)
    trials = study.get_trials()
    assert [t.state.name for t in trials[:2]] == ["FAIL", "FAIL"]
    assert {t.user_attrs["error"] for t in trials[:2]} == {RUNNING_TOO_LONG}
    # a queued trial holds the settings it will be given as Optuna's fixed params
    queued = {t.user_attrs["retry_of"]: t.system_attrs["fixed_params"] for t in trials[2:]}
    assert queued == {bare.number: {}, sampled.number: {"lr": sampled.params["lr"]}}
