"""``gpner distill``: train a student on its teachers' span scores (and the gold where it
exists); the student is an ordinary run directory (:mod:`gpner.training.distill`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(verbs: argparse._SubParsersAction) -> None:
    from gpner.cli.train import training_arguments

    p = verbs.add_parser(
        "distill", help="distil one or more teacher models into a (smaller, faster) student",
        description="Train a student into the run directory OUTPUT on the span scores of the "
        "teacher models (their average: an ensemble), through the soft multilabel "
        "categorical cross-entropy against sigmoid(2 * score / T), mixed with the gold loss "
        "where gold exists. Teachers and student may use different tokenizers: spans are "
        "carried over by their characters, and what cannot be carried is counted. Any other "
        "training setting (encoder, head, epochs, ...) as for gpner train; --resume continues "
        "a killed run, torchrun runs it on several processes.")
    p.add_argument("--teacher", action="append", metavar="RUN", default=[],
                   help="a teacher model or run directory (give several for an ensemble)")
    p.add_argument("--unlabeled", metavar="TEXTS", help="texts for the teachers to label "
                   "(text lines, JSON lines with text, or any format gpner predict reads)")
    p.add_argument("--temperature", type=float, metavar="T", help="targets are "
                   "sigmoid(2 * teacher score / T) (default 1: the teacher's probabilities)")
    p.add_argument("--kd-weight", type=float, metavar="W", help="share of the teacher term "
                   "where gold exists; the gold loss gets 1 - W (default 0.5)")
    p.add_argument("--floor", type=float, metavar="P", help="teacher probabilities below P "
                   "count as 0: the targets stay sparse (default 1e-4)")
    training_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpner.cli.train import run as train
    from gpner.errors import ConfigError

    extra = []
    if args.teacher:  # absolute: the saved settings must find them from anywhere on resume
        extra.append("teachers=" + ",".join(str(Path(t).resolve()) for t in args.teacher))
    elif not args.resume:
        raise ConfigError("--teacher is required (a model or run directory; repeat it for an "
                          "ensemble)", code="E305")
    if args.unlabeled:
        extra.append(f"unlabeled={Path(args.unlabeled).resolve()}")
    for option, key in (("temperature", "kd_temperature"), ("kd_weight", "kd_weight"),
                        ("floor", "kd_floor")):
        if getattr(args, option) is not None:
            extra.append(f"{key}={getattr(args, option)}")
    return train(args, extra)
