"""``gpner label-studio``: serve a model as a Label Studio ML backend (pre-annotations, and
retraining as annotations arrive; :mod:`gpner.serving.labelstudio`)."""

from __future__ import annotations

import argparse


def add_parser(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "label-studio", help="serve a model as a Label Studio ML backend",
        description="Serve MODEL to Label Studio: /predict pre-annotates tasks (character "
        "spans, nested ones apart, a score per span and per task), /setup reads the project's "
        "labeling config, /webhook and /train retrain on the project's annotations in the "
        "background (LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, or the host and token Label "
        "Studio sends to /setup) and swap the new model in only when it scores at least as "
        "well on held-back annotations. Connect it in Label Studio: Project settings > Model > "
        "Connect model, URL http://HOST:PORT.")
    p.add_argument("model", help="model directory (or a run directory)")
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9090, help="port (default 9090)")
    p.add_argument("--workdir", help="where fits train and keep their models (default: "
                   "MODEL's run directory / label-studio)")
    p.add_argument("--label-map", action="append", default=[], metavar="MODEL=CONFIG",
                   help="name a model label as the labeling config names it (repeatable); "
                   "labels are otherwise matched by name, then ignoring case")
    p.add_argument("--threshold", type=float, help="score threshold (default: the model's)")
    p.add_argument("--fit-epochs", type=int, default=10, help="epochs per fit (default 10)")
    p.add_argument("--fit-minutes", type=float, default=10.0, help="time limit per fit")
    p.add_argument("--min-annotations", type=int, default=10, help="annotated tasks needed "
                   "before the first fit (default 10)")
    p.add_argument("fit_settings", nargs="*", metavar="key=value",
                   help="training settings for fits, as for gpner train")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import uvicorn

    from gpner.errors import ConfigError
    from gpner.model.artifact import resolve_dir
    from gpner.serving.labelstudio import FitSettings, LabelStudioBackend, create_app

    mapping = {}
    for pair in args.label_map:
        if "=" not in pair:
            raise ConfigError(f"--label-map {pair!r}: expected MODEL=CONFIG", code="E305")
        a, b = pair.split("=", 1)
        mapping[a] = b
    model = resolve_dir(args.model)
    workdir = Path(args.workdir) if args.workdir else model.parent / "label-studio"
    backend = LabelStudioBackend(model, workdir, mapping, FitSettings(
        epochs=args.fit_epochs, minutes=args.fit_minutes, min_annotations=args.min_annotations,
        settings=list(args.fit_settings)), threshold=args.threshold)
    uvicorn.run(create_app(backend), host=args.host, port=args.port, log_level="info")
    return 0
