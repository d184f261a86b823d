"""``gpner train``: train a model into a run directory (or ``--resume`` one)."""

from __future__ import annotations

import argparse
import sys

from gpner.cli.options import run_options
from gpner.errors import ConfigError


def add_parser(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("train", help="train a model",
                         description="Train a model into the run directory OUTPUT (best model in "
                         "OUTPUT/model, resume checkpoint in OUTPUT/last, metrics.jsonl, "
                         "curve.png). Settings: defaults < --config YAML < key=value overrides.")
    training_arguments(p)
    p.set_defaults(func=run)


def training_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``train`` (``distill`` takes them too)."""
    from gpner.tasks import HEADS, TASKS

    p.add_argument("--train", help="training data, any format gpner convert reads")
    p.add_argument("--dev", help="dev data for evaluation every epoch and early stopping")
    p.add_argument("--output", "-o", required=True, help="run directory")
    p.add_argument("--encoder", help="builtin (default), a Hugging Face name or a local directory")
    p.add_argument("--head", choices=list(HEADS), help="default egp; "
                   + "; ".join(f"{k}: {v.about}" for k, v in HEADS.items()))
    p.add_argument("--task", choices=["auto", *TASKS], help="ner, relations (GPLinker: entities "
                   "and triples; gp or egp heads), or auto (default): relations when the "
                   "training data has them")
    p.add_argument("--config", help="YAML file of settings")
    p.add_argument("--resume", action="store_true", help="continue the run in OUTPUT, with its "
                   "saved settings (other settings given with it are refused)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in OUTPUT "
                   "(refused without it)")
    run_options(p, "settings, e.g. epochs=10 lr=1e-3 rdrop=1 fgm=1 ema=0.999 bf16=true "
                "report_to=tensorboard,mlflow")


def run(args: argparse.Namespace, extra: list[str] | None = None) -> int:
    """Train (``extra``: settings the calling verb adds, as key=value)."""
    from gpner.training.config import load_config
    from gpner.training.trainer import train

    if args.resume:
        # the run's own config.yaml; data paths from its data.json unless given
        given = [f"--{k}" for k in ("encoder", "head", "task", "config") if getattr(args, k)]
        given += list(args.overrides) + (["--overwrite"] if args.overwrite else [])
        given += [f"--{k.split('=')[0]}" for k in extra or []]
        if given:
            from gpner.errors import RunDirError

            raise RunDirError(f"{args.output}: --resume continues the run with its saved "
                              f"settings ({args.output}/config.yaml), so {', '.join(given)} "
                              "would be ignored; resume without them, or start a new run "
                              "(another --output, or --overwrite)", code="E403")
        cfg = None
    else:
        if not args.train:
            raise ConfigError("--train is required (unless --resume)", code="E305")
        overrides = list(extra or []) + list(args.overrides)
        for key in ("encoder", "head", "task"):
            if getattr(args, key):
                overrides.append(f"{key}={getattr(args, key)}")
        cfg = load_config(args.config, overrides)
    summary = train(args.train, args.dev, args.output, cfg, resume=args.resume,
                    progress=not args.no_progress, overwrite=args.overwrite,
                    encoding=args.encoding)
    from gpner.training.distributed import cleanup
    from gpner.training.rundir import is_main_process

    f1 = summary["best_dev_f1"]
    if is_main_process():  # under torchrun, one line for the run, not one per process
        print(f"model: {args.output}/model  best epoch {summary['best_epoch']}"
              + (f"  dev F1 {f1:.4f}" if f1 is not None else "") + f"  ({summary['minutes']} "
              f"min" + (f", {summary['world_size']} processes" if summary["world_size"] > 1
                        else "") + ")", file=sys.stderr)
    cleanup()
    return 0
