"""``gpner tune``: an Optuna search over training settings (every trial a run directory)."""

from __future__ import annotations

import argparse
import sys

from gpner.cli.options import run_options


def add_parser(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "tune", help="search training settings with Optuna",
        description="Search training settings with Optuna (TPE sampler, median pruner fed by "
        "each epoch's dev F1). Every trial is a run directory OUTPUT/trials/NNN; the best is "
        "copied to OUTPUT/best; OUTPUT/trials.md, trials.json, history.png and importance.png "
        "sum the study up. The study is kept in OUTPUT/study.db (resume a killed tune with "
        "--resume), or in --storage URL, which several processes or machines can share.")
    p.add_argument("--train", required=True, help="training data, any format gpner reads")
    p.add_argument("--dev", required=True, help="dev data: each trial's score (best epoch's "
                   "strict micro F1) and the pruner's input")
    p.add_argument("--output", "-o", required=True, help="study directory")
    p.add_argument("--space", required=True, help="YAML search space: setting: {low, high, "
                   "log, step} or {choices: [...]} or a fixed value (docs/training.md)")
    p.add_argument("--trials", type=int, help="finished trials of the study (over every "
                   "worker; a resumed study counts those already done)")
    p.add_argument("--minutes", type=float, help="the study's time budget; each trial's "
                   "max_minutes is capped to what is left")
    p.add_argument("--storage", help="Optuna storage URL shared by several workers (e.g. "
                   "sqlite:////shared/study.db, postgresql://...); default OUTPUT/study.db")
    p.add_argument("--study", default="gpner-tune", help="study name in the storage")
    p.add_argument("--resume", action="store_true", help="continue the study in OUTPUT "
                   "(trials a kill interrupted run again; finished ones are not repeated)")
    p.add_argument("--seed", type=int, default=0, help="the TPE sampler's seed")
    p.add_argument("--pruner", choices=("median", "none"), default="median")
    p.add_argument("--startup-trials", type=int, default=2, help="trials finished before "
                   "the pruner stops any (default 2)")
    p.add_argument("--warmup-epochs", type=int, default=1, help="epochs each trial runs "
                   "before the pruner may stop it (default 1)")
    p.add_argument("--config", help="YAML file of settings shared by every trial")
    run_options(p, "settings shared by every trial (the space's own keys win)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpner.errors import ConfigError
    from gpner.training.config import load_config
    from gpner.training.tuning import TuneSettings, read_space, tune

    for name in ("trials", "startup_trials", "warmup_epochs"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "trials" else 0):
            raise ConfigError(f"--{name.replace('_', '-')} must be >= "
                              f"{1 if name == 'trials' else 0}, got {value}", code="E303")
    if args.minutes is not None and not args.minutes > 0:
        raise ConfigError(f"--minutes must be > 0, got {args.minutes}", code="E303")
    settings = TuneSettings(
        space=read_space(args.space), base=load_config(args.config, args.overrides),
        trials=args.trials, minutes=args.minutes, storage=args.storage, study=args.study,
        resume=args.resume, seed=args.seed, pruner=args.pruner,
        startup_trials=args.startup_trials, warmup_epochs=args.warmup_epochs,
        progress=not args.no_progress, encoding=args.encoding)
    out = tune(args.train, args.dev, args.output, settings)
    counts: dict[str, int] = {}
    for row in out["trials"]:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    print(f"study {out['study']}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
          file=sys.stderr)
    best = out.get("best")
    if best:
        print(f"best: trial {best['number']}  dev F1 {best['dev_f1']:.4f}  "
              + " ".join(f"{k}={v}" for k, v in best["params"].items())
              + (f"  -> {best['copied_to']}" if best.get("copied_to")
                 else f"  (run directory {best['run_dir']} on another machine)"),
              file=sys.stderr)
    else:
        print("no trial finished: see trials.md for the reasons", file=sys.stderr)
    return 0 if best else 1
