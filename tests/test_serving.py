"""The HTTP service: answers equal the predictor's (the oracle), every error is a JSON body with
the documented status and type, limits answer before any work, a full queue says 429 with
Retry-After, a failing batch fails its own requests only, metrics count what happened, and
SIGTERM lets the request in flight finish."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from test_microbatch import TEXTS, Recording, _token_id, assert_same  # noqa: E402

from gpner.prediction.loading import load  # noqa: E402
from gpner.prediction.predictor import Predictor
from gpner.serving.app import ServeSettings, create_app  # noqa: E402


@pytest.fixture(scope="module")
def plain(nested_model_dir):
    return load(nested_model_dir, device="cpu")


def client_for(predictor, **settings):
    client = TestClient(create_app(ServeSettings(**settings), predictor))
    client.__enter__()
    for _ in range(200):  # the model "loads" in the background
        if client.get("/health").status_code == 200:
            return client
        time.sleep(0.01)
    raise AssertionError("never ready")


@pytest.fixture(scope="module")
def client(plain):
    c = client_for(plain, model="tiny", max_texts=4, max_text_chars=2000, max_body_bytes=20_000)
    yield c
    c.__exit__(None, None, None)


def test_predict_answers_what_the_predictor_gives(client, plain):
    r = client.post("/predict", json={"text": TEXTS[0]})
    assert r.status_code == 200
    assert_same(r.json()["results"], [plain.predict(TEXTS[0])])
    ents = r.json()["results"][0]["entities"]
    assert {(e["start"], e["end"], e["label"]) for e in ents} >= {(3, 7, "ORG"), (3, 5, "LOC")}
    r = client.post("/predict", json={"texts": TEXTS[:3], "threshold": 2.0, "flat": True})
    assert_same(r.json()["results"], plain.predict(TEXTS[:3], threshold=2.0, flat=True))
    r = client.post("/predict", json={"texts": TEXTS[:2], "labels": ["LOC"]})
    want = plain.predict(TEXTS[:2])
    for w in want:
        w["entities"] = [e for e in w["entities"] if e["label"] == "LOC"]
    assert_same(r.json()["results"], want)
    assert all(w["entities"] for w in want)


def test_a_long_text_within_the_limit_is_windowed_not_truncated(client, plain):
    text = "李娜是上海银行的研究员，住在杭州。" * 100  # 1,700 characters, several windows
    r = client.post("/predict", json={"text": text})
    assert r.status_code == 200
    assert_same(r.json()["results"], [plain.predict(text)])
    assert max(e["end"] for e in r.json()["results"][0]["entities"]) > 1600


@pytest.mark.parametrize("body, status, kind, words", [
    (b"{oops", 400, "malformed_json", "not valid JSON"),
    (b"\xff\xfe", 400, "malformed_json", "not valid JSON"),
    (b"[1, 2]", 422, "validation", "JSON object"),
    (b"{}", 422, "validation", '"text"'),
    (b'{"texts": []}', 422, "validation", "empty"),
    (b'{"text": "   "}', 422, "validation", "text 0 is empty"),
    (b'{"text": 5}', 422, "validation", "text: Input should be a valid string"),
    (b'{"texts": ["a", 3]}', 422, "validation", "texts.1"),
    (b'{"text": "a", "texts": ["b"]}', 422, "validation", "not both"),
    (b'{"text": "a", "flat": "yes"}', 422, "validation", "flat"),
    (b'{"text": "a", "threshold": "0.5"}', 422, "validation", "threshold"),
    (b'{"text": "a", "threshold": NaN}', 422, "validation", "threshold"),
    (b'{"text": "a", "labels": ["LOC", "DATE"]}', 422, "validation", "unknown labels ['DATE']"),
    (b'{"text": "a", "colour": 1}', 422, "validation", "colour"),
    (b'{"texts": ["a", "b", "c", "d", "e"]}', 413, "too_large", "5 texts; the limit is 4"),
    (json.dumps({"text": "x" * 2001}).encode(), 413, "too_large", "2001 characters"),
    (json.dumps({"text": "x" * 30_000}).encode(), 413, "too_large", "the limit is 20000"),
])
def test_errors_are_json_with_status_and_type(client, body, status, kind, words):
    r = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error_type"] == kind and words in r.json()["error"], r.json()
    assert set(r.json()) == {"error", "error_type"}


def test_a_body_without_a_length_is_refused_once_it_passes_the_limit(client):
    def chunks():  # chunked transfer: no Content-Length to refuse it by
        for _ in range(100):
            yield b" " * 1000
        yield b'{"text": "a"}'

    r = client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["error_type"]) == (413, "too_large")
    assert "more than 20000 bytes" in r.json()["error"]


def test_unknown_paths_and_methods_are_json_errors(client):
    r = client.get("/nope")
    assert (r.status_code, r.json()["error_type"]) == (404, "not_found")
    r = client.get("/predict")
    assert (r.status_code, r.json()["error_type"]) == (405, "method_not_allowed")


def test_health_info_openapi_and_page(client, plain):
    assert client.get("/health").json() == {"status": "ready"}
    info = client.get("/info").json()
    assert info["labels"] == plain.labels == ["LOC", "ORG", "PER"]
    assert (info["head"], info["encoder"]["type"], info["max_length"]) == (
        plain.config.head, "builtin", plain.config.max_length)
    assert info["limits"]["max_texts"] == 4 and info["version"]
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["schema"]["properties"]) == {"text", "texts", "threshold", "flat", "labels"}
    assert {"413", "422", "429"} <= set(spec["paths"]["/predict"]["post"]["responses"])
    assert "swagger" in client.get("/docs").text.lower()
    page = client.get("/").text
    assert "gpnerDraw" in page and "http://" not in page and "https://" not in page  # offline


def test_health_is_ready_only_once_the_model_is_loaded(plain, monkeypatch):
    import gpner.prediction.loading

    loaded = threading.Event()

    def slow_load(*args, **kwargs):
        assert loaded.wait(20)
        return plain

    monkeypatch.setattr(gpner.prediction.loading, "load", slow_load)
    with TestClient(create_app(ServeSettings(model="tiny"))) as c:
        r = c.get("/health")
        assert (r.status_code, r.json()) == (503, {"status": "loading"})
        r = c.post("/predict", json={"text": "a"})
        assert (r.status_code, r.json()["error_type"]) == (503, "not_ready")
        assert r.headers["Retry-After"] == "1" and "still loading" in r.json()["error"]
        assert c.get("/info").status_code == 503
        loaded.set()
        for _ in range(500):
            if c.get("/health").status_code == 200:
                break
            time.sleep(0.01)
        assert c.get("/health").json() == {"status": "ready"}
        assert c.post("/predict", json={"text": TEXTS[0]}).status_code == 200


def test_health_says_when_the_model_failed_to_load(tmp_path):
    with TestClient(create_app(ServeSettings(model=str(tmp_path / "none")))) as c:
        for _ in range(200):
            r = c.get("/health")
            if r.json()["status"] != "loading":
                break
            time.sleep(0.01)
        assert r.status_code == 503 and r.json()["status"] == "failed"
        assert "E201" in r.json()["error"] and "no such model directory" in r.json()["error"]
        r = c.post("/predict", json={"text": "a"})
        assert (r.status_code, r.json()["error_type"]) == (503, "not_ready")


def test_a_full_queue_answers_429_and_a_failed_batch_500_for_its_requests_only(plain):
    rec = Recording(plain.backend, next(k for k in plain.featurizer.collate(
        [plain.featurizer.window("a", plain.featurizer.encode("a"), 0, 1)]) if "id" in k))
    predictor = Predictor(plain.config, plain.featurizer, plain.task, rec)
    c = client_for(predictor, model="tiny", max_queue=2, max_wait_ms=0)
    try:
        rec.gate = threading.Event()
        rec.entered.clear()
        answers: dict[int, httpx.Response] = {}

        def post(k):
            answers[k] = c.post("/predict", json={"text": TEXTS[k]})

        first = threading.Thread(target=post, args=(0,))
        first.start()
        assert rec.entered.wait(10)  # request 0 is in the model, held
        waiting = [threading.Thread(target=post, args=(k,)) for k in (1, 2)]
        for t in waiting:
            t.start()
        batcher = c.app.state.gpner.batcher
        for _ in range(500):
            if batcher._queue.qsize() == 2:
                break
            time.sleep(0.01)
        r = c.post("/predict", json={"text": TEXTS[3]})
        assert r.status_code == 429 and r.json()["error_type"] == "overloaded"
        assert r.headers["Retry-After"] == "1"
        rec.gate.set()
        for t in [first, *waiting]:
            t.join(20)
        assert [answers[k].status_code for k in (0, 1, 2)] == [200, 200, 200]
        for k in (0, 1, 2):
            assert_same(answers[k].json()["results"], [plain.predict(TEXTS[k])])

        rec.gate = None
        rec.fail_id = _token_id(plain, "炸")
        r = c.post("/predict", json={"texts": ["炸" + TEXTS[0]]})
        assert r.status_code == 500 and r.json()["error_type"] == "model_error"
        assert "planted" in r.json()["error"]
        rec.fail_id = None
        assert c.get("/health").json() == {"status": "ready"}  # still up
        assert c.post("/predict", json={"text": TEXTS[0]}).status_code == 200

        metrics = c.get("/metrics").text
        for line in ['gpner_requests_total{path="/predict",status="200"} 4.0',
                     'gpner_requests_total{path="/predict",status="429"} 1.0',
                     'gpner_requests_total{path="/predict",status="500"} 1.0',
                     'gpner_errors_total{error_type="overloaded"} 1.0',
                     'gpner_errors_total{error_type="model_error"} 1.0',
                     "gpner_request_latency_seconds_count 6.0",
                     "gpner_queue_depth 0.0", "gpner_texts_total 4.0"]:
            assert line in metrics, line
        # 0 alone, then 1 and 2 together (queued behind it), the failure, the last: 4 batches
        assert "gpner_batch_requests_count 4.0" in metrics
        assert "gpner_batch_requests_sum 5.0" in metrics
    finally:
        c.__exit__(None, None, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*args: str, **popen) -> tuple[subprocess.Popen, str]:
    """`gpner serve ARGS` on a free port, once /health says ready: (process, base URL)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gpner.cli", "serve", *args, "--port",
                             str(port)], env={**os.environ, "PYTHONUNBUFFERED": "1"}, **popen)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"the server never got ready: {proc.communicate()}")


def test_sigterm_finishes_the_request_in_flight(nested_model_dir):
    proc, url = start_server(str(nested_model_dir), "--max-text-chars", "200000",
                             "--max-body-bytes", "10000000", stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        big = ["张伟在北京大学工作。Alice Johnson works at the Bank of London . " * 800] * 4
        answer: dict = {}

        def post():
            answer["r"] = httpx.post(f"{url}/predict", json={"texts": big}, timeout=120)

        t = threading.Thread(target=post)
        t.start()
        for _ in range(200):  # until the request is in a batch
            m = httpx.get(f"{url}/metrics").text
            if "gpner_running_requests 1.0" in m:
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the request never reached the model")
        proc.send_signal(signal.SIGTERM)
        t.join(120)
        assert answer["r"].status_code == 200
        results = answer["r"].json()["results"]
        assert len(results) == 4 and len(results[0]["entities"]) > 1000
        # uvicorn shuts down cleanly, then re-raises the signal so the exit status tells it
        assert proc.wait(60) in (0, -signal.SIGTERM)
        log = proc.stdout.read()
        assert "Shutting down" in log and "Finished server process" in log, log
        assert "Traceback" not in log and "ERROR" not in log, log
    finally:
        if proc.poll() is None:
            proc.kill()


def post_when_ready(url: str, body: dict, seconds: float = 60.0):
    """POST; while the worker that answers is still loading its model (503 not_ready: the
    server's health said ready once, but that was another worker), try again."""
    deadline = time.time() + seconds
    while True:
        r = httpx.post(url, json=body)
        if r.status_code != 503 or r.json().get("error_type") != "not_ready" \
                or time.time() > deadline:
            return r
        time.sleep(0.2)


def test_workers_are_processes_that_each_load_the_model(nested_model_dir, plain):
    proc, url = start_server(str(nested_model_dir), "--workers", "2", "--max-texts", "8",
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        assert len(children) >= 2, children  # uvicorn's worker processes
        for _ in range(3):
            for k in range(4):  # new connections, which the kernel spreads over the workers
                r = post_when_ready(f"{url}/predict", {"text": TEXTS[k]})
                assert r.status_code == 200, r.text
                assert_same(r.json()["results"], [plain.predict(TEXTS[k])])
        info = httpx.get(f"{url}/info").json()
        assert info["limits"]["max_texts"] == 8  # the settings reached the worker processes
    finally:
        proc.terminate()
        proc.wait(30)
