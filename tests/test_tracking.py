"""Experiment tracking (report_to=tensorboard,mlflow), checked against the real things: the event
files read back with TensorBoard's own reader, MLflow's local store and a real ``mlflow server``,
the pyfunc model loaded in a fresh process; a resumed run's logs have no gap and no duplicate;
a dead tracking server is one warning, never a failed run."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gpner.training.trainer import train
from tests.helpers import tiny_config, tiny_data

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

ROOT = Path(__file__).resolve().parents[1]


def scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the run's TensorBoard events, read by tensorboard's EventAccumulator
    (which applies the purge a resumed run's writer records)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def client(run: Path, uri: str | None = None):
    from mlflow.tracking import MlflowClient

    from gpner.training.tracking import local_store

    uri = uri or local_store(run)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def history(c, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in c.get_metric_history(run_id, key))


def expected_epoch_values(run: Path) -> dict[str, list[tuple[int, float]]]:
    """What each epoch-level metric must hold: metrics.jsonl, by the step it was logged at."""
    out: dict[str, list[tuple[int, float]]] = {}
    for r in rows(run):
        values = {"epoch/loss": r["loss"], "epoch/lr": r["lr"], "epoch/epoch": r["epoch"],
                  "epoch/examples_per_s": r["examples_per_s"],
                  **{f"dev/{k}": v for k, v in r["dev"].items()},
                  **{f"dev_label/{lab}/{k}": v for lab, d in r["dev_labels"].items()
                     for k, v in d.items()}}
        for k, v in values.items():
            out.setdefault(k, []).append((r["step"], v))
    return out


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One run tracked by both, with every step's loss recorded by on_step."""
    path = tmp_path_factory.mktemp("tracked") / "run"
    records = tiny_data(64, seed=3)
    losses = {}
    train(records[:48], records[48:], path,
          tiny_config(epochs=3, report_to="tensorboard,mlflow", log_every=1),
          progress=False, on_step=lambda step, loss: losses.__setitem__(step, loss))
    return path, losses


def test_tensorboard_holds_the_runs_metrics(tracked):
    run, losses = tracked
    got = scalars(run)
    for key, want in expected_epoch_values(run).items():
        assert [s for s, _ in got[key]] == [s for s, _ in want], key
        assert [v for _, v in got[key]] == pytest.approx([v for _, v in want], rel=1e-6), key
    assert len(expected_epoch_values(run)) >= 12  # per-label dev scores are there too
    assert got["train/loss"] == [(s, pytest.approx(v, rel=1e-6)) for s, v in sorted(losses.items())]
    assert [s for s, _ in got["train/lr"]] == sorted(losses)


def test_mlflow_run_holds_params_metrics_tags_artifacts_and_a_registered_model(tracked):
    run, losses = tracked
    state = json.loads((run / "tracking.json").read_text())["mlflow"]
    c = client(run)
    r = c.get_run(state["run_id"])
    cfg = json.loads(json.dumps(__import__("yaml").safe_load((run / "config.yaml").read_text())))
    assert r.data.params == {k: str(v) for k, v in cfg.items()}
    assert r.info.status == "FINISHED"
    assert r.data.tags["gpner.run_dir"] == str(run.resolve())
    for key, want in expected_epoch_values(run).items():
        assert history(c, state["run_id"], key) == [(s, pytest.approx(v, rel=1e-6))
                                                    for s, v in want], key
    assert history(c, state["run_id"], "train/loss") == [
        (s, pytest.approx(v, rel=1e-6)) for s, v in sorted(losses.items())]
    artifacts = {a.path for a in c.list_artifacts(state["run_id"])}
    assert {"summary.json", "metrics.jsonl", "config.yaml", "data.json"} <= artifacts
    versions = c.search_model_versions("name='gpner'")
    assert [int(v.version) for v in versions] == [state["registered_version"]] == [1]


def test_pyfunc_model_in_a_fresh_process_predicts_what_gpner_predict_does(tracked, tmp_path):
    run, _ = tracked
    texts = [r["text"] for r in tiny_data(6, seed=9)]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "gpner.cli", "predict", str(run / "model"),
                          str(tmp_path / "in.txt"), "-o", str(tmp_path / "out.jsonl"),
                          "--no-progress"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    want = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sum(len(w["entities"]) for w in want) > 0  # the comparison means something
    script = textwrap.dedent(f"""
        import json, sys, mlflow
        mlflow.set_tracking_uri({json.dumps(client(run).tracking_uri)})
        mlflow.set_registry_uri({json.dumps(client(run).tracking_uri)})
        model = mlflow.pyfunc.load_model("models:/gpner/1")
        print(json.dumps(model.predict(json.loads(sys.argv[1]))))
    """)
    res = subprocess.run([sys.executable, "-c", script, json.dumps(texts)], capture_output=True,
                         text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.splitlines()[-1])
    assert [g["entities"] for g in got] == [w["entities"] for w in want]


KILLED = """
import os, signal, sys
sys.path.insert(0, {root!r})
from gpner.training.trainer import train
from tests.helpers import tiny_config
def kill(step, loss):
    if step == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)
train({train!r}, {dev!r}, {out!r}, tiny_config(epochs=4, report_to="tensorboard,mlflow",
      log_every=1), progress=False, on_step=kill)
"""


def test_a_killed_and_resumed_run_logs_every_step_once(tmp_path):
    """SIGKILL in epoch 3 (3 steps an epoch, checkpoint at step 6, killed at step 8), then
    resume: TensorBoard and MLflow hold each step once, with an uninterrupted run's values."""
    records = tiny_data(64, seed=3)
    data = {}
    for part, recs in (("train", records[:48]), ("dev", records[48:])):
        data[part] = tmp_path / f"{part}.jsonl"
        data[part].write_text("".join(json.dumps(r) + "\n" for r in recs))
    whole = {}
    cfg = tiny_config(epochs=4, report_to="tensorboard,mlflow", log_every=1)
    train(data["train"], data["dev"], tmp_path / "whole", cfg, progress=False,
          on_step=lambda s, v: whole.__setitem__(s, v))
    run = tmp_path / "run"
    res = subprocess.run([sys.executable, "-c", KILLED.format(
        root=str(ROOT), kill_at=8, out=str(run), train=str(data["train"]),
        dev=str(data["dev"]))], capture_output=True, text=True)
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    before = json.loads((run / "tracking.json").read_text())["mlflow"]["run_id"]
    assert len(rows(run)) == 2  # two epochs checkpointed; steps 7-8 were logged, then lost
    train(None, None, run, resume=True, progress=False)
    after = json.loads((run / "tracking.json").read_text())["mlflow"]
    assert after["run_id"] == before  # the same MLflow run continued
    steps = list(range(1, 13))
    tb = scalars(run)
    assert [s for s, _ in tb["train/loss"]] == steps  # no gap, no duplicate
    assert [v for _, v in tb["train/loss"]] == pytest.approx([whole[s] for s in steps], rel=1e-5)
    c = client(run)
    ml = history(c, before, "train/loss")
    assert [s for s, _ in ml] == steps
    assert [v for _, v in ml] == pytest.approx([whole[s] for s in steps], rel=1e-5)
    for key, want in expected_epoch_values(run).items():
        assert [s for s, _ in history(c, before, key)] == [s for s, _ in want] == [3, 6, 9, 12]
        assert [s for s, _ in tb[key]] == [3, 6, 9, 12]
    assert c.get_run(before).info.status == "FINISHED"
    assert len(c.search_runs([after["experiment_id"]])) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real ``mlflow server`` on 127.0.0.1 with a SQLite store and a temporary artifact root."""
    port = free_port()
    mlflow_exe = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [str(mlflow_exe), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--default-artifact-root", str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "w"),
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("mlflow server did not start:\n"
                            + (tmp_path / "server.log").read_text()[-3000:])
            time.sleep(0.5)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def test_mlflow_tracking_server_gets_the_run(tmp_path, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "server-test")
    records = tiny_data(48, seed=4)
    run = tmp_path / "run"
    train(records[:36], records[36:], run, tiny_config(epochs=2, report_to="mlflow"),
          progress=False)
    state = json.loads((run / "tracking.json").read_text())["mlflow"]
    assert state["uri"] == mlflow_server
    assert not (run / "mlflow").exists()  # nothing in the local default store
    c = client(run, mlflow_server)
    for key, want in expected_epoch_values(run).items():
        assert history(c, state["run_id"], key) == [(s, pytest.approx(v, rel=1e-6))
                                                    for s, v in want], key
    assert c.get_experiment(state["experiment_id"]).name == "server-test"
    assert c.get_registered_model("gpner").latest_versions[0].run_id == state["run_id"]


def test_a_dead_tracking_server_is_one_warning_and_the_run_finishes(tmp_path, monkeypatch,
                                                                     caplog):
    port = free_port()  # nothing listens there: every request is refused
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    records = tiny_data(48, seed=4)
    with caplog.at_level(logging.WARNING, logger="gpner"):
        summary = train(records[:36], records[36:], tmp_path / "run",
                        tiny_config(epochs=3, report_to="mlflow,tensorboard", log_every=1),
                        progress=False)
    failed = [r.getMessage() for r in caplog.records if "mlflow failed" in r.getMessage()]
    assert len(failed) == 1 and "training goes on without it" in failed[0]
    assert summary["epochs_run"] == 3 and (tmp_path / "run" / "model").is_dir()
    assert [s for s, _ in scalars(tmp_path / "run")["train/loss"]] == list(range(1, 10))


def test_a_hanging_tracker_does_not_slow_the_steps(tmp_path, monkeypatch):
    """A tracker whose every call takes 0.3 s: the loop's steps do not wait for it."""
    from gpner.training import tracking

    calls = []

    class Slow:
        name = "slow"

        def __init__(self, *a):
            pass

        def start(self, *a):
            pass

        def log(self, step, values):
            time.sleep(0.3)
            calls.append(step)

        def flush(self):
            pass

        def finish(self, *a):
            pass

    monkeypatch.setattr(tracking, "TensorBoard", Slow)
    stamps = []
    records = tiny_data(64, seed=4)
    train(records[:48], None, tmp_path / "run",
          tiny_config(epochs=2, report_to="tensorboard", log_every=1), progress=False,
          on_step=lambda s, v: stamps.append(time.monotonic()))
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    # 6 steps logged at 0.3 s each would put >= 0.3 s between steps if the loop waited
    assert max(gaps[:2]) < 0.25, gaps
    assert sorted(calls) == [1, 2, 3, 3, 4, 5, 6, 6]  # and every value was still logged


def test_report_to_names_known_trackers_and_missing_packages_are_refused(monkeypatch,
                                                                          tmp_path):
    from gpner.errors import ConfigError, MissingDependency

    with pytest.raises(ConfigError, match=r"report_to: unknown tracker\(s\) \['wandb'\]"):
        tiny_config(report_to="tensorboard,wandb")
    assert tiny_config(report_to="none").report_to == "none"
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    records = tiny_data(24, seed=4)
    with pytest.raises(MissingDependency, match=r"pip install 'gpner\[mlflow\]'"):
        train(records, None, tmp_path / "run", tiny_config(epochs=1, report_to="mlflow"),
              progress=False)


@pytest.mark.slow
def test_mlflow_models_serve_answers_with_gpner_records(tracked, tmp_path):
    """``mlflow models serve`` (the local environment) serves the registered model; slow: the
    scoring server takes half a minute to start."""
    import urllib.request

    run, _ = tracked
    port = free_port()
    uri = client(run).tracking_uri
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "models", "serve",
                             "-m", "models:/gpner/1", "--env-manager", "local", "-h",
                             "127.0.0.1", "-p", str(port)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for(lambda: urllib.request.urlopen(url + "/ping", timeout=2), proc)
        texts = [r["text"] for r in tiny_data(4, seed=9)]
        req = urllib.request.Request(url + "/invocations", json.dumps({"inputs": texts}).encode(),
                                     {"Content-Type": "application/json"})
        got = json.loads(urllib.request.urlopen(req, timeout=60).read())["predictions"]
        from gpner import load

        want = load(run / "model").predict(texts)
        assert [g["entities"] for g in got] == [w["entities"] for w in want]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _wait_for(probe, proc, timeout=180.0):
    end = time.monotonic() + timeout
    while True:
        try:
            return probe()
        except OSError:
            if proc.poll() is not None or time.monotonic() > end:
                pytest.fail("the server did not start")
            time.sleep(0.5)
