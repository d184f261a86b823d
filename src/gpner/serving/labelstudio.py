"""A Label Studio ML backend for a gpner model: ``gpner label-studio RUN --port 9090``.

Label Studio calls four routes (the contract of its ``ml/api_connector.py``):

- ``GET /health`` -> ``{"status": "UP", "model_class": ..., "model_version": ...}``;
- ``POST /setup`` ``{project, schema (the labeling config XML), hostname, access_token}`` ->
  ``{"model_version": ...}``: the config is parsed here and the model's labels mapped to its
  ``<Label value=...>`` names (exact, then ignoring case, then ``--label-map``); names on
  either side without a partner are reported, never guessed;
- ``POST /predict`` ``{tasks, project, label_config}`` -> ``{"results": [one prediction per
  task]}``: ``labels`` results with character offsets (nested spans as separate results), a
  score per result (the span's prob) and the task's score, the least certain span (so sorting
  by prediction score puts the doubtful tasks first); relation models add ``relation``
  results;
- ``POST /webhook`` (annotation events, ``START_TRAINING``) and ``POST /train``: a fit is
  queued. A background worker fetches the project's annotations through the Label Studio API
  (``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY``; else the host and token ``/setup`` was
  given), trains a new model on all but a held-back part of them in a separate process (so
  ``/predict`` is never blocked), and swaps it in, atomically, only when it scores at least as
  well as the served one on the held-back part. ``model_version`` names the model that
  answered; ``GET /fits`` lists every fit with its scores.

Bad requests get a JSON error (``{"error": ...}`` with 400 or 422), never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request  # the app's routes take it (annotations are resolved by name)

log = logging.getLogger("gpner")

FIT_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED",
               "START_TRAINING"}


class BadRequest(ValueError):
    """A request Label Studio (or a user) sent that cannot be answered; ``status`` 400/422."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


# ----------------------------------------------------------------- the labeling config

@dataclass
class LabelConfig:
    """What gpner needs of a labeling config: the ``<Labels>`` control over a ``<Text>`` object
    (their names, the task data key, the label values) and a ``<Relations>`` control."""

    labels_name: str
    text_name: str
    text_key: str
    labels: list[str]
    relations_name: str | None = None
    relations: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, xml: str) -> "LabelConfig":
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as exc:
            raise BadRequest(f"the labeling config is not valid XML ({exc})") from None
        texts = {el.get("name"): el for el in root.iter() if el.tag in ("Text", "HyperText")}
        for el in root.iter("Labels"):
            target = texts.get(el.get("toName"))
            if target is None:
                continue
            value = target.get("value", "$text")
            rel = next(root.iter("Relations"), None)
            return cls(
                labels_name=el.get("name", "label"), text_name=target.get("name", "text"),
                text_key=value[1:] if value.startswith("$") else value,
                labels=[lab.get("value", "") for lab in el.iter("Label")],
                # <Relations> needs no name: the control is there or not
                relations_name=rel.get("name", "relations") if rel is not None else None,
                relations=[r.get("value", "") for r in rel.iter("Relation")]
                if rel is not None else [])
        raise BadRequest("the labeling config has no <Labels> control over a <Text> object: "
                         "gpner predicts text spans")


def label_map(model_labels: list[str], config_labels: list[str],
              explicit: dict[str, str] | None = None
              ) -> tuple[dict[str, str], list[str], list[str]]:
    """Model label -> config label: ``explicit`` first, then the same name, then the same name
    ignoring case. Returns the map, the model labels with no config label (their spans are not
    sent) and the config labels no model label gives."""
    explicit = explicit or {}
    lower = {c.lower(): c for c in config_labels}
    out: dict[str, str] = {}
    for lab in model_labels:
        if lab in explicit:
            if explicit[lab] not in config_labels:
                raise BadRequest(f"--label-map {lab}={explicit[lab]}: the labeling config has "
                                 f"no label {explicit[lab]!r} (it has {config_labels})")
            out[lab] = explicit[lab]
        elif lab in config_labels:
            out[lab] = lab
        elif lab.lower() in lower:
            out[lab] = lower[lab.lower()]
    unknown = [lab for lab in model_labels if lab not in out]
    unused = [c for c in config_labels if c not in set(out.values())]
    return out, unknown, unused


# ----------------------------------------------------------------- predictions

def task_prediction(record: dict[str, Any], cfg: LabelConfig, mapping: dict[str, str],
                    version: str) -> dict[str, Any]:
    """One task's prediction: a ``labels`` result per entity the config can name, ``relation``
    results between them, and the task's score (the least certain span; 1 without spans)."""
    result: list[dict[str, Any]] = []
    ids: dict[int, str] = {}
    text = record["text"]
    for k, e in enumerate(record["entities"]):
        if e["label"] not in mapping:
            continue
        ids[k] = f"gp{k}"
        result.append({"id": ids[k], "from_name": cfg.labels_name, "to_name": cfg.text_name,
                       "type": "labels", "score": e["prob"],
                       "value": {"start": e["start"], "end": e["end"],
                                 "text": text[e["start"]:e["end"]],
                                 "labels": [mapping[e["label"]]]}})
    if cfg.relations_name:
        for r in record.get("relations") or []:
            if r["head"] in ids and r["tail"] in ids and r["label"] in cfg.relations:
                result.append({"from_id": ids[r["head"]], "to_id": ids[r["tail"]],
                               "type": "relation", "direction": "right",
                               "labels": [r["label"]], "score": r.get("prob")})
    probs = [x["score"] for x in result if x["type"] == "labels"]
    return {"result": result, "score": min(probs) if probs else 1.0, "model_version": version}


# ----------------------------------------------------------------- the backend

@dataclass
class FitSettings:
    """How a fit trains: epochs and minutes per fit, the annotations needed before one, the
    share held back to compare the new model with the served one."""

    epochs: int = 10
    minutes: float | None = 10.0
    min_annotations: int = 10
    held_back: float = 0.2
    settings: list[str] = field(default_factory=list)  # key=value for gpner train


class LabelStudioBackend:
    """The served model, its version, the projects' label configs, and the fit worker."""

    def __init__(self, model_dir: str | Path, workdir: str | Path,
                 label_map_: dict[str, str] | None = None, fit: FitSettings | None = None,
                 threshold: float | None = None):
        from gpner.model.artifact import resolve_dir

        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.explicit = label_map_ or {}
        self.fit_settings = fit or FitSettings()
        self.threshold = threshold
        self.lock = threading.Lock()
        self.base = resolve_dir(model_dir)
        self.model, self.model_dir = self._load(self.base), self.base
        self.version = self._version(0)
        self.configs: dict[str, LabelConfig] = {}
        self.hosts: dict[str, tuple[str, str]] = {}  # project -> (url, token) from /setup
        self.fits: list[dict[str, Any]] = []
        self.queue: list[str] = []
        self.wake = threading.Condition()
        self.busy = False
        self.worker = threading.Thread(target=self._work, name="gpner-fit", daemon=True)
        self.worker.start()

    def _version(self, fit: int) -> str:
        """The model version Label Studio shows: the base run's name and the fit it came from."""
        return f"gpner-{self.base.parent.name or 'model'}-v{fit}"

    @staticmethod
    def _load(path: Path) -> Any:
        from gpner.prediction.loading import load

        return load(path)

    # ------------------------------------------------------------ routes

    def health(self) -> dict[str, Any]:
        return {"status": "UP", "model_class": "gpner", "model_version": self.version,
                "model_dir": str(self.model_dir), "fitting": self.busy}

    def setup(self, body: dict[str, Any]) -> dict[str, Any]:
        project = _project_id(body.get("project"))
        cfg = LabelConfig.parse(_need(body, "schema", str))
        _, unknown, unused = label_map(self.model.labels, cfg.labels, self.explicit)
        with self.lock:
            self.configs[project] = cfg
            if body.get("hostname") and body.get("access_token"):
                self.hosts[project] = (str(body["hostname"]), str(body["access_token"]))
        if unknown:
            log.warning("label-studio: project %s: the model's labels %s are not in the labeling "
                        "config (their spans are not sent; --label-map MODEL=CONFIG maps them)",
                        project, unknown)
        return {"model_version": self.version, "unknown_model_labels": unknown,
                "config_labels_without_model_label": unused}

    def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        tasks = _need(body, "tasks", list)
        project = _project_id(body.get("project"))
        if body.get("label_config"):
            cfg = LabelConfig.parse(str(body["label_config"]))
        elif project in self.configs:
            cfg = self.configs[project]
        else:
            raise BadRequest("no label_config in the request and no /setup for project "
                             f"{project!r}: gpner cannot name the labels")
        texts = []
        for n, task in enumerate(tasks):
            data = task.get("data") if isinstance(task, dict) else None
            text = data.get(cfg.text_key) if isinstance(data, dict) else None
            if not isinstance(text, str):
                raise BadRequest(f"task {n} (id {task.get('id') if isinstance(task, dict) else '?'}"
                                 f"): no text under data.{cfg.text_key} (the labeling config's "
                                 f"<Text value=\"${cfg.text_key}\">)")
            texts.append(text)
        with self.lock:  # the model and version answering this request, whatever a swap does
            model, version = self.model, self.version
        mapping, _, _ = label_map(model.labels, cfg.labels, self.explicit)
        records = model.predict(texts, threshold=self.threshold)
        return {"results": [task_prediction(r, cfg, mapping, version) for r in records],
                "model_version": version}

    def webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        action = body.get("action")
        project = body.get("project")
        pid = _project_id(project.get("id") if isinstance(project, dict) else project)
        if action not in FIT_ACTIONS:
            return {"status": "ignored", "action": action}
        if isinstance(project, dict) and project.get("label_config") and pid not in self.configs:
            self.configs[pid] = LabelConfig.parse(project["label_config"])
        return self.queue_fit(pid)

    def queue_fit(self, project: str) -> dict[str, Any]:
        with self.wake:
            if project not in self.queue:  # events while a fit waits join that fit
                self.queue.append(project)
            self.wake.notify()
        return {"status": "queued", "project": project, "model_version": self.version}

    # ------------------------------------------------------------ fitting

    def _work(self) -> None:
        while True:
            with self.wake:
                while not self.queue:
                    self.wake.wait()
                project = self.queue.pop(0)
                self.busy = True
            try:
                self.fits.append(self.fit(project))
            except Exception as exc:  # a failed fit is reported, the served model stays
                log.warning("label-studio: fit for project %s failed: %s", project, exc)
                self.fits.append({"project": project, "status": "failed", "error": str(exc)})
            finally:
                self.busy = False

    def fetch(self, project: str) -> list[dict[str, Any]]:
        """The project's annotated tasks (Label Studio JSON export) through its API."""
        url = os.environ.get("LABEL_STUDIO_URL") or self.hosts.get(project, ("", ""))[0]
        key = os.environ.get("LABEL_STUDIO_API_KEY") or self.hosts.get(project, ("", ""))[1]
        if not url or not key:
            raise BadRequest("set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY so the backend can "
                             "read the annotations", status=400)
        pid = project.split(".")[0]
        req = urllib.request.Request(
            f"{url.rstrip('/')}/api/projects/{pid}/export?exportType=JSON",
            headers={"Authorization": _auth_header(url, key)})
        with urllib.request.urlopen(req, timeout=60) as resp:
            tasks = json.loads(resp.read().decode("utf-8"))
        return [t for t in tasks if any(not a.get("was_cancelled")
                                        for a in t.get("annotations") or [])]

    def fit(self, project: str) -> dict[str, Any]:
        """Train on the project's annotations; swap the new model in when it scores at least as
        well as the served one on the held-back tasks."""
        from gpner.data.formats import read
        from gpner.metrics import evaluate

        fs = self.fit_settings
        started = time.monotonic()
        n = len(self.fits) + 1
        out = self.workdir / f"fit-{n}"
        out.mkdir(parents=True, exist_ok=True)
        tasks = self.fetch(project)
        info: dict[str, Any] = {"project": project, "fit": n, "annotated_tasks": len(tasks)}
        if len(tasks) < fs.min_annotations:
            return {**info, "status": "waiting",
                    "reason": f"{len(tasks)} annotated tasks, {fs.min_annotations} needed"}
        (out / "annotations.json").write_text(json.dumps(tasks, ensure_ascii=False),
                                              encoding="utf-8")
        records = read(out / "annotations.json", "label-studio").records
        # held back by a hash of the text: a task stays on its side from fit to fit
        held = [r for r in records if _bucket(r["text"]) < fs.held_back]
        train = [r for r in records if _bucket(r["text"]) >= fs.held_back]
        if not held or not train:
            held, train = records[:max(1, len(records) // 5)], records[max(1, len(records) // 5):]
        for name, part in (("train", train), ("held", held)):
            (out / f"{name}.jsonl").write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), encoding="utf-8")
        cmd = [sys.executable, "-m", "gpner.cli", "-q", "train", "--train",
               str(out / "train.jsonl"), "--output", str(out / "run"), "--no-progress",
               "--overwrite", *self._train_settings(), f"epochs={fs.epochs}", "patience=0"]
        if fs.minutes:
            cmd.append(f"max_minutes={fs.minutes}")
        res = subprocess.run(cmd + fs.settings, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"training failed: {res.stderr.strip()[-500:]}")
        new = self._load(out / "run" / "model")
        with self.lock:
            old, old_version = self.model, self.version
        cfg = self.configs.get(project)
        f_old = _score(old, held, cfg, self.explicit, self.threshold, evaluate)
        f_new = _score(new, held, cfg, self.explicit, self.threshold, evaluate)
        info.update({"held_back": len(held), "trained_on": len(train), "f1_served": f_old,
                     "f1_new": f_new, "minutes": round((time.monotonic() - started) / 60, 2),
                     "served_before": old_version})
        if f_new >= f_old:
            with self.lock:
                self.model, self.model_dir = new, out / "run" / "model"
                self.version = self._version(n)
            info.update({"status": "swapped", "model_version": self.version})
            log.info("label-studio: fit %d: F1 %.4f >= %.4f on %d held-back tasks: now "
                     "serving %s", n, f_new, f_old, len(held), self.version)
        else:
            info.update({"status": "kept", "model_version": old_version})
            log.info("label-studio: fit %d: F1 %.4f < %.4f: %s stays", n, f_new, f_old,
                     old_version)
        with open(self.workdir / "fits.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(info) + "\n")
        return info

    def _train_settings(self) -> list[str]:
        """The served base model's own settings (encoder, head, sizes), for the new model."""
        from gpner.training.config import TrainConfig

        saved = self.model.config.train_config or {}
        keep = set(TrainConfig.fields()) - {"teachers", "unlabeled", "epochs", "patience",
                                            "max_minutes", "report_to", "threads"}
        return [f"{k}={json.dumps(v)}" for k, v in saved.items() if k in keep and v is not None]


def _score(model: Any, held: list[Any], cfg: LabelConfig | None,
           explicit: dict[str, str], threshold: float | None, evaluate: Any) -> float:
    """Strict F1 of ``model`` on the held-back records, its labels named as the config names
    them (the served model may use other names than the annotations)."""
    pred = model.predict([r["text"] for r in held], threshold=threshold)
    if cfg is not None:
        mapping, _, _ = label_map(model.labels, cfg.labels, explicit)
        pred = [{**p, "entities": [{**e, "label": mapping[e["label"]]} for e in p["entities"]
                                   if e["label"] in mapping]} for p in pred]
    return float(evaluate(held, pred)["f1"])


def _bucket(text: str) -> float:
    return (zlib.crc32(text.encode("utf-8", "surrogatepass")) % 1000) / 1000


def _auth_header(url: str, key: str) -> str:
    """A legacy token is sent as ``Token KEY``; a personal access token (a JWT) is exchanged
    for an access token first (Label Studio >= 1.17), sent as ``Bearer``."""
    if key.count(".") != 2:
        return f"Token {key}"
    req = urllib.request.Request(f"{url.rstrip('/')}/api/token/refresh",
                                 data=json.dumps({"refresh": key}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return f"Bearer {json.loads(resp.read())['access']}"


def _project_id(value: Any) -> str:
    return "" if value is None else str(value)


def _need(body: dict[str, Any], key: str, kind: type) -> Any:
    if not isinstance(body, dict) or not isinstance(body.get(key), kind):
        raise BadRequest(f"the request needs {key!r} ({kind.__name__})")
    return body[key]


# ----------------------------------------------------------------- the HTTP app

async def body_of(request: Request) -> dict[str, Any]:
    """A request's JSON object body; anything else is a 400 naming what was wrong."""
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not JSON ({exc})", status=400) from None
    if not isinstance(body, dict):
        raise BadRequest("the body should be a JSON object", status=400)
    return body


def create_app(backend: LabelStudioBackend) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI(title="gpner Label Studio ML backend", docs_url=None, redoc_url=None)

    @app.exception_handler(BadRequest)
    async def bad(_: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("label-studio: unexpected error")
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the "
                                      "backend's log"}, status_code=500)

    @app.get("/health")
    @app.get("/")
    async def health() -> dict[str, Any]:
        return backend.health()

    @app.post("/setup")
    async def setup(request: Request) -> dict[str, Any]:
        return backend.setup(await body_of(request))

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        import anyio

        body = await body_of(request)
        # the model runs in a worker thread: the event loop keeps answering /health
        return await anyio.to_thread.run_sync(backend.predict, body)

    @app.post("/webhook")
    async def webhook(request: Request) -> dict[str, Any]:
        return backend.webhook(await body_of(request))

    @app.post("/train")
    async def train(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        return backend.queue_fit(_project_id(body.get("project")))

    @app.get("/fits")
    async def fits() -> list[dict[str, Any]]:
        return backend.fits

    @app.post("/versions")
    @app.get("/versions")
    async def versions() -> dict[str, Any]:
        return {"versions": [backend.version]}

    return app
