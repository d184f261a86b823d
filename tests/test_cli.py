"""``gpner convert`` through the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def gpner(*args, cwd=None):
    exe = shutil.which("gpner") or str(Path(sys.executable).parent / "gpner")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_convert_cluener_to_jsonl_and_bio(tmp_path):
    src = tmp_path / "train.json"
    src.write_text(json.dumps({"text": "浙商银行的叶老桂", "label": {
        "company": {"浙商银行": [[0, 3]]}, "name": {"叶老桂": [[5, 7]], "叶": [[0, 0]]}}},
        ensure_ascii=False) + "\n", encoding="utf-8")
    res = gpner("convert", src, "-o", tmp_path / "train.jsonl")
    assert res.returncode == 0, res.stderr
    assert "1 records, 2 entities" in res.stderr and "1 mention mismatch" in res.stderr
    assert f"{src}:1: mention mismatch" in res.stderr
    line = json.loads((tmp_path / "train.jsonl").read_text(encoding="utf-8"))
    assert line == {"text": "浙商银行的叶老桂", "entities": [
        {"start": 0, "end": 4, "label": "company"}, {"start": 5, "end": 8, "label": "name"}]}
    res = gpner("convert", tmp_path / "train.jsonl", "-o", tmp_path / "train.bio",
                "--scheme", "bioes")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "train.bio").read_text(encoding="utf-8").split("\n")[:2] == \
        ["浙 B-company", "商 I-company"]


def test_convert_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{oops\n', encoding="utf-8")
    res = gpner("convert", bad, "-o", tmp_path / "x.jsonl")
    assert res.returncode == 2
    assert f"{bad}:2: invalid JSON" in res.stderr
    res = gpner("convert", tmp_path / "nope.json", "-o", tmp_path / "x.jsonl")
    assert res.returncode == 2 and "no such file" in res.stderr
    nested = tmp_path / "n.jsonl"
    nested.write_text(json.dumps({"text": "abcd", "entities": [
        {"start": 0, "end": 4, "label": "A"}, {"start": 1, "end": 2, "label": "B"}]}) + "\n")
    res = gpner("convert", nested, "-o", tmp_path / "n.bio")
    assert res.returncode == 2 and "nested" in res.stderr
    assert not (tmp_path / "n.bio").exists()  # nothing half-written


def test_import_is_light():
    code = "import sys, gpner; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False"
