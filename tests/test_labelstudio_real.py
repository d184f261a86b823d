"""gpner's ML backend against a real Label Studio (slow: `make test-slow` installs Label Studio
in its own environment, .venv-ls, and runs this).

Label Studio runs on 127.0.0.1 with SQLite in a temporary data directory; the test creates a
project with a NER labeling config through its REST API, imports tasks, connects the running
`gpner label-studio` backend, asks Label Studio for predictions and checks what it stored
(offsets, labels, scores) against `gpner predict`; then submits annotations as an annotator
would, and checks that the backend fits, swaps in the new model and that the next predictions
Label Studio stores come from it. With GPNER_SCREENSHOT=PATH it also saves a screenshot of a
task with gpner's pre-annotations (headless Chromium), as docs/annotation.md shows.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import tiny_config, tiny_data

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "0123456789abcdef0123456789abcdef01234567"
USER, PASSWORD = "annotator@example.com", "gpner-test-1234"
CONFIG = """<View>
  <Labels name="ner" toName="doc">
    <Label value="Person" background="#ff8a80"/>
    <Label value="LOC" background="#ffd180"/>
    <Label value="ORG" background="#82b1ff"/>
  </Labels>
  <Text name="doc" value="$content"/>
</View>"""


def label_studio_exe() -> str | None:
    for cand in (os.environ.get("GPNER_LABEL_STUDIO"), ROOT / ".venv-ls" / "bin" / "label-studio",
                 shutil.which("label-studio")):
        if cand and Path(cand).exists():
            return str(cand)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"{url}: the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(1)
    raise AssertionError(f"{url}: not up after {timeout} s")


class LabelStudio:
    def __init__(self, url: str):
        self.url = url

    def call(self, method: str, path: str, body=None):
        req = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as resp:
            text = resp.read().decode()
        return json.loads(text) if text else None

    def tasks(self, project: int) -> list[dict]:
        return self.call("GET", f"/api/tasks?project={project}&fields=all&page_size=1000")["tasks"]

    def retrieve_predictions(self, project: int) -> dict:
        return self.call("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project="
                         f"{project}", {"selectedItems": {"all": True, "excluded": []}})


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    exe = label_studio_exe()
    if exe is None:
        pytest.skip("Label Studio is not installed: `make test-slow` installs it in .venv-ls "
                    "(or set GPNER_LABEL_STUDIO to its label-studio executable)")
    data = tmp_path_factory.mktemp("label-studio")
    port = free_port()
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data),
           # a backend on 127.0.0.1, and the legacy token the backend and this test use
           "ML_BLOCK_LOCAL_IP": "false", "SSRF_PROTECTION_ENABLED": "false",
           "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", "OMP_NUM_THREADS": "1"}
    log = open(data / "label-studio.log", "w")
    proc = subprocess.Popen([exe, "start", "-b", "-p", str(port), "--internal-host", "127.0.0.1",
                             "--data-dir", str(data), "--username", USER, "--password",
                             PASSWORD, "--user-token", TOKEN], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/health", proc)
        yield LabelStudio(url)
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()


@pytest.fixture(scope="module")
def weak_model(tmp_path_factory):
    from gpner.training.trainer import train

    run = tmp_path_factory.mktemp("weak") / "run"
    train(tiny_data(30, 1), None, run, tiny_config(epochs=1), progress=False)
    return run / "model"


def predictions_of(task: dict, version: str) -> list[dict]:
    return [p for p in task["predictions"] if p["model_version"] == version]


def test_label_studio_stores_gpners_predictions_and_fits_on_its_annotations(
        label_studio, weak_model, tmp_path):
    from gpner.prediction.loading import load

    ls = label_studio
    project = ls.call("POST", "/api/projects", {"title": "gpner NER", "label_config": CONFIG})
    pid = project["id"]
    records = tiny_data(60, 4)
    ls.call("POST", f"/api/projects/{pid}/import", [{"content": r["text"]} for r in records])
    port = free_port()
    backend = subprocess.Popen(
        [sys.executable, "-m", "gpner.cli", "label-studio", str(weak_model), "--port",
         str(port), "--workdir", str(tmp_path / "work"), "--label-map", "PER=Person",
         "--min-annotations", "40", "--fit-epochs", "10", "--fit-minutes", "5"],
        env={**os.environ, "LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": TOKEN},
        stdout=open(tmp_path / "backend.log", "w"), stderr=subprocess.STDOUT)
    backend_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(backend_url + "/health", backend, 120)
        ml = ls.call("POST", "/api/ml", {"url": backend_url, "project": pid, "title": "gpner"})
        assert ml["readable_state"] == "Connected", ml
        v0 = ml["model_version"]
        assert v0.endswith("-v0")
        assert ls.retrieve_predictions(pid)["processed_items"] == len(records)
        tasks = ls.tasks(pid)
        want = load(weak_model).predict([t["data"]["content"] for t in tasks])
        names = {"PER": "Person", "LOC": "LOC", "ORG": "ORG"}
        stored = 0
        for task, pred in zip(tasks, want, strict=True):
            (p,) = predictions_of(task, v0)
            got = [(x["value"]["start"], x["value"]["end"], x["value"]["labels"][0], x["score"])
                   for x in p["result"]]
            assert got == [(e["start"], e["end"], names[e["label"]], e["prob"])
                           for e in pred["entities"]]
            for x in p["result"]:
                text = task["data"]["content"]
                assert x["value"]["text"] == text[x["value"]["start"]:x["value"]["end"]]
            stored += len(got)
        assert stored > 0  # a barely trained model still proposes spans
        if os.environ.get("GPNER_SCREENSHOT"):
            screenshot(ls.url, pid, tasks[0]["id"], Path(os.environ["GPNER_SCREENSHOT"]))

        # an annotator labels 45 tasks; each annotation fires the backend's webhook
        by_text = {r["text"]: r for r in records}
        for task in tasks[:45]:
            rec = by_text[task["data"]["content"]]
            result = [{"id": f"a{k}", "from_name": "ner", "to_name": "doc", "type": "labels",
                       "value": {"start": e["start"], "end": e["end"],
                                 "text": rec["text"][e["start"]:e["end"]],
                                 "labels": [names[e["label"]]]}}
                      for k, e in enumerate(rec["entities"])]
            ls.call("POST", f"/api/tasks/{task['id']}/annotations",
                    {"result": result, "was_cancelled": False})
        end = time.monotonic() + 600
        while True:
            with urllib.request.urlopen(backend_url + "/fits", timeout=10) as resp:
                fits = json.loads(resp.read())
            done = [f for f in fits if f.get("annotated_tasks") == 45
                    and f["status"] in ("swapped", "kept", "failed")]
            if done:
                break
            assert time.monotonic() < end, f"no fit on all 45 annotations: {fits}"
            time.sleep(2)
        fit = done[-1]
        assert fit["status"] == "swapped", fit
        assert fit["f1_new"] >= fit["f1_served"]
        v1 = fit["model_version"]
        assert v1 != v0
        # Label Studio asks again: the new model answers, and its predictions are stored
        ls.retrieve_predictions(pid)
        tasks = ls.tasks(pid)
        fresh = [predictions_of(t, v1) for t in tasks]
        assert all(len(p) == 1 for p in fresh)
        assert sum(len(p[0]["result"]) for p in fresh) > 0
    finally:
        backend.terminate()
        backend.wait(30)


def screenshot(url: str, project: int, task: int, path: Path) -> None:
    """Log in as the annotator and save the task's labeling page with the pre-annotations."""
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,760"]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService("/usr/bin/chromedriver"))
    try:
        driver.get(f"{url}/user/login")
        driver.find_element(By.NAME, "email").send_keys(USER)
        driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
        time.sleep(3)
        driver.get(f"{url}/projects/{project}/data?tab=0&task={task}")
        WebDriverWait(driver, 60).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "[class*='htx-highlight'], "
                                                       "[class*='htx-text']"))
        time.sleep(4)  # the regions finish drawing
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
    finally:
        driver.quit()
