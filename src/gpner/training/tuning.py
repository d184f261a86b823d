"""``gpner tune``: an Optuna study over training settings, every trial an ordinary run directory.

The search space is a YAML mapping of training settings (:func:`read_space`). Optuna's TPE
sampler proposes settings, each trial trains with them (:func:`gpner.training.trainer.train`),
reports its dev F1 after every epoch to a median pruner, and is stopped early when the pruner
says so. The study lives in an Optuna RDB storage: ``OUTPUT/study.db`` (SQLite) by default, so a
killed ``tune`` resumes with ``--resume``; a database URL lets several processes or machines
work on one study. A trial that fails (a setting out of range, a non-finite loss, any error) is
recorded as failed with its reason, and the study goes on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from gpner.atomic import atomic_write_text, staged_dir
from gpner.errors import ConfigError, MissingDependency, RunDirError
from gpner.training.config import TrainConfig, load_yaml

log = logging.getLogger("gpner")

STUDY = "gpner-tune"
RUNNING_TOO_LONG = "interrupted: its process ended before the trial did"


@dataclasses.dataclass
class Param:
    """One setting's search range: ``low``/``high`` (``log`` scale, ``step``) or ``choices``."""

    name: str
    kind: str  # float | int | choice
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    def suggest(self, trial: Any) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low or 0), int(self.high or 0),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low or 0.0), float(self.high or 0.0),
                                   step=self.step, log=self.log)


@dataclasses.dataclass
class Space:
    """The search space: ranges to search and settings fixed in every trial."""

    params: list[Param]
    fixed: dict[str, Any]


def read_space(path: str | Path) -> Space:
    """A space file: each key a training setting; a value that is a mapping with ``low`` and
    ``high`` (and ``log: true``, ``step``) is a range, one with ``choices`` a list to choose
    from, anything else a value fixed in every trial. Errors name the file and the key."""
    data = load_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: a search space is a mapping of training settings (key: "
                          "{low: .., high: ..} or {choices: [..]} or a fixed value)",
                          code="E304")
    types = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(k for k in data if k not in types)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {unknown}; known: "
                          f"{', '.join(sorted(types))}", code="E301")
    params, fixed = [], {}
    for key, spec in data.items():
        if isinstance(spec, dict):
            params.append(_param(path, key, spec, types[key]))
        else:
            fixed[key] = spec
    if not params:
        raise ConfigError(f"{path}: nothing to search: give at least one setting a range "
                          "({low: .., high: ..}) or choices ({choices: [..]})", code="E304")
    return Space(params, fixed)


def _param(path: str | Path, key: str, spec: dict, kind: str) -> Param:
    where = f"{path}: {key}"
    extra = sorted(set(spec) - {"low", "high", "log", "step", "choices"})
    if extra:
        raise ConfigError(f"{where}: unknown field(s) {extra}; a range has low, high, log, "
                          "step; a choice has choices", code="E304")
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices or set(spec) != {"choices"}:
            raise ConfigError(f"{where}: choices must be a non-empty list, alone",
                              code="E304")
        return Param(key, "choice", choices=choices)
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}: a range needs low and high (or give choices)", code="E304")
    if not (kind.startswith("int") or kind.startswith("float")):
        raise ConfigError(f"{where}: {key} is a {kind} setting: give choices, not a range",
                          code="E304")
    low, high = _number(where, "low", spec["low"]), _number(where, "high", spec["high"])
    step = _number(where, "step", spec["step"]) if spec.get("step") is not None else None
    is_log = bool(spec.get("log", False))
    if low > high:
        raise ConfigError(f"{where}: low {low:g} is above high {high:g}", code="E303")
    if is_log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low:g}", code="E303")
    if is_log and step is not None:
        raise ConfigError(f"{where}: a range has log or step, not both", code="E304")
    if kind.startswith("int"):
        if not (float(low).is_integer() and float(high).is_integer()):
            raise ConfigError(f"{where}: {key} is an integer setting, got {low:g}..{high:g}",
                              code="E302")
        return Param(key, "int", low, high, is_log, step)
    return Param(key, "float", low, high, is_log, step)


def _number(where: str, field: str, value: Any) -> float:
    try:  # YAML 1.1 reads 1e-3 (no dot) as a string
        out = float(value)
        if isinstance(value, bool) or not math.isfinite(out):
            raise ValueError
        return out
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {field}={value!r} is not a finite number",
                          code="E302") from None


class TrialFailed(Exception):
    """A trial that ran but cannot be scored (a non-finite loss, no dev score)."""


@dataclasses.dataclass
class TuneSettings:
    """What ``gpner tune`` was asked for (see ``gpner tune --help``)."""

    space: Space
    base: TrainConfig
    trials: int | None = None  # finished trials (complete, pruned or failed) of the study
    minutes: float | None = None  # the study's time budget
    storage: str | None = None  # an Optuna storage URL; None: OUTPUT/study.db
    study: str = STUDY
    resume: bool = False
    seed: int = 0
    pruner: str = "median"  # median | none
    startup_trials: int = 2  # trials that finish before the pruner judges any
    warmup_epochs: int = 1  # epochs of a trial before the pruner judges it
    progress: bool = True
    encoding: str | None = None


def tune(train_data: str | Path, dev_data: str | Path, output: str | Path,
         settings: TuneSettings) -> dict:
    """Run (or resume, or join) the study; returns what ``OUTPUT/trials.json`` holds."""
    try:
        import optuna
    except ImportError:
        raise MissingDependency("gpner tune needs the 'tune' extra: pip install "
                                "'gpner[tune]'") from None
    if settings.trials is None and settings.minutes is None:
        raise ConfigError("give a budget: --trials N, --minutes M, or both", code="E305")
    output = Path(output)
    storage_url = _storage_url(output, settings)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # several workers starting on one new database race to create its tables and the study:
    # the loser's error is retried (it then finds what the winner made)
    for attempt in range(6):
        try:
            study = _open_study(optuna, storage_url, settings)
            break
        except Exception as exc:  # sqlalchemy's IntegrityError/OperationalError, Optuna's
            if attempt == 5:
                raise
            log.info("tune: opening the study failed (%s); retrying", type(exc).__name__)
            time.sleep(0.5 + random.random())
    if settings.storage is None and settings.resume:
        _retry_interrupted(study)
    spent = _minutes_spent(study)
    deadline = (time.monotonic() + (settings.minutes - spent) * 60
                if settings.minutes is not None else None)
    objective = _Objective(settings, Path(train_data), Path(dev_data), output, deadline)
    if deadline is None or deadline - time.monotonic() > 60:
        study.optimize(objective, catch=(Exception,), gc_after_trial=True,
                       callbacks=[_Stop(settings.trials, deadline)])
    else:
        log.info("tune: the study's budget of %.1f min is spent", settings.minutes)
    return report(study, output)


def _open_study(optuna: Any, storage_url: str, settings: TuneSettings) -> Any:
    import warnings

    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # in a shared database, a worker that died leaves its trial running: after the grace
        # period without a heartbeat it is failed and run once more by another worker
        storage = optuna.storages.RDBStorage(
            storage_url, engine_kwargs={"connect_args": {"timeout": 120}}
            if storage_url.startswith("sqlite") else None,
            heartbeat_interval=30, grace_period=180,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=1))
    sampler = optuna.samplers.TPESampler(seed=settings.seed)
    # steps are epochs counted from 1: a trial is first judged after warmup_epochs + 1
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials,
                                          n_warmup_steps=settings.warmup_epochs + 1)
              if settings.pruner == "median" else optuna.pruners.NopPruner())
    return optuna.create_study(storage=storage, study_name=settings.study, sampler=sampler,
                               pruner=pruner, direction="maximize", load_if_exists=True)


def _storage_url(output: Path, settings: TuneSettings) -> str:
    if settings.storage:
        return settings.storage
    db = output / "study.db"
    if db.exists() and not settings.resume:
        raise RunDirError(f"{output} holds a study (study.db): continue it with --resume, or "
                          "choose another --output", code="E401")
    if settings.resume and not db.exists():
        raise RunDirError(f"{output}: no study to resume (study.db is missing)", code="E402")
    output.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db.resolve()}"


def _retry_interrupted(study: Any) -> None:
    """Trials a killed ``tune`` left running are marked failed and queued again with the same
    settings (only for the study's own file: in a shared database another worker may be running
    them, and Optuna's heartbeat decides)."""
    from optuna.trial import TrialState

    storage = study._storage
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(t._trial_id, "error", RUNNING_TOO_LONG)
        storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
        # killed between Optuna creating the trial and its first suggest: nothing sampled yet,
        # so the retry samples afresh (it still counts as the same trial's retry)
        log.info("tune: trial %d was interrupted; it runs again %s", t.number,
                 "with the same settings" if t.params else "(it had not sampled settings yet)")


def _minutes_spent(study: Any) -> float:
    """Minutes the study's finished trials took (the budget spent before this process)."""
    total = 0.0
    for t in study.get_trials(deepcopy=False):
        if t.datetime_start and t.datetime_complete:
            total += (t.datetime_complete - t.datetime_start).total_seconds() / 60
    return total


def _counted(study: Any) -> int:
    """Trials that count against ``--trials``: finished, not interrupted."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(1 for t in study.get_trials(deepcopy=False, states=done)
               if t.user_attrs.get("error") != RUNNING_TOO_LONG)


class _Stop:
    """Stops the study once ``trials`` have finished (over every worker) or under a minute of
    the budget is left."""

    def __init__(self, trials: int | None, deadline: float | None):
        self.trials, self.deadline = trials, deadline

    def __call__(self, study: Any, trial: Any) -> None:
        if self.trials is not None and _counted(study) >= self.trials:
            study.stop()
        if self.deadline is not None and self.deadline - time.monotonic() < 60:
            study.stop()


class _Objective:
    """One trial: its settings, a run directory ``OUTPUT/trials/NNN``, dev F1 per epoch to the
    pruner; returns the trial's best dev F1."""

    def __init__(self, settings: TuneSettings, train_data: Path, dev_data: Path, output: Path,
                 deadline: float | None):
        self.s, self.train_data, self.dev_data = settings, train_data, dev_data
        self.output, self.deadline = output, deadline

    def __call__(self, trial: Any) -> float:
        import optuna

        from gpner.training.trainer import train

        started = time.monotonic()
        run_dir = self.output / "trials" / f"{trial.number:03d}"
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        trial.set_user_attr("host", socket.gethostname())
        try:
            params = {p.name: p.suggest(trial) for p in self.s.space.params}
            cfg = self.s.base.update({**self.s.space.fixed, **params}, f"trial {trial.number}")
            if self.deadline is not None:  # the trial fits in what is left of the budget
                left = max(0.5, (self.deadline - time.monotonic()) / 60)
                cfg = dataclasses.replace(cfg, max_minutes=min(cfg.max_minutes or left, left))
            pruned: list[int] = []

            def on_epoch(row: dict) -> bool:
                f1 = (row.get("dev") or {}).get("f1")
                if f1 is None or not math.isfinite(f1):
                    return False
                trial.report(f1, row["epoch"])
                if trial.should_prune():
                    pruned.append(row["epoch"])
                    return True
                return False

            summary = train(self.train_data, self.dev_data, run_dir, cfg,
                            progress=self.s.progress, overwrite=True, encoding=self.s.encoding,
                            on_epoch=on_epoch)
            value = _value(summary)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("error", reason[:2000])
            trial.set_user_attr("minutes", round((time.monotonic() - started) / 60, 3))
            log.warning("tune: trial %d failed: %s", trial.number, reason)
            raise
        trial.set_user_attr("minutes", round((time.monotonic() - started) / 60, 3))
        trial.set_user_attr("epochs", summary["epochs_run"])
        ran = summary["epochs_run"]
        early_stop_possible = cfg.patience and ran > cfg.patience
        if cfg.max_minutes and ran < min(3, cfg.epochs) and not pruned \
                and not early_stop_possible:
            # a trial whose epoch takes most of its time ends almost untrained: say why
            trial.set_user_attr("note", f"only {summary['epochs_run']} epoch(s) fitted in "
                                        f"max_minutes={cfg.max_minutes:g}")
        trial.set_user_attr("best_epoch", summary["best_epoch"])
        if pruned:
            trial.set_user_attr("pruned_after_epoch", pruned[0])
            log.info("tune: trial %d pruned after epoch %d (best dev F1 %.4f)", trial.number,
                     pruned[0], value)
            raise optuna.TrialPruned(f"pruned after epoch {pruned[0]}")
        log.info("tune: trial %d: dev F1 %.4f (%s)", trial.number, value,
                 ", ".join(f"{k}={v}" for k, v in trial.params.items()))
        return value


def _value(summary: dict) -> float:
    """The trial's score, or :class:`TrialFailed` when it cannot be trusted."""
    steps, skipped = summary["steps"], summary["skipped_steps"]  # steps counts skipped ones
    if steps and skipped * 2 > steps:
        raise TrialFailed(f"non-finite loss: {skipped} of {steps} steps skipped")
    f1 = summary["best_dev_f1"]
    if f1 is None or not math.isfinite(f1):
        raise TrialFailed(f"no finite dev F1 (got {f1})")
    return float(f1)


def report(study: Any, output: Path) -> dict:
    """``trials.json`` and ``trials.md`` (every trial), ``best/`` (a copy of the best trial's run
    directory, when it is on this machine), ``history.png`` and ``importance.png``."""
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({"number": t.number, "state": t.state.name.lower(), "dev_f1": t.value,
                     "params": t.params, "minutes": t.user_attrs.get("minutes"),
                     "epochs": t.user_attrs.get("epochs"),
                     "pruned_after_epoch": t.user_attrs.get("pruned_after_epoch"),
                     "error": t.user_attrs.get("error"), "note": t.user_attrs.get("note"),
                     "run_dir": t.user_attrs.get("run_dir"),
                     "host": t.user_attrs.get("host")})
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    out: dict[str, Any] = {"study": study.study_name, "trials": rows,
                           "pruned_minutes_saved": _pruning_saved(rows)}
    if complete:
        best = study.best_trial
        out["best"] = {"number": best.number, "dev_f1": best.value, "params": best.params,
                       "run_dir": best.user_attrs.get("run_dir"),
                       "minutes": best.user_attrs.get("minutes")}
        out["best"]["copied_to"] = _copy_best(best.user_attrs.get("run_dir"), output)
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output / "trials.json", json.dumps(out, indent=2, default=str) + "\n")
    atomic_write_text(output / "trials.md", table(out))
    out["plots"] = _plots(study, output)
    return out


def _pruning_saved(rows: list[dict]) -> float | None:
    """Minutes pruning saved, estimated: each pruned trial would have taken as long as the
    completed trials did on average."""
    done = [r["minutes"] for r in rows if r["state"] == "complete" and r["minutes"]]
    pruned = [r["minutes"] for r in rows if r["state"] == "pruned" and r["minutes"]]
    if not done or not pruned:
        return None
    mean = sum(done) / len(done)
    return round(sum(max(0.0, mean - m) for m in pruned), 2)


def _copy_best(run_dir: str | None, output: Path) -> str | None:
    if not run_dir or not (Path(run_dir) / "model").is_dir():
        return None  # on another machine (a shared study): trials.json says where it is
    best = output / "best"
    if best.resolve() == Path(run_dir).resolve():
        return str(best)
    with staged_dir(best) as tmp:
        for item in Path(run_dir).iterdir():
            if item.name.startswith("."):
                continue  # locks, partial files
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
    return str(best)


def table(out: dict) -> str:
    """trials.md: one row per trial, best first."""
    rows = sorted(out["trials"], key=lambda r: -(r["dev_f1"] if r["dev_f1"] is not None
                                                  else -1))
    names = sorted({k for r in rows for k in r["params"]})
    head = ["trial", "state", "dev F1", "minutes", "epochs", *names, "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        note = r["error"] or (f"pruned after epoch {r['pruned_after_epoch']}"
                              if r["pruned_after_epoch"] else r.get("note") or "")
        cells = [str(r["number"]), r["state"],
                 f"{r['dev_f1'] * 100:.2f}" if r["dev_f1"] is not None else "",
                 f"{r['minutes']:.1f}" if r["minutes"] else "", str(r["epochs"] or ""),
                 *[_fmt(r["params"].get(n)) for n in names], note.replace("|", "/")[:120]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _plots(study: Any, output: Path) -> dict[str, str]:
    """Optuna's optimization history and parameter importances as PNGs (matplotlib); a plot
    that cannot be drawn (too few finished trials) is skipped with its reason."""
    import warnings

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as vis
    except ImportError:
        return {"skipped": "matplotlib is not installed (the 'plot' extra)"}
    out = {}
    for name, plot in (("history", vis.plot_optimization_history),
                       ("importance", vis.plot_param_importances)):
        path = output / f"{name}.png"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                plot(study)
            fig = plt.gcf()
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
            fig.savefig(tmp, dpi=100)
            os.replace(tmp, path)
            plt.close(fig)
            out[name] = str(path)
        except Exception as exc:  # e.g. importances need two finished trials
            out[name] = f"skipped: {type(exc).__name__}: {exc}"
    return out
