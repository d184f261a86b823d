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


def test_convert_refuses_or_drops_relations(tmp_path):
    """Relation data converted to a format without relations: refused with a way out, or with
    --drop-relations the entities alone and a line saying what was dropped."""
    from gpner.data.formats import read

    rel = {"text": "Alice works for Acme", "entities": [
        {"start": 0, "end": 5, "label": "PER"}, {"start": 16, "end": 20, "label": "ORG"}],
        "relations": [{"head": 0, "tail": 1, "label": "works_for"}]}
    src = tmp_path / "rel.jsonl"
    src.write_text(json.dumps(rel) + "\n", encoding="utf-8")
    args = ["convert", src, "-o", tmp_path / "o.json", "--to", "cluener"]
    res = gpner(*args)
    assert res.returncode == 2 and "1 relations in 1 records, which cluener cannot hold" in \
        res.stderr and "--drop-relations" in res.stderr
    res = gpner(*args, "--drop-relations")
    assert res.returncode == 0 and "dropped 1 relations (--drop-relations)" in res.stderr
    assert read(tmp_path / "o.json", "cluener").records[0]["entities"] == rel["entities"]
    res = gpner("convert", src, "-o", tmp_path / "o.jsonl", "--drop-relations")
    assert res.returncode == 0 and "dropped" not in res.stderr  # JSON lines keep them
    assert read(tmp_path / "o.jsonl").records[0]["relations"] == rel["relations"]


def test_import_is_light():
    code = "import sys, gpner; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False"


TINY_ARGS = ["word_dim=16", "bigram_dim=8", "char_dim=8", "char_channels=8", "lstm_hidden=32",
             "lstm_layers=1", "head_size=8", "batch_size=16", "lr=2e-2", "warmup=0", "epochs=6"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train through `gpner train` on CLUENER-format data (any readable format is accepted)."""
    from gpner.data.demo import generate

    d = tmp_path_factory.mktemp("cli")
    from gpner.data.formats import write

    write(generate(64, 1), d / "train.json", "cluener")
    write(generate(24, 2), d / "dev.jsonl", "jsonl")
    yaml_cfg = d / "run.yaml"
    yaml_cfg.write_text("epochs: 3\nseed: 7\n")
    res = gpner("train", "--train", d / "train.json", "--dev", d / "dev.jsonl", "--output",
                d / "run", "--config", yaml_cfg, "--no-progress", *TINY_ARGS)
    assert res.returncode == 0, res.stderr
    assert "best epoch" in res.stderr and "dev F1" in res.stderr
    return d


def test_train_writes_a_run_directory(trained):
    import yaml

    run = trained / "run"
    for name in ("config.yaml", "data.json", "metrics.jsonl", "curve.png", "summary.json", "model/config.json",
                 "model/model.safetensors", "last/state.json"):
        assert (run / name).exists(), name
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["epochs"] == 6 and cfg["seed"] == 7  # YAML, then key=value wins
    # resuming needs only the run directory (the run is complete: nothing left to train)
    res = gpner("train", "--output", run, "--resume", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "resumed" in res.stderr and "best epoch" in res.stderr


def test_evaluate_json_and_table(trained):
    res = gpner("evaluate", trained / "run", trained / "dev.jsonl", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert {"precision", "recall", "f1", "per_label"} <= set(out)
    assert set(out["per_label"]) <= {"LOC", "ORG", "PER"}
    # the JSON agrees with the Python API on the same data
    from gpner.data.formats import read
    from gpner.prediction.loading import load

    api = load(trained / "run").evaluate(read(trained / "dev.jsonl").records)
    assert out["f1"] == pytest.approx(api["f1"])
    res = gpner("evaluate", trained / "run", trained / "dev.jsonl")
    assert res.returncode == 0 and "micro" in res.stdout


def test_predict_file_and_stdin(trained, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("张伟在上海大学工作。\nAlice Johnson flew to Tokyo .\n", encoding="utf-8")
    res = gpner("predict", trained / "run", texts, "--flat")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(l) for l in res.stdout.splitlines()]
    assert [l["text"] for l in lines] == ["张伟在上海大学工作。", "Alice Johnson flew to Tokyo ."]
    from gpner.prediction.loading import load

    assert lines == load(trained / "run").predict([l["text"] for l in lines], flat=True)
    for l in lines:
        spans = sorted((e["start"], e["end"]) for e in l["entities"])
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # --flat: no overlaps
        for e in l["entities"]:
            assert set(e) == {"start", "end", "label", "score", "prob", "text"}
    exe = shutil.which("gpner") or str(Path(sys.executable).parent / "gpner")
    res = subprocess.run([exe, "predict", str(trained / "run"), "-", "--threshold", "100"],
                         input='{"text": "Bob Smith", "id": 4}\nplain text\n',
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert lines == [{"text": "Bob Smith", "id": 4, "entities": []}]  # threshold 100: none
    # the first line made stdin JSON lines: a plain line is reported by number, not guessed at
    assert "<stdin>:2: invalid JSON" in res.stderr and "1 bad line(s)" in res.stderr


def test_train_errors_are_clear(tmp_path):
    res = gpner("train", "--train", tmp_path / "none.jsonl", "--output", tmp_path / "r")
    assert res.returncode == 2 and "no such file" in res.stderr
    res = gpner("train", "--output", tmp_path / "r", "--resume")
    assert res.returncode == 2 and "no checkpoint to resume" in res.stderr
    (tmp_path / "t.jsonl").write_text('{"text": "a b", "entities": []}\n')
    res = gpner("train", "--train", tmp_path / "t.jsonl", "--output", tmp_path / "r", "lr")
    assert res.returncode == 2 and "not key=value" in res.stderr


def test_evaluate_refuses_gold_the_score_would_mislead_on(trained, tmp_path):
    # gold labels in another case than the model's, and gold with no entity at all
    lower = tmp_path / "lower.jsonl"
    lower.write_text(json.dumps({"text": "张伟在上海大学工作。", "entities": [
        {"start": 0, "end": 2, "label": "per"}, {"start": 3, "end": 7, "label": "ORG"}]},
        ensure_ascii=False) + "\n", encoding="utf-8")
    res = gpner("evaluate", trained / "run", lower)
    assert res.returncode == 2 and "E115" in res.stderr
    assert "1 of 2 gold entities" in res.stderr and "the model says 'PER'" in res.stderr
    res = gpner("evaluate", trained / "run", lower, "--score-anyway", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["per_label"]["per"]["fn"] == 1 and "warnings" in out
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"text": "没有实体。", "entities": []}, ensure_ascii=False)
                     + "\n", encoding="utf-8")
    res = gpner("evaluate", trained / "run", empty)
    assert res.returncode == 2 and "no entity in 1 records" in res.stderr
    res = gpner("evaluate", empty, empty)  # two files: empty gold is refused there too
    assert res.returncode == 2 and "E115" in res.stderr
