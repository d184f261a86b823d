"""The Label Studio ML backend (gpner.serving.labelstudio) through FastAPI's test client, with
requests shaped as Label Studio's ml/api_connector.py sends them, and a stand-in for Label
Studio's export API: labeling configs, label mapping, predictions against gpner predict, JSON
errors, and fits that swap a better model in and keep a worse one out."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest
from helpers import tiny_data

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from gpner.prediction.loading import load  # noqa: E402
from gpner.serving.labelstudio import (  # noqa: E402
    BadRequest,
    FitSettings,
    LabelConfig,
    LabelStudioBackend,
    create_app,
    label_map,
)

# as Label Studio's "Named Entity Recognition" template writes it, with a relation control
CONFIG = """<View>
  <Relations>
    <Relation value="works_at"/>
  </Relations>
  <Labels name="ner" toName="doc">
    <Label value="Person" background="red"/>
    <Label value="LOC" background="darkorange"/>
    <Label value="org" background="orange"/>
    <Label value="MISC" background="green"/>
  </Labels>
  <Header value="Read the text"/>
  <Text name="doc" value="$content"/>
</View>"""


def test_the_labeling_config_is_read_as_label_studio_writes_it():
    cfg = LabelConfig.parse(CONFIG)
    assert (cfg.labels_name, cfg.text_name, cfg.text_key) == ("ner", "doc", "content")
    assert cfg.labels == ["Person", "LOC", "org", "MISC"]
    assert cfg.relations == ["works_at"]
    with pytest.raises(BadRequest, match="no <Labels> control over a <Text>"):
        LabelConfig.parse('<View><Choices name="c" toName="t"/><Text name="t" value="$t"/>'
                          "</View>")
    with pytest.raises(BadRequest, match="not valid XML"):
        LabelConfig.parse("<View><Labels>")


def test_labels_are_mapped_by_name_then_case_then_explicitly_and_the_rest_reported():
    mapping, unknown, unused = label_map(["PER", "LOC", "ORG", "DATE"], LabelConfig.parse(
        CONFIG).labels, {"PER": "Person"})
    assert mapping == {"PER": "Person", "LOC": "LOC", "ORG": "org"}
    assert unknown == ["DATE"] and unused == ["MISC"]
    with pytest.raises(BadRequest, match="no label 'Human'"):
        label_map(["PER"], ["Person"], {"PER": "Human"})


@pytest.fixture()
def backend(tagger, tmp_path):
    b = LabelStudioBackend(tagger, tmp_path / "work", {"PER": "Person"},
                           FitSettings(epochs=3, minutes=None, min_annotations=5))
    return b


def setup_body(project="7.1700000000"):
    return {"project": project, "schema": CONFIG, "hostname": "http://127.0.0.1:1",
            "access_token": "unused", "extra_params": None}


def test_predictions_are_gpners_spans_as_labels_results(backend, tagger):
    client = TestClient(create_app(backend))
    assert client.get("/health").json()["status"] == "UP"
    setup = client.post("/setup", json=setup_body()).json()
    assert setup["model_version"] == backend.version
    assert setup["config_labels_without_model_label"] == ["MISC"]
    texts = [r["text"] for r in tiny_data(12, 9)]
    tasks = [{"id": 100 + k, "data": {"content": t}, "project": 7} for k, t in enumerate(texts)]
    body = {"tasks": tasks, "project": "7.1700000000", "label_config": CONFIG,
            "params": {"login": None, "password": None, "context": None}}
    res = client.post("/predict", json=body)
    assert res.status_code == 200
    results = res.json()["results"]
    want = load(tagger).predict(texts)
    names = {"PER": "Person", "LOC": "LOC", "ORG": "org"}
    assert len(results) == len(tasks)
    spans = 0
    for text, pred, got in zip(texts, want, results, strict=True):
        labels = [x for x in got["result"] if x["type"] == "labels"]
        assert [(x["value"]["start"], x["value"]["end"], x["value"]["labels"][0], x["score"])
                for x in labels] == [(e["start"], e["end"], names[e["label"]], e["prob"])
                                     for e in pred["entities"]]
        for x in labels:
            assert x["value"]["text"] == text[x["value"]["start"]:x["value"]["end"]]
            assert (x["from_name"], x["to_name"]) == ("ner", "doc")
        assert got["score"] == (min(e["prob"] for e in pred["entities"])
                                if pred["entities"] else 1.0)
        assert got["model_version"] == backend.version
        spans += len(labels)
    assert spans > 0
    # without label_config, the project's /setup config is used
    body.pop("label_config")
    assert client.post("/predict", json=body).json()["results"] == results


def test_bad_requests_get_json_errors(backend):
    client = TestClient(create_app(backend), raise_server_exceptions=False)
    cases = [(client.post("/predict", content=b"{not json"), 400, "not JSON"),
             (client.post("/predict", json=[1, 2]), 400, "JSON object"),
             (client.post("/predict", json={"project": "1.1"}), 422, "'tasks'"),
             (client.post("/predict", json={"tasks": [{"id": 5, "data": {"text": "x"}}],
                                            "label_config": CONFIG}), 422,
              "task 0 (id 5): no text under data.content"),
             (client.post("/predict", json={"tasks": [], "project": "99.1"}), 422,
              "no /setup for project '99.1'"),
             (client.post("/setup", json={"project": "1.1", "schema": "<View/>"}), 422,
              "no <Labels> control")]
    for res, status, words in cases:
        assert res.status_code == status, res.text
        assert words in res.json()["error"]
        assert "Traceback" not in res.text


class FakeLabelStudio(http.server.ThreadingHTTPServer):
    """Label Studio's export route for one project, behind a token."""

    def __init__(self, tasks, token):
        self.tasks, self.token, self.calls = tasks, token, []
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802  a personal access token is exchanged for an access token
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls.append((self.path, body))
        if self.path != "/api/token/refresh" or body != {"refresh": self.server.token}:
            self.send_response(401)
            self.end_headers()
            return
        data = json.dumps({"access": "short-lived"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802  (http.server's name)
        self.server.calls.append((self.path, self.headers.get("Authorization")))
        want = ("Bearer short-lived" if self.server.token.count(".") == 2
                else f"Token {self.server.token}")
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.end_headers()
            return
        if not self.path.startswith("/api/projects/7/export?exportType=JSON"):
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(self.server.tasks).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def export_tasks(records):
    """Records as Label Studio's JSON export holds annotated tasks (config names: Person)."""
    names = {"PER": "Person", "LOC": "LOC", "ORG": "org"}
    tasks = []
    for k, r in enumerate(records):
        result = [{"id": f"r{n}", "from_name": "ner", "to_name": "doc", "type": "labels",
                   "value": {"start": e["start"], "end": e["end"],
                             "text": r["text"][e["start"]:e["end"]],
                             "labels": [names[e["label"]]]}}
                  for n, e in enumerate(r["entities"])]
        tasks.append({"id": k + 1, "data": {"content": r["text"]}, "project": 7,
                      "annotations": [{"id": k + 1, "result": result, "was_cancelled": False}],
                      "predictions": []})
    tasks.append({"id": 999, "data": {"content": "取消的任务。"}, "project": 7,
                  "annotations": [{"id": 999, "result": [], "was_cancelled": True}]})
    return tasks


def _fitted(client, backend, timeout=180):
    end = time.monotonic() + timeout
    while not backend.fits:
        assert time.monotonic() < end, "no fit finished"
        time.sleep(0.2)
    return backend.fits[-1]


@pytest.fixture(scope="module")
def weak_model(tmp_path_factory):
    """A model that has barely started (one epoch on 30 texts): any fit beats it. (Its
    settings are what fits train with, so its learning rate stays the usual one.)"""
    from helpers import tiny_config

    from gpner.training.trainer import train

    run = tmp_path_factory.mktemp("weak") / "run"
    train(tiny_data(30, 1), None, run, tiny_config(epochs=1), progress=False)
    return run / "model"


def test_a_fit_on_the_annotations_swaps_in_a_model_that_scores_as_well(weak_model, tmp_path,
                                                                      monkeypatch):
    server = FakeLabelStudio(export_tasks(tiny_data(120, 4)), "secret")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "secret")
    backend = LabelStudioBackend(weak_model, tmp_path / "work", {"PER": "Person"},
                                 FitSettings(epochs=8, minutes=None, min_annotations=5))
    client = TestClient(create_app(backend))
    client.post("/setup", json=setup_body())
    before = backend.version
    ignored = client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 7}})
    assert ignored.json()["status"] == "ignored"
    queued = client.post("/webhook", json={"action": "ANNOTATION_CREATED",
                                           "project": {"id": 7, "label_config": CONFIG},
                                           "annotation": {"id": 1}, "task": {"id": 1}})
    assert queued.json()["status"] == "queued"
    # /predict answers while the fit trains (in its own process)
    body = {"tasks": [{"id": 1, "data": {"content": "张伟在北京工作。"}}],
            "project": "7.1700000000"}
    res = client.post("/predict", json=body)
    assert res.status_code == 200 and res.json()["results"][0]["model_version"] == before
    fit = _fitted(client, backend)
    server.shutdown()
    assert server.calls and server.calls[0][1] == "Token secret"
    assert fit["annotated_tasks"] == 120  # the cancelled task is not training data
    assert fit["held_back"] + fit["trained_on"] == 120 and fit["held_back"] > 10
    assert fit["status"] == "swapped", fit
    assert fit["f1_new"] > 0.5 and fit["f1_new"] >= fit["f1_served"]
    assert backend.version != before and backend.version.endswith("-v1")
    after = client.post("/predict", json=body).json()["results"][0]
    assert after["model_version"] == backend.version
    # the new model speaks the config's names: Person needs no map any more
    assert {x["value"]["labels"][0] for x in after["result"]} <= {"Person", "LOC", "org"}
    assert client.get("/fits").json()[-1]["status"] == "swapped"


def test_a_fit_that_scores_worse_keeps_the_served_model(backend, monkeypatch):
    server = FakeLabelStudio(export_tasks(tiny_data(40, 4)), "secret")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "secret")
    # one epoch at a tiny learning rate: a model that finds nothing
    backend.fit_settings = FitSettings(epochs=1, minutes=None, min_annotations=5,
                                       settings=["lr=1e-6"])
    client = TestClient(create_app(backend))
    client.post("/setup", json=setup_body())
    before = backend.version
    client.post("/train", json={"project": "7.1700000000", "label_config": CONFIG})
    fit = _fitted(client, backend)
    server.shutdown()
    assert fit["status"] == "kept" and fit["f1_new"] < fit["f1_served"], fit
    assert backend.version == before


def test_a_fit_without_a_label_studio_to_ask_is_reported_not_crashed(backend, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    client = TestClient(create_app(backend))
    client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 3}})
    fit = _fitted(client, backend)
    assert fit["status"] == "failed" and "LABEL_STUDIO_URL" in fit["error"]
    assert client.get("/health").json()["status"] == "UP"


def test_a_personal_access_token_is_exchanged_and_sent_as_bearer(backend, monkeypatch):
    pat = "header.payload.signature"  # a JWT's shape: Label Studio >= 1.17's access tokens
    server = FakeLabelStudio(export_tasks(tiny_data(3, 4)), pat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", pat)
    tasks = backend.fetch("7.1700000000")
    server.shutdown()
    assert len(tasks) == 3  # the cancelled one left out
    assert server.calls[0] == ("/api/token/refresh", {"refresh": pat})
    assert server.calls[1][1] == "Bearer short-lived"


def test_relations_become_relation_results_between_the_span_results():
    from gpner.serving.labelstudio import task_prediction

    cfg = LabelConfig.parse(CONFIG)
    record = {"text": "张伟在西安银行工作。",
              "entities": [{"start": 0, "end": 2, "label": "PER", "prob": 0.9},
                           {"start": 3, "end": 7, "label": "ORG", "prob": 0.7},
                           {"start": 3, "end": 5, "label": "DATE", "prob": 0.6}],
              "relations": [{"head": 0, "tail": 1, "label": "works_at", "prob": 0.8},
                            {"head": 0, "tail": 2, "label": "works_at", "prob": 0.5}]}
    pred = task_prediction(record, cfg, {"PER": "Person", "ORG": "org"}, "v")
    spans = [x for x in pred["result"] if x["type"] == "labels"]
    rels = [x for x in pred["result"] if x["type"] == "relation"]
    assert [(x["id"], x["value"]["labels"]) for x in spans] == [("gp0", ["Person"]),
                                                                 ("gp1", ["org"])]
    # the relation to an entity the config cannot name is left out with it
    assert rels == [{"from_id": "gp0", "to_id": "gp1", "type": "relation", "direction": "right",
                     "labels": ["works_at"], "score": 0.8}]
    assert pred["score"] == 0.7 and pred["model_version"] == "v"
