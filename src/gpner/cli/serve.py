"""``gpner serve``: the HTTP service."""

from __future__ import annotations

import argparse

from gpner.cli.options import positive


def add_parser(verbs: argparse._SubParsersAction) -> None:
    from gpner.serving.microbatch import BatchSettings

    b = BatchSettings()  # the service's defaults (gpner.serving.app.ServeSettings extends it)
    p = verbs.add_parser("serve", help="an HTTP service with micro-batching and a web page",
                         description="Serve a model over HTTP (FastAPI + uvicorn; the 'serve' "
                         "extra): POST /predict, GET /health, /info, /metrics, OpenAPI at /docs, "
                         "a web page at /. See docs/serving.md.")
    p.add_argument("model", help="model directory (or a run directory)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                   "127.0.0.1, this machine only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"])
    p.add_argument("--workers", type=positive, default=1, help="processes, each with a model")
    p.add_argument("--threads", type=positive, help="CPU threads per model (default: all "
                   "cores but one)")
    p.add_argument("--max-batch-tokens", type=positive, default=b.max_batch_tokens,
                   help="padded tokens per forward pass")
    p.add_argument("--max-wait-ms", type=float, default=b.max_wait_ms,
                   help="how long a batch waits for more requests")
    p.add_argument("--max-queue", type=positive, default=b.max_queue,
                   help="requests waiting before new ones get 429")
    p.add_argument("--concurrency", type=positive, default=b.concurrency,
                   help="batches computed at once per worker")
    p.add_argument("--no-batching", action="store_true", help="one request per forward pass")
    # limits: None keeps ServeSettings' defaults (64 texts, 100,000 characters, 4 MiB)
    p.add_argument("--max-texts", type=positive, help="texts per request")
    p.add_argument("--max-text-chars", type=positive,
                   help="characters per text (longer texts within it are windowed)")
    p.add_argument("--max-body-bytes", type=positive, help="request body size")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
