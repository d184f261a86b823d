"""``gpner serve``: the model behind an HTTP API (FastAPI + uvicorn, the ``serve`` extra).

Endpoints: ``POST /predict``, ``GET /health``, ``GET /info``, ``GET /metrics`` (Prometheus),
OpenAPI at ``/docs`` and ``/openapi.json``, and a web page at ``/``. Requests go through
:class:`gpner.serving.microbatch.MicroBatcher`. Every error is a JSON body
``{"error", "error_type"}`` with its status: 400 malformed JSON, 422 wrong types or empty
texts, 413 over a limit, 429 a full queue (with Retry-After), 500 a failed batch (that
batch's requests only), 503 while the model loads. docs/serving.md documents the API, limits
and settings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, AsyncIterator, Mapping, Sequence

try:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, Field, ValidationError
    from starlette.exceptions import HTTPException
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("gpner serve needs the 'serve' extra: pip install 'gpner[serve]'") from exc

from gpner import __version__
from gpner.serving.microbatch import BatchSettings, MicroBatcher, Overloaded

log = logging.getLogger("gpner.serve")
ENV = "GPNER_SERVE"  # settings for the app factory, as JSON (uvicorn workers import the app)
KEY_ENV = "GPNER_API_KEY"  # the API key, if the service requires one
THRESHOLD_BOUND = 20.0  # |threshold| at most this: prob = sigmoid(2 * score) in [4e-18, 1 - 4e-18]
# answered without the API key: load balancers' probes, and the pages that only describe the
# API (the web page's own calls to /predict need the key)
OPEN_PATHS = {"/health", "/", "/docs", "/openapi.json"}


@dataclass
class ServeSettings(BatchSettings):
    """``gpner serve``'s settings: the model, its runtime, the batching and the request limits."""

    model: str = ""  # model directory
    backend: str = "torch"
    # intra-op threads of the runtime; default: all cores but one, which the event loop, the
    # tokenizer thread and the HTTP work need (measured: torch on all cores of 2 ran at less
    # than half the requests/s of torch on one, docs/serving.md)
    threads: int | None = None
    max_texts: int = 64  # texts in one request
    max_text_chars: int = 100_000  # characters in one text (longer ones within it are windowed)
    max_body_bytes: int = 4 * 1024 * 1024
    # entities kept per text: the highest-scoring ones, the result marked "truncated"; with
    # the threshold bounded, what one request can make the server produce is bounded
    max_entities: int = 5000
    retry_after_s: int = 1  # the Retry-After header of a 429
    # a key the clients must send (Authorization: Bearer KEY, or X-API-Key); None: open.
    # Not written to GPNER_SERVE's JSON: workers read it from GPNER_API_KEY
    api_key: str | None = None
    header_timeout_s: float = 10.0  # a connection that has not sent its headers by then closes
    body_timeout_s: float = 30.0  # nor its body this long after them

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("max_texts", "max_text_chars", "max_body_bytes", "max_entities"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def model_threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 2) - 1)

    def batch(self) -> BatchSettings:
        return BatchSettings(**{f.name: getattr(self, f.name) for f in fields(BatchSettings)})

    def to_env(self) -> str:
        return json.dumps({**asdict(self), "api_key": None})  # the key never in a JSON blob

    @classmethod
    def from_env(cls) -> "ServeSettings":
        settings = cls(**json.loads(os.environ[ENV]))
        settings.api_key = os.environ.get(KEY_ENV) or None
        return settings


class PredictRequest(BaseModel):
    """One text or a list of texts, and options that default to the model's saved ones."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
    text: str | None = Field(None, description="one text (or give texts)")
    texts: list[str] | None = Field(None, description="several texts (or give text)")
    threshold: float | None = Field(None, description="span score threshold (0 = prob 0.5)")
    flat: bool | None = Field(None, description="true: no overlapping spans; false: nested")
    labels: list[str] | None = Field(None, description="keep only entities of these labels "
                                     "(and the relations between them)")


class Entity(BaseModel):
    """A predicted entity."""

    start: int = Field(description="character offset, inclusive")
    end: int = Field(description="character offset, exclusive")
    label: str
    score: float = Field(description="the span logit")
    prob: float = Field(description="the calibrated probability where gpner calibrate fitted "
                        "the model's maps, else sigmoid(2 * score)")
    text: str = Field(description="text[start:end]")


class Relation(BaseModel):
    """A predicted relation between two of the text's entities."""

    head: int = Field(description="index of the subject in entities")
    tail: int = Field(description="index of the object in entities")
    label: str
    score: float = Field(description="the smallest of the triple's four GPLinker scores")
    prob: float = Field(description="sigmoid(2 * score)")


class Result(BaseModel):
    """One text's prediction."""

    text: str
    entities: list[Entity]
    relations: list[Relation] | None = Field(None, description="relation models only")
    truncated: bool | None = Field(None, description="true when more entities scored above the "
                                   "threshold than the service's max_entities: the "
                                   "highest-scoring ones are kept")


class PredictResponse(BaseModel):
    """The predictions, one result per text in request order."""

    results: list[Result]


class ErrorBody(BaseModel):
    """Every error answer: a message and its type."""

    error: str
    error_type: str


class ApiError(Exception):
    """An error answered with its status, type and message (and headers such as Retry-After)."""

    def __init__(self, status: int, error_type: str, message: str,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.error_type, self.headers = status, error_type, headers


def error_response(status: int, error_type: str, message: str,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "error_type": error_type}, status, headers=headers)


class Metrics:
    """Prometheus metrics of one process, in a registry of their own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry()
        self.requests = Counter("gpner_requests", "HTTP requests", ["path", "status"], registry=r)
        self.errors = Counter("gpner_errors", "error answers by type", ["error_type"], registry=r)
        self.texts = Counter("gpner_texts", "texts predicted", registry=r)
        self.latency = Histogram("gpner_request_latency_seconds", "POST /predict latency",
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30),
                                 registry=r)
        self.batch_requests = Histogram("gpner_batch_requests", "requests per batch",
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.batch_windows = Histogram("gpner_batch_windows", "windows per batch",
                                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
                                       registry=r)
        self.batch_seconds = Histogram("gpner_batch_seconds", "model time per batch",
                                       buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5),
                                       registry=r)
        self.queue = Gauge("gpner_queue_depth", "requests waiting for a batch", registry=r)
        self.running = Gauge("gpner_running_requests", "requests in batches being computed",
                             registry=r)

    def on_batch(self, requests: int, windows: int, tokens: int, seconds: float) -> None:
        self.batch_requests.observe(requests)
        self.batch_windows.observe(windows)
        self.batch_seconds.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class State:
    """What the app holds: the predictor once loaded, its batcher, metrics and settings."""

    def __init__(self, settings: ServeSettings, predictor: Any = None):
        self.settings = settings
        self.predictor = predictor
        self.batcher: MicroBatcher | None = None
        self.load_error: str | None = None
        self.metrics = Metrics()
        self.metrics.queue.set_function(lambda: self.batcher.waiting if self.batcher else 0)
        self.metrics.running.set_function(lambda: self.batcher.running if self.batcher else 0)

    async def load(self) -> None:
        try:
            if self.predictor is None:
                from gpner.prediction.loading import load

                s = self.settings
                self.predictor = await asyncio.to_thread(load, s.model, backend=s.backend,
                                                         threads=s.model_threads())
            batcher = MicroBatcher(self.predictor, self.settings.batch(), self.metrics.on_batch)
            batcher.start()
            self.batcher = batcher
            log.info("model ready: %s", self.settings.model or "(given)")
        except Exception as exc:  # /health says so; predict answers 503
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("model failed to load")

    def info(self) -> dict:
        p, s = self.predictor, self.settings
        cfg = p.config
        return {"version": __version__, "labels": list(cfg.labels), "head": cfg.head,
                "encoder": {"type": cfg.encoder.type, "name": cfg.encoder.name},
                "max_length": cfg.max_length, "stride": cfg.decode.stride,
                "threshold": cfg.decode.threshold, "thresholds": cfg.decode.thresholds,
                "flat": bool(cfg.decode.flat),
                "backend": s.backend, "model": s.model,
                "threads": s.model_threads(),
                "limits": {"max_texts": s.max_texts, "max_text_chars": s.max_text_chars,
                           "max_body_bytes": s.max_body_bytes, "max_queue": s.max_queue},
                "batching": {"enabled": s.batching, "max_batch_tokens": s.max_batch_tokens,
                             "max_wait_ms": s.max_wait_ms, "concurrency": s.concurrency}}


def create_app(settings: ServeSettings, predictor: Any = None) -> FastAPI:
    """The app; ``predictor`` (tests, embedding) is used instead of loading ``settings.model``.
    The model loads in the background after start-up, so ``/health`` answers at once."""
    state = State(settings, predictor)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(state.load())
        yield
        await loading
        if state.batcher:  # uvicorn has answered every open request by now
            await state.batcher.stop()

    assets = _swagger_assets()
    app = FastAPI(title="gpner", version=__version__, lifespan=lifespan,
                  docs_url=None if assets else "/docs", redoc_url=None,
                  description="GlobalPointer named-entity recognition: nested and flat spans "
                              "with character offsets. See docs/serving.md.")
    app.state.gpner = state
    _add_error_handlers(app, state)
    _add_routes(app, state)
    if assets:
        _add_offline_docs(app, assets)
    return app


def _swagger_assets() -> Path | None:
    """Swagger UI's files from the ``swagger-ui-bundle`` package (the ``serve`` extra), so that
    ``/docs`` works without internet; None without it (FastAPI's page, from a CDN)."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    return Path(str(swagger_ui_path))


def _add_offline_docs(app: FastAPI, assets: Path) -> None:
    """``/docs`` with Swagger UI served by the service itself (``/docs-assets/...``)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="gpner API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")


def _add_error_handlers(app: FastAPI, state: State) -> None:
    """Every error answered as JSON ``{"error", "error_type"}`` and counted by type; requests
    counted by path and status."""

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        path = request.url.path if request.url.path in KNOWN_PATHS else "other"
        denied = _denied(request, state.settings.api_key)
        try:
            response = denied or await call_next(request)
        except Exception:  # answered by the 500 handler outside this middleware: count it here
            state.metrics.requests.labels(path, "500").inc()
            raise
        state.metrics.requests.labels(path, str(response.status_code)).inc()
        if denied is not None:
            state.metrics.errors.labels("unauthorized").inc()
        if path == "/predict":
            state.metrics.latency.observe(time.perf_counter() - started)
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        state.metrics.errors.labels(exc.error_type).inc()
        return error_response(exc.status, exc.error_type, str(exc), exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
        state.metrics.errors.labels(kind).inc()
        return error_response(exc.status_code, kind, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        state.metrics.errors.labels("validation").inc()
        return error_response(422, "validation", _describe(exc.errors()))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        state.metrics.errors.labels("internal").inc()
        # the details are in the server log, not in the answer: they are not the client's
        return error_response(500, "internal", "internal error; the server log has the details")


def _denied(request: Request, key: str | None) -> JSONResponse | None:
    """401 for a request without the service's API key (``Authorization: Bearer KEY`` or
    ``X-API-Key: KEY``), compared in constant time; None when it may pass."""
    if key is None or request.url.path in OPEN_PATHS or \
            request.url.path.startswith("/docs-assets/"):
        return None
    import hmac

    auth = request.headers.get("authorization", "")
    given = auth[7:] if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
    if hmac.compare_digest(given.encode("utf-8", "surrogateescape"), key.encode("utf-8")):
        return None
    return error_response(401, "unauthorized", "this service requires an API key: send "
                          "'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                          {"WWW-Authenticate": "Bearer"})


def _add_routes(app: FastAPI, state: State) -> None:
    """``/predict``, ``/health``, ``/info``, ``/metrics`` and the page."""
    err = {"model": ErrorBody}

    @app.post("/predict", response_model=PredictResponse, summary="Tag one or more texts",
              responses={400: err, 413: err, 422: err, 429: err, 500: err, 503: err},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": PredictRequest.model_json_schema()}}}})
    async def predict(request: Request) -> Any:
        s = state.settings
        req = _parse(await _read_body(request, s.max_body_bytes))
        texts = [req.text] if req.text is not None else list(req.texts or [])
        _check(texts, req, s, state)
        assert state.batcher is not None  # _check answered 503 before the model was ready
        try:
            records = await state.batcher.predict(texts, req.threshold, req.flat, req.labels)
        except Overloaded as exc:
            raise ApiError(429, "overloaded", f"the service is overloaded ({exc}); retry later",
                           {"Retry-After": str(s.retry_after_s)}) from exc
        except Exception as exc:
            log.exception("a batch failed")
            raise ApiError(500, "model_error", f"prediction failed: {type(exc).__name__}: "
                                               f"{exc}") from exc
        state.metrics.texts.inc(len(texts))
        return JSONResponse({"results": [_capped(r, s.max_entities) for r in records]})

    @app.get("/health", summary="200 once the model is loaded, 503 before (or if it failed)")
    async def health() -> JSONResponse:
        if state.batcher is not None:
            return JSONResponse({"status": "ready"})
        if state.load_error:
            return JSONResponse({"status": "failed", "error": state.load_error}, 503)
        return JSONResponse({"status": "loading"}, 503)

    @app.get("/info", summary="labels, head, encoder, max length, version, limits")
    async def info() -> Any:
        _ready(state)
        return state.info()

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        body, kind = state.metrics.render()
        return Response(body, media_type=kind)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        from gpner.serving.pages import page_html

        return HTMLResponse(page_html())


KNOWN_PATHS = {"/predict", "/health", "/info", "/metrics", "/", "/docs", "/openapi.json"}


def app_from_env() -> FastAPI:
    """The app factory uvicorn imports in each worker process: settings from $GPNER_SERVE."""
    return create_app(ServeSettings.from_env())


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (never read whole)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"the body has {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"the body has more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _capped(record: Mapping[str, Any], limit: int) -> Mapping[str, Any]:
    """At most ``limit`` entities, the highest-scoring, in text order, and ``truncated``; the
    relations between the kept entities are re-indexed."""
    entities = record["entities"]
    if len(entities) <= limit:
        return record
    keep = sorted(sorted(range(len(entities)), key=lambda k: -entities[k]["score"])[:limit])
    where = {old: new for new, old in enumerate(keep)}
    out = {**record, "entities": [entities[k] for k in keep], "truncated": True}
    if record.get("relations") is not None:
        out["relations"] = [{**r, "head": where[r["head"]], "tail": where[r["tail"]]}
                            for r in record["relations"]
                            if r["head"] in where and r["tail"] in where]
    return out


def _parse(body: bytes) -> PredictRequest:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise ApiError(400, "malformed_json", "the body is nested too deeply to be a request "
                                              "(JSON nesting over about 1,000 levels)") from None
    if not isinstance(data, dict):
        raise ApiError(422, "validation",
                       f'the body must be a JSON object like {{"text": "..."}}, not a '
                       f"{type(data).__name__}")
    try:
        return PredictRequest.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "validation", _describe(exc.errors())) from exc


def _describe(errors: Sequence[Any]) -> str:
    parts = []
    for e in errors[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def _ready(state: State) -> None:
    if state.batcher is None:
        why = f"the model failed to load: {state.load_error}" if state.load_error else \
            "the model is still loading"
        raise ApiError(503, "not_ready", why, {"Retry-After": "1"})


def _check(texts: list[str], req: PredictRequest, s: ServeSettings, state: State) -> None:
    if req.text is not None and req.texts is not None:
        raise ApiError(422, "validation", 'give "text" or "texts", not both')
    if req.text is None and req.texts is None:
        raise ApiError(422, "validation", 'the body needs "text" (a string) or "texts" '
                                          "(a list of strings)")
    if not texts:
        raise ApiError(422, "validation", '"texts" is empty')
    if len(texts) > s.max_texts:
        raise ApiError(413, "too_large", f"{len(texts)} texts; the limit is {s.max_texts} per "
                                         "request")
    for k, t in enumerate(texts):
        _unicode(t, f"text {k}")
        if not t.strip():
            raise ApiError(422, "validation", f"text {k} is empty")
        if len(t) > s.max_text_chars:
            raise ApiError(413, "too_large", f"text {k} has {len(t)} characters; the limit is "
                                             f"{s.max_text_chars}")
    _ready(state)
    if req.labels is not None:
        for label in req.labels:
            _unicode(label, "a label")
        unknown = sorted(set(req.labels) - set(state.predictor.labels))
        if unknown:
            raise ApiError(422, "validation", f"unknown labels {unknown}; the model has "
                                              f"{state.predictor.labels}")
    if req.threshold is not None and not (math.isfinite(req.threshold)
                                          and abs(req.threshold) <= THRESHOLD_BOUND):
        raise ApiError(422, "validation", f"threshold must be a number from -{THRESHOLD_BOUND:g} "
                       f"to {THRESHOLD_BOUND:g} (a span score; 0 means prob 0.5), got "
                       f"{req.threshold!r}")


def _unicode(text: str, what: str) -> None:
    """422 for a string JSON could carry but Unicode cannot: a lone surrogate (``\\ud800``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiError(422, "validation", f"{what} holds a lone surrogate "
                       f"(U+{ord(text[exc.start]):04X}) at character {exc.start}: not a "
                       "Unicode text") from None


def serve(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000,
          workers: int = 1, log_level: str = "info") -> None:
    """Run uvicorn with ``workers`` processes, each loading the model; SIGTERM finishes the
    requests in flight before the process exits."""
    import uvicorn

    from gpner.model.artifact import ModelConfig, resolve_dir

    settings.model = str(resolve_dir(settings.model))  # fail here, not in every worker
    ModelConfig.load(Path(settings.model))
    os.environ[ENV] = settings.to_env()
    if settings.api_key:
        os.environ[KEY_ENV] = settings.api_key
    uvicorn.run("gpner.serving.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level=log_level, timeout_graceful_shutdown=30,
                http="gpner.serving.timeouts:TimedH11Protocol")
