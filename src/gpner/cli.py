"""``gpner <verb>``: each verb parses its arguments and calls one importable function."""

from __future__ import annotations

import argparse
import logging
import sys


def _convert(args: argparse.Namespace) -> int:
    from gpner.formats import read, write

    reader_opts = {}
    if args.scheme_in:
        reader_opts["scheme"] = args.scheme_in
    if args.token_sep is not None:
        reader_opts["token_sep"] = args.token_sep
    corpus = read(args.input, args.format, strict=args.strict, **reader_opts)
    writer_opts = {"scheme": args.scheme} if args.scheme else {}
    write(corpus, args.output, args.to, **writer_opts)
    print(corpus.report.summary(), file=sys.stderr)
    print(f"wrote {len(corpus)} records to {args.output}", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    from gpner.config import load_config
    from gpner.trainer import train

    if args.resume:
        cfg = None  # the run's own config.yaml; data paths from its data.json unless given
    else:
        if not args.train:
            raise ValueError("--train is required (unless --resume)")
        overrides = list(args.overrides)
        for key in ("encoder", "head"):
            if getattr(args, key):
                overrides.append(f"{key}={getattr(args, key)}")
        cfg = load_config(args.config, overrides)
    summary = train(args.train, args.dev, args.output, cfg, resume=args.resume,
                    progress=not args.no_progress)
    f1 = summary["best_dev_f1"]
    print(f"model: {args.output}/model  best epoch {summary['best_epoch']}"
          + (f"  dev F1 {f1:.4f}" if f1 is not None else "") + f"  ({summary['minutes']} min)",
          file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from gpner.formats import read
    from gpner.metrics import format_table
    from gpner.predict import load

    model = load(args.model)
    corpus = read(args.data)
    result = model.evaluate(corpus.records, flat=args.flat, threshold=args.threshold)
    result["data"] = corpus.report.as_dict()
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(format_table(result))
        print(corpus.report.summary(), file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace) -> int:
    import json

    from gpner.predict import load

    model = load(args.model)
    if args.input in (None, "-"):
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        texts = [_text_of(t) for t in texts]
    else:
        from gpner.formats import detect_format, read

        path = args.input
        try:
            fmt = detect_format(path)
        except Exception:
            fmt = None
        if fmt == "conll" and not _looks_like_columns(path):
            with open(path, encoding="utf-8") as f:
                texts = [line.rstrip("\n") for line in f if line.strip()]
        else:
            texts = [r["text"] for r in read(path, fmt)]
    flat = True if args.flat else (False if args.nested else None)
    for record in model.predict_iter(texts, flat=flat, threshold=args.threshold,
                                     batch_size=args.batch_size):
        print(json.dumps(record, ensure_ascii=False), flush=False)
    return 0


def _text_of(line: str) -> str:
    """A stdin line: plain text, or a JSON object with a "text" field."""
    import json

    if line.startswith("{"):
        try:
            obj = json.loads(line)
            if isinstance(obj, dict) and isinstance(obj.get("text"), str):
                return obj["text"]
        except json.JSONDecodeError:
            pass
    return line


def _looks_like_columns(path: str) -> bool:
    """Plain text files (one text per line) are not column files: column lines end in a tag."""
    from gpner.tagging import split_tag

    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts or line.startswith("-DOCSTART-"):
                continue
            try:
                split_tag(parts[-1])
            except ValueError:
                return False
            return len(parts) >= 2
    return False


def _demo(args: argparse.Namespace) -> int:
    import json

    from gpner.config import load_config
    from gpner.demo import SAMPLES, write_corpus
    from gpner.formats import read
    from gpner.metrics import format_table
    from gpner.predict import load
    from gpner.trainer import train

    out = args.output
    paths = write_corpus(f"{out}/data")
    print(f"[1/4] demo corpus (Chinese + English, nested): {paths['train']}, {paths['dev']}, "
          f"{paths['test']}", file=sys.stderr)
    cfg = load_config(None, ["epochs=12", *args.overrides])
    print(f"[2/4] gpner train --train {paths['train']} --dev {paths['dev']} --output {out}/run",
          file=sys.stderr)
    summary = train(paths["train"], paths["dev"], f"{out}/run", cfg, progress=not args.no_progress)
    print(f"      best dev F1 {summary['best_dev_f1']:.4f} at epoch {summary['best_epoch']} "
          f"({summary['minutes']} min)", file=sys.stderr)
    model = load(f"{out}/run")
    print(f"[3/4] gpner evaluate {out}/run {paths['test']}", file=sys.stderr)
    result = model.evaluate(read(paths["test"]).records)
    print(format_table(result))
    print("[4/4] gpner predict (sample sentences)", file=sys.stderr)
    for record in model.predict(SAMPLES):
        print(json.dumps(record, ensure_ascii=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from gpner import __version__
    from gpner.tasks import HEADS

    parser = argparse.ArgumentParser(prog="gpner", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gpner {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("convert", help="convert annotations between formats",
                         description="Read any supported format (detected unless --format) and "
                         "write another (from the output extension unless --to). Formats: jsonl, "
                         "cluener, cmeee, conll, brat, doccano, label-studio.")
    p.add_argument("input", help="input file, or a BRAT directory")
    p.add_argument("-o", "--output", required=True, help="output file or BRAT directory")
    p.add_argument("--format", help="input format (default: detected)")
    p.add_argument("--to", help="output format (default: from the output extension)")
    p.add_argument("--scheme", help="tag scheme for conll output: bio, iob1, bioes, bmes")
    p.add_argument("--scheme-in", help="tag scheme of a conll input (default: detected)")
    p.add_argument("--token-sep", help="string joining column-file tokens (default: '' for "
                   "CJK, ' ' otherwise)")
    p.add_argument("--strict", action="store_true", help="fail on the first malformed entity")
    p.set_defaults(func=_convert)

    p = verbs.add_parser("train", help="train a model",
                         description="Train a model into the run directory OUTPUT (best model in "
                         "OUTPUT/model, resume checkpoint in OUTPUT/last, metrics.jsonl, "
                         "curve.png). Settings: defaults < --config YAML < key=value overrides.")
    p.add_argument("--train", help="training data, any format gpner convert reads")
    p.add_argument("--dev", help="dev data for evaluation every epoch and early stopping")
    p.add_argument("--output", "-o", required=True, help="run directory")
    p.add_argument("--encoder", help="builtin (default), a Hugging Face name or a local directory")
    p.add_argument("--head", choices=list(HEADS), help="default egp; "
                   + "; ".join(f"{k}: {v.about}" for k, v in HEADS.items()))
    p.add_argument("--config", help="YAML file of settings")
    p.add_argument("--resume", action="store_true", help="continue the run in OUTPUT")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="settings, e.g. epochs=10 lr=1e-3 rdrop=1 fgm=1 ema=0.999 bf16=true")
    p.set_defaults(func=_train)

    p = verbs.add_parser("evaluate", help="precision, recall and F1 of a model on data")
    p.add_argument("model", help="model directory (or a run directory)")
    p.add_argument("data", help="annotated data, any format gpner convert reads")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--flat", action="store_true", default=None, help="flat decoding")
    p.add_argument("--threshold", type=float, help="score threshold (default: the model's)")
    p.set_defaults(func=_evaluate)

    p = verbs.add_parser("predict", help="tag texts; JSON lines out")
    p.add_argument("model", help="model directory (or a run directory)")
    p.add_argument("input", nargs="?", help="texts: one per line, JSON lines or any data "
                   "format; '-' or nothing for stdin")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--flat", action="store_true", help="non-overlapping entities only")
    g.add_argument("--nested", action="store_true", help="all spans above the threshold")
    p.add_argument("--threshold", type=float, help="score threshold (default: the model's)")
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=_predict)

    p = verbs.add_parser("demo", help="generate a corpus, train, evaluate and tag (no download)")
    p.add_argument("--output", "-o", default="runs/demo", help="where data and model go")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.INFO,
                        format="%(levelname)s %(message)s")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    from gpner.records import FormatError

    try:
        return args.func(args)
    except (FormatError, FileNotFoundError, ValueError, OSError, ImportError) as exc:
        print(f"gpner {args.verb}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
