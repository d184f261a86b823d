"""``gpner <verb>``: each verb parses its arguments and calls one importable function."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import deque

from gpner.errors import ConfigError


def _convert(args: argparse.Namespace) -> int:
    from gpner.data.formats import canonical, detect_format, preview, read, write

    reader_opts: dict = {}
    for key, value in (("scheme", args.scheme_in), ("token_sep", args.token_sep),
                       ("documents", args.documents or None),
                       ("token_pattern", args.token_pattern), ("tags", args.tags),
                       ("inclusive_end", args.inclusive_end or None)):
        if value is not None:
            reader_opts[key] = value
    fmt = canonical(args.format) if args.format else detect_format(args.input, args.encoding)
    corpus = read(args.input, fmt, strict=args.strict, encoding=args.encoding, **reader_opts)
    # what was understood, at a glance: a wrong reading shows here, before anyone trains on it
    print(f"format: {fmt}" + (" (given)" if args.format else " (detected; --format to "
                              "override)"), file=sys.stderr)
    shown = preview(corpus.records)
    if shown:
        print(f"first record: {shown}", file=sys.stderr)
    writer_opts = {"scheme": args.scheme} if args.scheme else {}
    dropped = write(corpus, args.output, args.to, drop_relations=args.drop_relations,
                    **writer_opts)
    print(corpus.report.summary(), file=sys.stderr)
    if dropped:
        print(f"dropped {dropped} relations (--drop-relations)", file=sys.stderr)
    print(f"wrote {len(corpus)} records to {args.output}", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    from gpner.training.config import load_config
    from gpner.training.trainer import train

    if args.resume:
        # the run's own config.yaml; data paths from its data.json unless given
        given = [f"--{k}" for k in ("encoder", "head", "task", "config") if getattr(args, k)]
        given += list(args.overrides) + (["--overwrite"] if args.overwrite else [])
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
        overrides = list(args.overrides)
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


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from gpner.atomic import atomic_write_text
    from gpner.data.formats import read
    from gpner.metrics import (errors, evaluate, format_schemas, format_table, paired_bootstrap,
                               schemas)
    from gpner.prediction.predictor import load

    corpus = read(args.data, encoding=args.encoding)
    gold = corpus.records
    texts = [r["text"] for r in gold]
    opts = dict(flat=args.flat, threshold=args.threshold, progress=not args.no_progress)
    model = load(args.model)
    pred = model.predict(texts, **opts)
    if getattr(model.task, "has_relations", False):
        return _evaluate_relations(args, gold, pred, corpus.report)
    result = evaluate(gold, pred)
    result.update(schemas(gold, pred))
    result["data"] = corpus.report.as_dict()
    if args.errors:
        lines = [json.dumps(e, ensure_ascii=False) + "\n" for e in errors(gold, pred)]
        atomic_write_text(args.errors, "".join(lines))
        print(f"wrote {len(lines)} false positives and negatives to {args.errors}",
              file=sys.stderr)
    if args.compare:
        other = load(args.compare).predict(texts, **opts)
        result["compare"] = {"a": args.model, "b": args.compare,
                             **paired_bootstrap(gold, pred, other, samples=args.bootstrap)}
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(format_table(result))
        print()
        print(format_schemas(result))
        c = result.get("compare")
        if c:
            print(f"\nA {c['a']}: F1 {c['f1_a']:.4f}\nB {c['b']}: F1 {c['f1_b']:.4f}\n"
                  f"B - A: {c['delta']:+.4f} (95% CI {c['ci95'][0]:+.4f} to {c['ci95'][1]:+.4f};"
                  f" paired bootstrap over {c['records']} records, {c['samples']} samples: "
                  f"p = {c['p_value']:.4f})")
        print(corpus.report.summary(), file=sys.stderr)
    return 0


def _evaluate_relations(args: argparse.Namespace, gold: list, pred: list, report) -> int:
    """``gpner evaluate`` for a relation model: triple metrics (strict and partial, per
    relation, by overlap class and triples per sentence) and the entity metrics."""
    import json

    from gpner.metrics import evaluate_relations, format_relations

    if args.errors or args.compare:
        raise ConfigError("--errors and --compare are for NER models; a relation model's "
                          "evaluation has no error listing or comparison yet", code="E305")
    result = evaluate_relations(gold, pred)
    result["data"] = report.as_dict()
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(format_relations(result))
        print(report.summary(), file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace) -> int:
    import json

    from gpner.prediction.files import InputReport, ResumableOutput, detect_kind, output_record, read_inputs

    if args.resume and not args.output:
        raise ConfigError("--resume needs -o/--output (the file a killed run was writing)",
                          code="E305")
    kind = detect_kind(args.input, args.format, args.encoding)
    if args.ray:
        from gpner.integrations.batch_inference import predict_with_ray

        if not args.output:
            raise ConfigError("--ray needs -o/--output", code="E305")
        n = predict_with_ray(args.model, args.input, args.output, kind=kind, backend=args.backend,
                             batch_size=args.batch_size, flat=_flat(args), threshold=args.threshold,
                             stride=args.stride, strict=args.strict, actors=args.ray_actors,
                             encoding=args.encoding, concurrency=args.concurrency)
        print(f"wrote {n} records to {args.output}", file=sys.stderr)
        return 0
    from pathlib import Path

    from gpner.prediction.predictor import load

    if args.resume and Path(args.output).exists() and not Path(args.output + ".partial").exists():
        print(f"{args.output} is complete: nothing to resume", file=sys.stderr)
        return 0
    model = load(args.model, backend=args.backend, threads=args.threads,
                 concurrency=args.concurrency)
    out = ResumableOutput(args.output, args.resume) if args.output else None
    skip = out.done if out else 0
    report = InputReport("<stdin>" if args.input in (None, "-") else args.input)
    items = read_inputs(args.input, kind, report, strict=args.strict, skip=skip,
                        encoding=args.encoding)
    pending: deque = deque()  # items whose record has not come out yet (a bounded look-ahead)

    def texts():
        for item in items:
            pending.append(item)
            yield item.text

    records = model.predict_iter(texts(), batch_size=args.batch_size, flat=_flat(args),
                                 threshold=args.threshold, stride=args.stride,
                                 progress=not args.no_progress and sys.stderr.isatty())
    write = out.write if out else (lambda line: sys.stdout.write(line + "\n"))
    try:
        for k, record in enumerate(records, 1):
            write(json.dumps(output_record(pending.popleft(), record), ensure_ascii=False))
            if k % 256 == 0 and out:
                out.flush()
        if out:
            out.finish()
        else:
            sys.stdout.flush()
    except BrokenPipeError:  # `gpner predict ... | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if out:
            out.close()
    done = f" (resumed after {skip})" if skip else ""
    print(report.summary() + done + (f"; wrote {args.output}" if out else ""), file=sys.stderr)
    return 0


def _flat(args: argparse.Namespace) -> bool | None:
    return True if args.flat else (False if args.nested else None)


def _export(args: argparse.Namespace) -> int:
    from gpner.integrations.onnx_export import export_onnx

    if not args.onnx:
        raise ConfigError("say which format: --onnx (the only one so far)", code="E305")
    spec = export_onnx(args.model, int8=args.int8, opset=args.opset)
    print(f"wrote {spec['directory']}: model.onnx" + (", model.int8.onnx" if spec["int8"] else "")
          + f" (largest difference from PyTorch {spec['max_abs_diff_fp32']:.2g}); predict with "
          f"gpner predict {args.model} INPUT --backend onnx" + ("-int8" if spec["int8"] else ""),
          file=sys.stderr)
    return 0


def _demo(args: argparse.Namespace) -> int:
    import json

    from gpner.training.config import load_config
    from gpner.data.demo import RELATION_SAMPLES, SAMPLES, write_corpus
    from gpner.data.formats import read
    from gpner.metrics import format_relations, format_table
    from gpner.prediction.predictor import load
    from gpner.training.trainer import train

    out = args.output
    if args.relations:
        paths, what = write_corpus(f"{out}/data", relations=True), "entities and relations"
        samples, table = RELATION_SAMPLES, format_relations
    else:
        paths, what, samples, table = write_corpus(f"{out}/data"), "nested", SAMPLES, format_table
    print(f"[1/4] demo corpus (Chinese + English, {what}): {paths['train']}, {paths['dev']}, "
          f"{paths['test']}", file=sys.stderr)
    cfg = load_config(None, ["epochs=20" if args.relations else "epochs=12", *args.overrides])
    print(f"[2/4] gpner train --train {paths['train']} --dev {paths['dev']} --output {out}/run",
          file=sys.stderr)
    # the demo regenerates its data, so it replaces its own previous run
    summary = train(paths["train"], paths["dev"], f"{out}/run", cfg, progress=not args.no_progress,
                    overwrite=True)
    print(f"      best dev F1 {summary['best_dev_f1']:.4f} at epoch {summary['best_epoch']} "
          f"({summary['minutes']} min)", file=sys.stderr)
    model = load(f"{out}/run")
    print(f"[3/4] gpner evaluate {out}/run {paths['test']}", file=sys.stderr)
    result = model.evaluate(read(paths["test"]).records)
    print(table(result))
    print("[4/4] gpner predict (sample sentences)", file=sys.stderr)
    for record in model.predict(samples):
        print(json.dumps(record, ensure_ascii=False))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from gpner.serving.app import ServeSettings, serve

    limits = {k: getattr(args, k) for k in ("max_texts", "max_text_chars", "max_body_bytes")
              if getattr(args, k) is not None}
    settings = ServeSettings(model=args.model, backend=args.backend, threads=args.threads,
                             max_batch_tokens=args.max_batch_tokens, max_wait_ms=args.max_wait_ms,
                             max_queue=args.max_queue, concurrency=args.concurrency,
                             batching=not args.no_batching, **limits)
    serve(settings, host=args.host, port=args.port, workers=args.workers,
          log_level="warning" if args.quiet else "info")
    return 0


def _render(args: argparse.Namespace) -> int:
    from gpner.serving.pages import render

    out = render(args.source, args.output, args.data, compare_gold=args.compare,
                 limit=args.limit, errors_only=args.errors_only, flat=_flat(args),
                 threshold=args.threshold, encoding=args.encoding)
    print(f"wrote {out['output']}: {out['records']} of {out['of']} records"
          + (f", {out['errors']} errors" if args.compare else ""), file=sys.stderr)
    return 0


def _decoding_options(p: argparse.ArgumentParser) -> None:
    """--flat/--nested and --threshold (read back with :func:`_flat`)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--flat", action="store_true", help="non-overlapping entities only")
    g.add_argument("--nested", action="store_true", help="all spans above the threshold")
    p.add_argument("--threshold", type=float, help="score threshold (default: the model's)")


def _encoding_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoding", help="text encoding of the input files (default utf-8, a BOM "
                   "dropped), e.g. gbk, gb18030, big5, utf-16, latin-1")


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    from gpner import __version__
    from gpner.tasks import HEADS, TASKS

    parser = argparse.ArgumentParser(prog="gpner", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gpner {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an "
                        "error (by default a user error prints one line with its code)")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("convert", help="convert annotations between formats",
                         description="Read any supported format (detected unless --format) and "
                         "write another (from the output extension unless --to), printing the "
                         "format and the first record as read. Reads: jsonl, cluener, cmeee, "
                         "conll, brat, doccano, label-studio, casrel, spo, tokens, tsv, wordtag, "
                         "prodigy, spacy; writes: jsonl, cluener, cmeee, conll, brat, doccano, "
                         "label-studio, casrel (docs/formats.md).")
    p.add_argument("input", help="input file, or a BRAT directory")
    p.add_argument("-o", "--output", required=True, help="output file or BRAT directory")
    p.add_argument("--format", help="input format (default: detected)")
    p.add_argument("--to", help="output format (default: from the output extension)")
    p.add_argument("--scheme", help="tag scheme for conll output: bio, iob1, bioes, bmes")
    p.add_argument("--scheme-in", help="tag scheme of a conll input (default: detected)")
    p.add_argument("--token-sep", help="string joining column-file tokens (default: '' for "
                   "CJK, ' ' otherwise)")
    p.add_argument("--documents", action="store_true", help="column files: one record per "
                   "-DOCSTART- document (sentences joined by newlines), not per sentence")
    p.add_argument("--token-pattern", help="column files: a regular expression whose first "
                   "group is the token text, for tokens with an annotation glued on (Weibo NER: "
                   "'(.+?)\\d+$')")
    p.add_argument("--tags", help="wordtag files: word tags to entity types (default "
                   "nr=PER,ns=LOC,nt=ORG)")
    p.add_argument("--inclusive-end", action="store_true", help="tsv files: span ends are the "
                   "last character, not one past it")
    p.add_argument("--strict", action="store_true", help="fail on the first malformed entity")
    p.add_argument("--drop-relations", action="store_true", help="write the entities of relation "
                   "data to a format that cannot hold relations (without it, such a write is "
                   "refused)")
    _encoding_option(p)
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
    p.add_argument("--task", choices=["auto", *TASKS], help="ner, relations (GPLinker: entities "
                   "and triples; gp or egp heads), or auto (default): relations when the "
                   "training data has them")
    p.add_argument("--config", help="YAML file of settings")
    p.add_argument("--resume", action="store_true", help="continue the run in OUTPUT, with its "
                   "saved settings (other settings given with it are refused)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in OUTPUT "
                   "(refused without it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _encoding_option(p)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="settings, e.g. epochs=10 lr=1e-3 rdrop=1 fgm=1 ema=0.999 bf16=true")
    p.set_defaults(func=_train)

    p = verbs.add_parser("evaluate", help="precision, recall and F1 of a model on data")
    p.add_argument("model", help="model directory (or a run directory)")
    p.add_argument("data", help="annotated data, any format gpner convert reads")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--flat", action="store_true", default=None, help="flat decoding")
    p.add_argument("--threshold", type=float, help="score threshold (default: the model's)")
    p.add_argument("--errors", metavar="OUT.jsonl", help="write every false positive and false "
                   "negative with its scenario and context")
    p.add_argument("--compare", metavar="OTHER_MODEL", help="also score another model on the "
                   "same data, with a paired bootstrap estimate of the difference")
    p.add_argument("--bootstrap", type=_positive, default=1000, help="bootstrap samples")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _encoding_option(p)
    p.set_defaults(func=_evaluate)

    p = verbs.add_parser("predict", help="tag texts; JSON lines out",
                         description="Stream texts through a model: a line of output per line of "
                         "input, in order, in bounded memory. Input: plain text (a line per "
                         "text), JSON lines with a \"text\" field (other fields pass through), or "
                         "any format gpner reads.")
    p.add_argument("model", help="model directory (or a run directory)")
    p.add_argument("input", nargs="?", help="input file; '-' or nothing for stdin")
    p.add_argument("-o", "--output", help="output file, written atomically (default: stdout)")
    p.add_argument("--format", help="input format: text, jsonl or a gpner reader format "
                   "(default: detected)")
    p.add_argument("--resume", action="store_true", help="continue a killed run writing -o")
    p.add_argument("--strict", action="store_true", help="stop at the first bad input line "
                   "(default: report it with its line number and skip it)")
    _decoding_options(p)
    p.add_argument("--stride", type=_positive, help="tokens between window starts in long "
                   "texts (default: the model's, half a window)")
    p.add_argument("--batch-size", type=_positive, default=32)
    p.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"],
                   help="onnx/onnx-int8 run the graphs of `gpner export --onnx [--int8]`")
    p.add_argument("--threads", type=_positive, help="CPU threads for the model (default: "
                   "the runtime's; with --concurrency, the cores shared out)")
    p.add_argument("--concurrency", type=_positive, default=1, help="batches computed at "
                   "once, each in a thread: 2 predicts more texts/s on a few cores")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--ray", action="store_true", help="run on Ray (a local instance, or the "
                   "cluster at RAY_ADDRESS); needs -o and the 'ray' extra")
    p.add_argument("--ray-actors", type=_positive, default=2, help="model replicas on Ray")
    _encoding_option(p)
    p.set_defaults(func=_predict)

    p = verbs.add_parser("export", help="export a model for another runtime (ONNX)",
                         description="Write MODEL/onnx/model.onnx (dynamic batch and sequence "
                         "axes, checked against PyTorch) and with --int8 its dynamically "
                         "quantised twin model.int8.onnx.")
    p.add_argument("model", help="model directory (or a run directory)")
    p.add_argument("--onnx", action="store_true", help="ONNX, for ONNX Runtime")
    p.add_argument("--int8", action="store_true", help="also an int8 dynamically quantised graph")
    p.add_argument("--opset", type=int, default=17)
    p.set_defaults(func=_export)

    from gpner.serving.microbatch import BatchSettings

    b = BatchSettings()  # the defaults the service uses (gpner.serving.app.ServeSettings extends it)
    p = verbs.add_parser("serve", help="an HTTP service with micro-batching and a web page",
                         description="Serve a model over HTTP (FastAPI + uvicorn; the 'serve' "
                         "extra): POST /predict, GET /health, /info, /metrics, OpenAPI at /docs, "
                         "a web page at /. See docs/serving.md.")
    p.add_argument("model", help="model directory (or a run directory)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                   "127.0.0.1, this machine only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"])
    p.add_argument("--workers", type=_positive, default=1, help="processes, each with a model")
    p.add_argument("--threads", type=_positive, help="CPU threads per model (default: all "
                   "cores but one)")
    p.add_argument("--max-batch-tokens", type=_positive, default=b.max_batch_tokens,
                   help="padded tokens per forward pass")
    p.add_argument("--max-wait-ms", type=float, default=b.max_wait_ms,
                   help="how long a batch waits for more requests")
    p.add_argument("--max-queue", type=_positive, default=b.max_queue,
                   help="requests waiting before new ones get 429")
    p.add_argument("--concurrency", type=_positive, default=b.concurrency,
                   help="batches computed at once per worker")
    p.add_argument("--no-batching", action="store_true", help="one request per forward pass")
    # limits: None keeps ServeSettings' defaults (64 texts, 100,000 characters, 4 MiB)
    p.add_argument("--max-texts", type=_positive, help="texts per request")
    p.add_argument("--max-text-chars", type=_positive,
                   help="characters per text (longer texts within it are windowed)")
    p.add_argument("--max-body-bytes", type=_positive, help="request body size")
    p.set_defaults(func=_serve)

    p = verbs.add_parser("render", help="draw data or predictions as a standalone HTML page",
                         description="gpner render DATA -o page.html draws a file's entities "
                         "(gold data or saved predictions); gpner render MODEL DATA -o page.html "
                         "draws the model's predictions on DATA's texts, and with --compare the "
                         "gold entities beside them, differences marked.")
    p.add_argument("source", help="a data file, or a model directory")
    p.add_argument("data", nargs="?", help="after a model: the data whose texts it tags")
    p.add_argument("-o", "--output", required=True, help="the HTML file to write")
    p.add_argument("--compare", action="store_true", help="gold beside predicted (a model and "
                   "annotated data)")
    p.add_argument("--errors-only", action="store_true", help="with --compare: only records "
                   "with a missing or spurious entity")
    p.add_argument("--limit", type=_positive, default=1000, help="records on the page")
    _encoding_option(p)
    _decoding_options(p)
    p.set_defaults(func=_render)

    p = verbs.add_parser("demo", help="generate a corpus, train, evaluate and tag (no download)")
    p.add_argument("--output", "-o", default="runs/demo", help="where data and model go")
    p.add_argument("--relations", action="store_true", help="the relation-extraction demo "
                   "(entities and triples, GPLinker)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.INFO,
                        format="%(levelname)s %(message)s")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"gpner {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user; --debug shows the traceback
        if args.debug:
            raise
        print(f"gpner {args.verb}: {describe(exc)}", file=sys.stderr)
        return 3 if unexpected(exc) else 2


def describe(exc: BaseException) -> str:
    """The one line the CLI prints for an error."""
    import errno

    from gpner.errors import GpnerError

    if isinstance(exc, GpnerError):
        return f"error {exc} (see docs/errors.md, {exc.code})"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"error [E601] no space left on the device writing {exc.filename or 'a file'}; "
                "the files written before are intact (see docs/errors.md, E601)")
    if isinstance(exc, PermissionError):
        return f"error [E601] permission denied: {exc.filename} (see docs/errors.md, E601)"
    if unexpected(exc):
        return (f"unexpected error ({type(exc).__name__}: {exc}); this is a gpner bug or an "
                "input it does not check yet: rerun with --debug for the traceback and report it")
    return f"error: {exc}"


def unexpected(exc: BaseException) -> bool:
    """Not one of the errors gpner raises for bad input (those exit 2)."""
    from gpner.errors import GpnerError

    return not isinstance(exc, (GpnerError, ValueError, OSError, ImportError))


if __name__ == "__main__":
    sys.exit(main())
