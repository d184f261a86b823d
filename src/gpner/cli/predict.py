"""``gpner predict``: stream texts through a model, JSON lines out (or on Ray)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Iterable, Iterator, TypeVar

from gpner.cli.options import decoding_options, encoding_option, flat_choice, positive
from gpner.errors import ConfigError
from gpner.textfiles import json_line


def add_parser(verbs: argparse._SubParsersAction) -> None:
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
    decoding_options(p)
    p.add_argument("--stride", type=positive, help="tokens between window starts in long "
                   "texts (default: the model's, half a window)")
    p.add_argument("--batch-size", type=positive, default=32)
    p.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"],
                   help="onnx/onnx-int8 run the graphs of `gpner export --onnx [--int8]`")
    p.add_argument("--threads", type=positive, help="CPU threads for the model (default: "
                   "the runtime's; with --concurrency, the cores shared out)")
    p.add_argument("--concurrency", type=positive, default=1, help="batches computed at "
                   "once, each in a thread: 2 predicts more texts/s on a few cores")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--ray", action="store_true", help="run on Ray (a local instance, or the "
                   "cluster at RAY_ADDRESS); needs -o and the 'ray' extra")
    p.add_argument("--ray-actors", type=positive, default=2, help="model replicas on Ray")
    encoding_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    from gpner.prediction.stream import (
        BLOCK,
        InputReport,
        ResumableOutput,
        detect_kind,
        input_identity,
        output_record,
        read_inputs,
    )

    if args.resume and not args.output:
        raise ConfigError("--resume needs -o/--output (the file a killed run was writing)",
                          code="E305")
    kind = detect_kind(args.input, args.format, args.encoding)
    if args.ray:
        from gpner.integrations.batch_inference import predict_with_ray

        if not args.output:
            raise ConfigError("--ray needs -o/--output", code="E305")
        n = predict_with_ray(args.model, args.input, args.output, kind=kind, backend=args.backend,
                             batch_size=args.batch_size, flat=flat_choice(args),
                             threshold=args.threshold, stride=args.stride, strict=args.strict,
                             actors=args.ray_actors, encoding=args.encoding,
                             concurrency=args.concurrency)
        print(f"wrote {n} records to {args.output}", file=sys.stderr)
        return 0
    from pathlib import Path

    from gpner.prediction.loading import load

    if args.resume and Path(args.output).exists() and not Path(args.output + ".partial").exists():
        print(f"{args.output} is complete: nothing to resume", file=sys.stderr)
        return 0
    model = load(args.model, backend=args.backend, threads=args.threads,
                 concurrency=args.concurrency)
    settings = {"model": str(Path(args.model).resolve()), "kind": kind,
                "flat": flat_choice(args), "threshold": args.threshold, "stride": args.stride,
                "batch_size": args.batch_size}
    out = ResumableOutput(args.output, args.resume, input_identity(args.input, settings)) \
        if args.output else None
    skip = out.done if out else 0
    report = InputReport("<stdin>" if args.input in (None, "-") else args.input)
    items = read_inputs(args.input, kind, report, strict=args.strict, skip=skip,
                        encoding=args.encoding)
    if not args.no_progress and sys.stderr.isatty():
        items = _counted(items)
    write = out.write if out else (lambda line: sys.stdout.write(line + "\n"))
    try:
        # blocks of BLOCK texts from the input's start: a block's forward passes do not depend
        # on where a run began, so a resumed output is byte-identical to an uninterrupted one
        for block in _blocks(items, BLOCK):
            records = model.predict_iter([it.text for it in block], batch_size=args.batch_size,
                                         flat=flat_choice(args), threshold=args.threshold,
                                         stride=args.stride)
            for item, record in zip(block, records, strict=True):
                write(json_line(output_record(item, record)))
            if out:
                out.flush()
        if out:
            out.check_total(report.read)
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


T = TypeVar("T")


def _blocks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` items (the last shorter), lazily."""
    block: list[T] = []
    for item in items:
        block.append(item)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


def _counted(items: Iterable[T]) -> Iterator[T]:
    """A progress bar over the input."""
    from tqdm.auto import tqdm

    yield from tqdm(items, unit="text", dynamic_ncols=True, mininterval=0.5)
