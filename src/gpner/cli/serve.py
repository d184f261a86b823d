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
    p.add_argument("--max-entities", type=positive, help="entities per text in an answer (the "
                   "highest-scoring kept, the result marked truncated; default 5000)")
    p.add_argument("--api-key", help="require this key on every request but /health (clients "
                   "send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'); default: "
                   "$GPNER_API_KEY, else open. Prefer the variable: a key on the command line "
                   "shows in the process list")
    p.add_argument("--header-timeout", type=float, default=10.0, help="seconds a connection "
                   "has to send its request headers (default 10)")
    p.add_argument("--body-timeout", type=float, default=30.0, help="seconds it then has to "
                   "send the body (default 30)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from gpner.errors import ConfigError
    from gpner.serving.app import ServeSettings, serve

    limits = {k: getattr(args, k) for k in ("max_texts", "max_text_chars", "max_body_bytes",
                                            "max_entities") if getattr(args, k) is not None}
    for name in ("header_timeout", "body_timeout"):
        if not getattr(args, name) > 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive number of "
                              f"seconds, got {getattr(args, name)}", code="E302")
    settings = ServeSettings(model=args.model, backend=args.backend, threads=args.threads,
                             max_batch_tokens=args.max_batch_tokens, max_wait_ms=args.max_wait_ms,
                             max_queue=args.max_queue, concurrency=args.concurrency,
                             batching=not args.no_batching,
                             api_key=args.api_key or os.environ.get("GPNER_API_KEY") or None,
                             header_timeout_s=args.header_timeout,
                             body_timeout_s=args.body_timeout, **limits)
    serve(settings, host=args.host, port=args.port, workers=args.workers,
          log_level="warning" if args.quiet else "info")
    return 0
