"""The web page and `gpner render` in a real browser: headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium) types a text with a nested entity, submits it, and the
test reads the drawing back from the DOM: one underline per entity over exactly its characters,
nested entities on different levels, a label tag and a table row each. Screenshots go to the
test's temporary folder (and to $GPNER_SCREENSHOTS when set, for the docs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
NESTED = "张伟在北京大学工作。"

if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
    if os.environ.get("GPNER_REQUIRE_BROWSER"):  # .ci/run installs one: a skip would hide it
        raise RuntimeError(f"GPNER_REQUIRE_BROWSER is set but {CHROMIUM} or {DRIVER} is missing")
    pytest.skip(f"no browser: {CHROMIUM} and {DRIVER} come from Debian's chromium and "
                "chromium-driver packages (.ci/run installs them)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from test_serving import start_server  # noqa: E402


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--window-size=1100,800",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        opts.add_argument(flag)
    # the driver from Debian: Selenium Manager would try to download one
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(DRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(nested_model_dir):
    proc, url = start_server(str(nested_model_dir), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    yield url
    proc.terminate()
    proc.wait(30)


def screenshot(browser, tmp_path, name):
    path = tmp_path / name
    browser.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    if os.environ.get("GPNER_SCREENSHOTS"):
        shutil.copy(path, Path(os.environ["GPNER_SCREENSHOTS"]) / name)


def drawn(browser) -> dict:
    """Per entity drawn: label, level, and the characters its line segments cover."""
    lines = browser.execute_script("""
        return [...document.querySelectorAll('#result .gp-line')].map(l => ({
          k: l.dataset.entity, label: l.dataset.label, level: l.dataset.level,
          start: +l.parentElement.dataset.start, end: +l.parentElement.dataset.end,
          h: l.getBoundingClientRect().height, w: l.getBoundingClientRect().width}));""")
    out: dict = {}
    for ln in lines:
        assert ln["h"] > 0 and ln["w"] > 0  # visible, not only in the DOM
        e = out.setdefault(ln["k"], {"label": ln["label"], "levels": set(), "chars": set()})
        e["levels"].add(ln["level"])
        e["chars"].update(range(ln["start"], ln["end"]))
    return out


def test_the_page_draws_nested_entities_as_stacked_labelled_underlines(browser, server,
                                                                        tmp_path):
    want = httpx.post(f"{server}/predict", json={"text": NESTED}).json()["results"][0]
    assert {(e["start"], e["end"], e["label"]) for e in want["entities"]} >= {
        (3, 7, "ORG"), (3, 5, "LOC")}
    browser.get(server + "/")
    wait = WebDriverWait(browser, 20)
    wait.until(lambda b: "labels" in b.find_element(By.ID, "model").text)
    assert [k.text for k in browser.find_elements(By.CSS_SELECTOR, "#legend .gp-key")] == [
        "LOC", "ORG", "PER"]
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys(NESTED)
    browser.find_element(By.ID, "submit").click()
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#result .gp-line"))

    got = drawn(browser)
    assert sorted((min(e["chars"]), max(e["chars"]) + 1, e["label"]) for e in got.values()) == \
        sorted((e["start"], e["end"], e["label"]) for e in want["entities"])
    for e in got.values():  # each entity's line is one level along its whole length
        assert len(e["levels"]) == 1 and e["chars"] == set(range(min(e["chars"]),
                                                                max(e["chars"]) + 1))
    org = next(e for e in got.values() if e["label"] == "ORG")
    loc = next(e for e in got.values() if e["label"] == "LOC" and 3 in e["chars"])
    assert org["levels"] != loc["levels"]  # stacked, not drawn over each other
    colours = browser.execute_script("""return Object.fromEntries([...document.querySelectorAll(
        '#result .gp-line')].map(l => [l.dataset.label, getComputedStyle(l).backgroundColor]));""")
    assert len(set(colours.values())) == len(colours)  # a colour per label
    tags = browser.find_elements(By.CSS_SELECTOR, "#result .gp-tag")
    assert sorted(t.text for t in tags) == sorted(e["label"] for e in want["entities"])
    assert all("score" in t.get_attribute("title") for t in tags)  # the score on hover
    rows = browser.find_elements(By.CSS_SELECTOR, "#result table.gp-spans tr")[1:]
    assert len(rows) == len(want["entities"])
    cells = [[c.text for c in r.find_elements(By.TAG_NAME, "td")] for r in rows]
    assert {(c[1], int(c[2]), int(c[3]), c[4]) for c in cells} == {
        (e["label"], e["start"], e["end"], e["text"]) for e in want["entities"]}
    screenshot(browser, tmp_path, "serve_page.png")

    browser.find_element(By.ID, "flat").click()  # flat: nothing overlaps, one level
    browser.find_element(By.ID, "submit").click()
    flat = httpx.post(f"{server}/predict", json={"text": NESTED, "flat": True}).json()
    n = len(flat["results"][0]["entities"])
    rows = "#result table.gp-spans tr"
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, rows)) == n + 1)
    assert {lv for e in drawn(browser).values() for lv in e["levels"]} == {"0"}


def test_the_page_shows_the_services_errors(browser, server):
    browser.get(server + "/")
    WebDriverWait(browser, 20).until(lambda b: "labels" in b.find_element(By.ID, "model").text)
    browser.find_element(By.ID, "text").clear()
    browser.find_element(By.ID, "submit").click()  # an empty text: 422
    WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "error").text)
    assert "422 validation: text 0 is empty" in browser.find_element(By.ID, "error").text


def test_render_compare_page_marks_missing_and_spurious(browser, nested_model_dir, tmp_path):
    data = tmp_path / "gold.jsonl"
    recs = [{"text": NESTED, "entities": [{"start": 0, "end": 2, "label": "PER"},
                                         {"start": 3, "end": 7, "label": "ORG"}]},  # no LOC
            {"text": "今天天气很好。</script><b>x</b>", "entities": [
                {"start": 0, "end": 2, "label": "PER"}]}]  # a wrong gold entity
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    page = tmp_path / "page.html"
    r = subprocess.run([sys.executable, "-m", "gpner.cli", "render", str(nested_model_dir),
                        str(data), "--compare", "-o", str(page)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    browser.get(page.as_uri())
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".gp-pair"))
    assert len(browser.find_elements(By.CSS_SELECTOR, ".gp-record")) == 2
    status = browser.execute_script("""return [...document.querySelectorAll('.gp-record')].map(
        r => [...r.querySelectorAll('.gp-line')].map(l => [l.closest('.gp-side').className,
        l.dataset.label, +l.parentElement.dataset.start, l.className]));""")
    first = {(side.split()[-1], label, start, "gp-missing" in cls, "gp-spurious" in cls)
             for side, label, start, cls in status[0]}
    assert ("gp-predicted", "LOC", 3, False, True) in first  # predicted, not in gold
    assert ("gp-gold", "ORG", 3, False, False) in first  # found: neither mark
    second = {(side.split()[-1], label, start, "gp-missing" in cls)
              for side, label, start, cls in status[1]}
    assert ("gp-gold", "PER", 0, True) in second  # gold only: missing
    # the text came through as text, not markup
    assert "</script><b>x</b>" in browser.find_elements(By.CSS_SELECTOR, ".gp-text")[2].text
    screenshot(browser, tmp_path, "render_compare.png")
