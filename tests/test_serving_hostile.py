"""The service under hostile input: lone surrogates and deep nesting are 4xx (never a 500 with
the exception), unexpected 500s are counted in /metrics without details in the body, the
threshold is bounded and entities per text capped, an API key is required when set (compared in
constant time, /health open), /docs works offline, and connections that never finish their
headers or body are closed."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
from test_serving import client_for  # noqa: E402

from gpner.prediction.loading import load  # noqa: E402


@pytest.fixture(scope="module")
def plain(nested_model_dir):
    return load(nested_model_dir, device="cpu")


@pytest.fixture(scope="module")
def client(plain):
    c = client_for(plain, model="tiny", max_entities=3)
    yield c
    c.__exit__(None, None, None)


@pytest.mark.parametrize("body, status, words", [
    (b'{"text": "abc\\ud800def"}', 422, "lone surrogate (U+D800) at character 3"),
    (b'{"texts": ["ok", "\\udfff"]}', 422, "text 1 holds a lone surrogate"),
    (b'{"text": "ok", "labels": ["\\ud800"]}', 422, "a label holds a lone surrogate"),
    (b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nested too deeply"),
    (b'{"text": "ok", "threshold": -1e308}', 422, "from -20 to 20"),
    (b'{"text": "ok", "threshold": 21}', 422, "from -20 to 20"),
])
def test_hostile_bodies_are_4xx_json(client, body, status, words):
    r = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert words in r.json()["error"], r.json()


def test_entities_per_text_are_capped_highest_scores_kept(client, plain):
    text = "张伟在北京大学工作，李娜住在上海，王芳去了杭州。"
    full = plain.predict(text, threshold=-20.0)["entities"]
    assert len(full) > 3  # the oracle: the uncapped prediction at the same threshold
    r = client.post("/predict", json={"text": text, "threshold": -20})
    got = r.json()["results"][0]
    assert got["truncated"] is True and len(got["entities"]) == 3
    best = sorted(full, key=lambda e: -e["score"])[:3]
    assert sorted((e["start"], e["end"], e["label"]) for e in got["entities"]) == \
        sorted((e["start"], e["end"], e["label"]) for e in best)
    assert [e["start"] for e in got["entities"]] == sorted(e["start"] for e in got["entities"])
    r = client.post("/predict", json={"text": "张伟"})
    assert "truncated" not in r.json()["results"][0]


def test_an_unexpected_500_is_counted_and_keeps_its_details_in_the_log(plain, caplog):
    from fastapi.testclient import TestClient

    from gpner.serving.app import ServeSettings, create_app

    c = TestClient(create_app(ServeSettings(model="tiny"), plain), raise_server_exceptions=False)
    c.__enter__()
    try:
        for _ in range(200):
            if c.get("/health").status_code == 200:
                break
            time.sleep(0.01)
        def boom(*a, **k):
            raise RuntimeError("secret internals")

        c.app.state.gpner.info = boom  # /info fails in a way no check foresaw
        r = c.get("/info")
        assert r.status_code == 500 and r.json()["error_type"] == "internal"
        assert "secret" not in r.text
        metrics = c.get("/metrics").text
        assert 'gpner_requests_total{path="/info",status="500"} 1.0' in metrics
        assert "secret internals" in caplog.text  # the server log has it
    finally:
        c.__exit__(None, None, None)


def test_an_api_key_is_required_when_set(plain):
    c = client_for(plain, model="tiny", api_key="s3cret")
    try:
        assert c.get("/health").status_code == 200  # probes need no key
        r = c.post("/predict", json={"text": "张伟"})
        assert r.status_code == 401 and r.json()["error_type"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        assert c.post("/predict", json={"text": "张伟"},
                      headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/predict", json={"text": "张伟"},
                      headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.post("/predict", json={"text": "张伟"},
                      headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/info").status_code == 401 and c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"X-API-Key": "s3cret"}).status_code == 200
    finally:
        c.__exit__(None, None, None)


def test_docs_work_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "/docs-assets/swagger-ui-bundle.js" in page.text
    js = client.get("/docs-assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200


def test_half_open_connections_are_closed(nested_model_dir, tmp_path, monkeypatch):
    """A real uvicorn with gpner's protocol: a client that never finishes its headers, and one
    that never finishes its body, are cut off after the timeouts; a normal request still works."""
    import uvicorn

    from gpner.serving.app import ENV, ServeSettings, create_app

    settings = ServeSettings(model=str(nested_model_dir), header_timeout_s=0.5,
                             body_timeout_s=0.5)
    monkeypatch.setenv(ENV, settings.to_env())
    app = create_app(settings)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            http="gpner.serving.timeouts:TimedH11Protocol")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(300):
            if server.started:
                break
            time.sleep(0.05)

        def closed_after(payload: bytes) -> float:
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(payload)
            s.settimeout(5)
            t0 = time.perf_counter()
            while s.recv(1024):  # read until the server closes
                pass
            s.close()
            return time.perf_counter() - t0

        assert closed_after(b"POST /predict HTTP/1.1\r\nHost: x\r\n") < 3  # headers unfinished
        assert closed_after(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
                            b"application/json\r\nContent-Length: 100\r\n\r\n{\"te") < 3
        import httpx

        for _ in range(100):
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                break
            time.sleep(0.05)
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json={"text": "张伟在北京"})
        assert r.status_code == 200 and json.loads(r.text)["results"]
    finally:
        server.should_exit = True
        thread.join(10)
