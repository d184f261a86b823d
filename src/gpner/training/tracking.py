"""Experiment tracking on the tools users already run: TensorBoard and MLflow (``report_to``).

The trainer hands :class:`Tracking` the values it already computes (a step's loss and learning
rate every ``log_every`` steps; each epoch's row of ``metrics.jsonl`` with the dev scores per
label); each tracker writes them on its own background thread, so a slow or dead tracking
server never slows training. A tracker's first failure is one warning, then it is switched
off; training never fails because of it.

The step axis is the optimizer step. A resumed run continues the same axis: TensorBoard purges
the events past the checkpoint's step (``purge_step``), MLflow continues the same run (its id
is kept in ``RUN/tracking.json``) and skips the steps it already holds, so the history has no
gap and no duplicate. Only the main process tracks (the trainer builds no tracker elsewhere).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

from gpner.atomic import atomic_write_text
from gpner.errors import ConfigError, MissingDependency

log = logging.getLogger("gpner")

TRACKERS = ("tensorboard", "mlflow")


def parse_report_to(value: str) -> list[str]:
    """``"tensorboard,mlflow"`` -> ``["tensorboard", "mlflow"]``; ``""``/``"none"`` -> ``[]``."""
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    names = [n for n in names if n != "none"]
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ConfigError(f"report_to: unknown tracker(s) {unknown}; known: "
                          f"{', '.join(TRACKERS)} (comma-separated), or none", code="E303")
    return list(dict.fromkeys(names))


def epoch_values(row: dict[str, Any]) -> dict[str, float]:
    """What an epoch logs: its ``metrics.jsonl`` row, every number in it under a name."""
    out = {"epoch/loss": row["loss"], "epoch/lr": row["lr"], "epoch/epoch": row["epoch"],
           "epoch/minutes": row["minutes"]}
    if "examples_per_s" in row:
        out["epoch/examples_per_s"] = row["examples_per_s"]
    for k, v in (row.get("dev") or {}).items():
        if isinstance(v, (int, float)):
            out[f"dev/{k}"] = v
    for label, scores in (row.get("dev_labels") or {}).items():
        for k in ("precision", "recall", "f1"):
            out[f"dev_label/{safe_key(label)}/{k}"] = scores[k]
    return out


def safe_key(name: str) -> str:
    """A label as a metric-name part: MLflow allows letters, digits, ``_-. /:``."""
    return re.sub(r"[^\w\-. :]", "_", name)


class _Worker:
    """One tracker's calls, run in order on a daemon thread. The first exception is logged once
    as a warning and switches the tracker off; later calls are counted and dropped."""

    def __init__(self, name: str):
        self.name = name
        self.failed: str | None = None
        self.dropped = 0
        self.calls: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name=f"gpner-{name}", daemon=True)
        self.thread.start()

    def submit(self, call: Callable[[], None]) -> None:
        if self.failed:
            self.dropped += 1
        else:
            self.calls.put(call)

    def _loop(self) -> None:
        while (call := self.calls.get()) is not None:
            try:
                if self.failed:
                    self.dropped += 1
                else:
                    call()
            except Exception as exc:  # a tracker never stops training
                self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                log.warning("tracking: %s failed (%s); training goes on without it",
                            self.name, self.failed)
            finally:
                self.calls.task_done()

    def drain(self, timeout: float) -> bool:
        """Wait until every submitted call ran (or ``timeout`` seconds); True when done. A
        failed tracker drops its calls at once."""
        end = time.monotonic() + timeout
        while self.calls.unfinished_tasks:
            if time.monotonic() > end:
                return False
            time.sleep(0.02)
        return True

    def close(self, timeout: float) -> None:
        if not self.drain(timeout):
            log.warning("tracking: %s had not finished after %.0f s; its last values may be "
                        "missing", self.name, timeout)
        self.calls.put(None)
        if self.dropped:
            log.warning("tracking: %s dropped %d logging calls after its failure", self.name,
                        self.dropped)


class Tracking:
    """The trackers of one run (none when ``report_to`` is empty): ``step``, ``epoch``,
    ``finish``. Built by :meth:`open` in the main process only."""

    def __init__(self, backends: list[Any]):
        self.backends = backends
        self.workers = [_Worker(b.name) for b in backends]

    @classmethod
    def open(cls, config: dict[str, Any], run_path: Path, data_paths: dict[str, str],
             resume_step: int | None) -> "Tracking":
        """Trackers for the settings ``config`` (its ``report_to``); a missing package is an
        error now, before training. ``resume_step``: the checkpoint's step, None for a new run.
        """
        backends: list[Any] = []
        for name in parse_report_to(config.get("report_to") or ""):
            backends.append(TensorBoard(run_path) if name == "tensorboard"
                            else MLflow(run_path, config.get("register_model") or None))
        tracking = cls(backends)
        for backend, worker in zip(backends, tracking.workers, strict=True):
            worker.submit(partial(backend.start, config, data_paths, resume_step))
        return tracking

    def step(self, step: int, values: dict[str, float]) -> None:
        for backend, worker in zip(self.backends, self.workers, strict=True):
            worker.submit(partial(backend.log, step, values))

    def epoch(self, step: int, row: dict[str, Any]) -> None:
        """An epoch's values at ``step``; waits until a working tracker has written them (10 s at
        most), so that the checkpoint taken next is not ahead of what the trackers hold (a run
        resumed from it would leave a gap). A failed tracker is not waited for."""
        values = epoch_values(row)
        for backend, worker in zip(self.backends, self.workers, strict=True):
            worker.submit(partial(backend.log, step, values))
            worker.submit(backend.flush)
        for worker in self.workers:
            if not worker.drain(timeout=10):
                log.warning("tracking: %s is slow (an epoch's values not written in 10 s); "
                            "training goes on", worker.name)

    def finish(self, summary: dict[str, Any], model_dir: Path | None,
               timeout: float = 300.0) -> None:
        for backend, worker in zip(self.backends, self.workers, strict=True):
            worker.submit(partial(backend.finish, summary, model_dir))
        for worker in self.workers:
            worker.close(timeout)

    @property
    def failures(self) -> dict[str, str]:
        return {w.name: w.failed for w in self.workers if w.failed}


class TensorBoard:
    """Scalars in ``RUN/tensorboard`` through torch's ``SummaryWriter``."""

    name = "tensorboard"

    def __init__(self, run_path: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingDependency("report_to=tensorboard needs the 'tensorboard' extra: "
                                    "pip install 'gpner[tensorboard]'") from None
        self._writer_cls = SummaryWriter
        self.path = run_path / "tensorboard"
        self.writer: Any = None

    def start(self, config: dict[str, Any], data_paths: dict[str, str],
              resume_step: int | None) -> None:
        # a resumed run drops the events a killed process wrote after its last checkpoint
        purge = resume_step + 1 if resume_step is not None else None
        self.writer = self._writer_cls(str(self.path), purge_step=purge)
        if resume_step is None:
            self.writer.add_text("config", "\n".join(f"    {k}: {v}"
                                                     for k, v in config.items()), 0)

    def log(self, step: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def flush(self) -> None:
        self.writer.flush()

    def finish(self, summary: dict[str, Any], model_dir: Path | None) -> None:
        self.writer.close()


class MLflow:
    """A run in the MLflow tracking store of ``MLFLOW_TRACKING_URI`` (default: a SQLite store
    under ``RUN/mlflow``): settings as params, values by step, the data paths as tags, the
    summary and metrics as artifacts, and at the end the model as a registered pyfunc model
    (:mod:`gpner.integrations.mlflow_model`). The run's id is kept in ``RUN/tracking.json``."""

    name = "mlflow"

    def __init__(self, run_path: Path, register: str | None = "gpner"):
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise MissingDependency("report_to=mlflow needs the 'mlflow' extra: "
                                    "pip install 'gpner[mlflow]'") from None
        self.run_path, self.register = run_path, register
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or local_store(run_path)
        self.client: Any = None
        self.run_id: str | None = None
        self.logged: dict[str, int] = {}  # key -> last step the store holds (after a resume)
        # a dead server fails the first call within seconds instead of minutes of retries;
        # a user's own settings win
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    def start(self, config: dict[str, Any], data_paths: dict[str, str],
              resume_step: int | None) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        if self.uri == local_store(self.run_path):
            (self.run_path / "mlflow").mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        saved = _read_state(self.run_path).get("mlflow", {})
        if resume_step is not None and saved.get("run_id") and saved.get("uri") == self.uri:
            self.run_id = saved["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            held = self.client.get_run(self.run_id).data.metrics  # key -> latest value
            self.logged = {k: max(p.step for p in self.client.get_metric_history(self.run_id, k))
                           for k in held}
            return
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "gpner"
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            exp_id = found.experiment_id
        else:
            where = (str(self.run_path.resolve() / "mlflow" / "artifacts")
                     if self.uri == local_store(self.run_path) else None)
            exp_id = self.client.create_experiment(experiment, artifact_location=where)
        tags = {"gpner.run_dir": str(self.run_path.resolve()),
                **{f"gpner.data.{k}": v for k, v in data_paths.items()}}
        run = self.client.create_run(exp_id, run_name=self.run_path.name, tags=tags)
        self.run_id = run.info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in config.items()]
        for i in range(0, len(params), 100):  # MLflow takes 100 params per batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        state = _read_state(self.run_path)
        state["mlflow"] = {"uri": self.uri, "run_id": self.run_id, "experiment_id": exp_id}
        atomic_write_text(self.run_path / "tracking.json", json.dumps(state, indent=2) + "\n")

    def log(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()
                   if step > self.logged.get(k, -1)]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def flush(self) -> None:
        pass  # every log call is already a request

    def finish(self, summary: dict[str, Any], model_dir: Path | None) -> None:
        assert self.run_id is not None
        for name in ("summary.json", "metrics.jsonl", "config.yaml", "data.json"):
            if (self.run_path / name).is_file():
                self.client.log_artifact(self.run_id, str(self.run_path / name))
        if model_dir is not None and (model_dir / "config.json").is_file():
            from gpner.integrations.mlflow_model import log_model

            version = log_model(self.uri, self.run_id, model_dir, self.register)
            state = _read_state(self.run_path)
            state.setdefault("mlflow", {}).update(version)
            atomic_write_text(self.run_path / "tracking.json",
                              json.dumps(state, indent=2) + "\n")
        self.client.set_terminated(self.run_id, status="FINISHED")


def local_store(run_path: Path) -> str:
    """The default MLflow store: a SQLite file under the run directory (it can also hold the
    model registry, which a plain file store cannot)."""
    return f"sqlite:///{(run_path / 'mlflow' / 'mlflow.db').resolve()}"


def _read_state(run_path: Path) -> dict[str, Any]:
    try:
        return json.loads((run_path / "tracking.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
