"""Distillation (gpner.training.distill, gpner distill): the teacher term against a loop over
cells, spans carried into student cells with what is lost counted by hand, an ensemble's
targets as the mean of its teachers', a student that approaches its teacher, a different
tokenizer's losses against an independent count, resume after a kill, relations, torchrun."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import tiny_config, tiny_data
from safetensors.torch import load_file

from gpner.errors import ConfigError
from gpner.training.distill import (
    CACHE,
    CarryReport,
    Teachers,
    score_floor,
    soft_loss,
    target_prob,
    token_cells,
    window_rows,
)
from gpner.training.trainer import train


def gpner(*args):
    return subprocess.run([sys.executable, "-m", "gpner.cli", *map(str, args)],
                          capture_output=True, text=True)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")
    return path


# ----------------------------------------------------------------- the loss and the targets

def _loop_teacher_term(scores, rows):
    """sum over types, mean over windows of log(1 + sum t e^-s) + log(1 + sum (1 - t) e^s)
    over the valid cells, written cell by cell."""
    B, C, L, _ = scores.shape
    t = {(int(b), int(c), int(i), int(j)): float(p) for b, c, i, j, p in rows.tolist()}
    total = 0.0
    for b in range(B):
        for c in range(C):
            pos = neg = 0.0
            for i in range(L):
                for j in range(L):
                    s = float(scores[b, c, i, j])
                    if s == -math.inf:
                        continue
                    p = t.get((b, c, i, j), 0.0)
                    pos += p * math.exp(-s)
                    neg += (1 - p) * math.exp(s)
            total += math.log1p(pos) + math.log1p(neg)
    return total / B


def test_teacher_term_equals_a_loop_over_cells():
    g = torch.Generator().manual_seed(0)
    B, C, L = 3, 2, 5
    scores = torch.randn(B, C, L, L, generator=g, dtype=torch.float64) * 2
    lower = torch.tril(torch.ones(L, L, dtype=torch.bool), -1)
    scores = scores.masked_fill(lower, -math.inf)  # start > end: impossible
    scores[1, :, 4, :] = -math.inf  # a padded token
    scores[1, :, :, 4] = -math.inf
    rows = torch.tensor([[0, 0, 0, 1, 0.9], [0, 1, 2, 2, 0.3], [1, 0, 1, 3, 0.6],
                         [2, 1, 0, 4, 1.0], [2, 0, 3, 3, 0.05]], dtype=torch.float64)
    got = float(soft_loss(scores, rows))
    assert got == pytest.approx(_loop_teacher_term(scores, rows), rel=1e-6)
    # no rows: every cell a negative
    assert float(soft_loss(scores, rows[:0])) == pytest.approx(
        _loop_teacher_term(scores, rows[:0]), rel=1e-6)


def test_targets_are_sigmoid_of_twice_the_score_over_t():
    assert target_prob(0.0, 1.0) == 0.5
    assert target_prob(math.log(3) / 2, 1.0) == pytest.approx(0.75)  # sigmoid(ln 3) = 3/4
    assert target_prob(math.log(3), 2.0) == pytest.approx(0.75)  # T = 2 halves the score
    assert target_prob(-800.0, 1.0) == 0.0 and target_prob(800.0, 1.0) == 1.0  # no overflow
    for floor, temp in ((1e-4, 1.0), (0.01, 3.0)):
        assert target_prob(score_floor(floor, temp), temp) == pytest.approx(floor)


# ----------------------------------------------------------------- carrying spans to cells

def test_spans_are_carried_into_cells_and_the_rest_counted_by_hand():
    # text "ab cde f": tokens ab [0,2), cde [3,6), f [7,8)
    offsets = [(0, 2), (3, 6), (7, 8)]
    spans = [(0, 2, "A", 0.9),     # token 0: carried
             (0, 6, "B", 0.2),     # tokens 0..1: carried
             (3, 5, "A", 0.7),     # ends inside "cde": lost (predicted)
             (1, 2, "A", 0.1),     # starts inside "ab": lost
             (7, 8, "Z", 0.8),     # a label the student lacks: lost (predicted)
             (3, 8, "B", 0.6)]     # tokens 1..2: carried
    report = CarryReport()
    cells = token_cells(spans, offsets, {"A": 0, "B": 1}, report)
    assert cells == [(0, 0, 0, 0.9), (1, 0, 1, 0.2), (1, 1, 2, 0.6)]
    assert report.lost == {"boundary inside a student token": 2,
                           "label the student does not have": 1}
    assert report.confident == {"boundary inside a student token": 1,
                                "label the student does not have": 1}
    # a window of content tokens 1..2 with one special token first (shift = 1 - 1 = 0 ... here
    # window token k = text token k - 1 + 1): only the cells wholly inside it, in window tokens
    spannable = np.array([False, True, True, False])  # [CLS] cde f [SEP]
    rows, placed = window_rows(cells, 1, 3, 0, spannable)
    assert placed == [2] and rows.tolist() == [[1, 1, 2, 0.6]]
    # a token the window may not start a span on (not spannable) keeps its cells out
    rows, placed = window_rows(cells, 0, 3, -1, np.array([False, False, True, True, False]))
    assert placed == [2] and rows.tolist() == [[1, 2, 3, 0.6]]


def test_a_span_no_window_holds_whole_is_counted_and_overlaps_go_to_both_windows():
    from types import SimpleNamespace

    from gpner.contracts import Window
    from gpner.training.distill import attach

    text = "a b c d e f"  # six one-letter tokens
    offsets = [(k, k + 1) for k in range(0, 11, 2)]
    featurizer = SimpleNamespace(encode=lambda t: SimpleNamespace(offsets=offsets))

    def window(start, end):  # one special token first, as [CLS]
        n = end - start + 1
        return Window({}, np.array([False] + [True] * (n - 1)), start, end, 1)

    examples = [SimpleNamespace(doc=0, window=window(0, 4), soft=None),
                SimpleNamespace(doc=0, window=window(2, 6), soft=None)]
    spans = [(0, 3, "X", 0.9),   # tokens 0..1: first window only
             (2, 9, "X", 0.8),   # tokens 1..4: neither window holds it whole
             (4, 7, "Y", 0.3),   # tokens 2..3: both windows
             (8, 11, "X", 0.2)]  # tokens 4..5: second window only
    report = attach(examples, [spans], [text], featurizer, ["X", "Y"])
    assert examples[0].soft.tolist() == [[0, 1, 2, 0.9], [1, 3, 4, 0.3]]
    assert examples[1].soft.tolist() == [[1, 1, 2, 0.3], [0, 3, 4, 0.2]]
    assert (report.spans, report.carried) == (4, 3)
    assert report.lost == {"in no student window whole": 1}
    assert report.confident == {"in no student window whole": 1}


class Win:
    """A stand-in example: a length and whether it has gold."""

    def __init__(self, n, gold):
        self.n, self.gold = n, gold

    def __len__(self):
        return self.n


def test_unlabeled_windows_are_batched_apart_from_the_labelled():
    from gpner.training.examples import length_buckets

    examples = [Win(k % 7 + 1, k % 3 != 0) for k in range(100)]
    batches = length_buckets(examples, 8, seed=1, epoch=0)
    assert sorted(k for b in batches for k in b) == list(range(100))
    assert all(len({examples[k].gold for k in b}) == 1 for b in batches)
    assert {examples[b[0]].gold for b in batches} == {True, False}


# ----------------------------------------------------------------- teachers and students

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("distill-data")
    write_jsonl(d / "train.jsonl", tiny_data(40, 1))
    write_jsonl(d / "dev.jsonl", tiny_data(20, 7))
    lines = [r["text"] for r in tiny_data(60, 5)]
    # JSON lines with text (as CLUENER's unlabeled test file), a blank line and a bad line
    body = [json.dumps({"id": k, "text": t}, ensure_ascii=False) for k, t in enumerate(lines)]
    (d / "unlabeled.jsonl").write_text("\n".join(body[:30] + ["", "{broken"] + body[30:]) + "\n",
                                       encoding="utf-8")
    return d


def candidates(model, texts, floor=1e-4):
    """(text, start, end, label) -> target prob (T = 1) of every span at or above ``floor``."""
    cut = score_floor(floor, 1.0)
    out = {}
    for n, rec in enumerate(model.predict(texts, flat=False, threshold=cut)):
        for e in rec["entities"]:
            out[(n, e["start"], e["end"], e["label"])] = target_prob(e["score"], 1.0)
    return out


def test_an_ensembles_targets_are_the_mean_of_its_teachers(tagger, nested_model_dir, data,
                                                          tmp_path):
    from gpner.prediction.loading import load

    train(data / "train.jsonl", None, tmp_path / "st",
          tiny_config(epochs=1, teachers=f"{tagger},{nested_model_dir}",
                      unlabeled=str(data / "unlabeled.jsonl")), progress=False)
    lines = (tmp_path / "st" / CACHE).read_text(encoding="utf-8").splitlines()
    head, rows = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    texts = [r["text"] for r in tiny_data(40, 1)] + [r["text"] for r in tiny_data(60, 5)]
    assert head["records"] == 40 and len(rows) == 100  # the bad line skipped, the blank too
    assert [r["text"] for r in rows[40:]] == texts[40:]
    a, b = (candidates(load(m), texts) for m in (tagger, nested_model_dir))
    want = {k: (a.get(k, 0.0) + b.get(k, 0.0)) / 2 for k in set(a) | set(b)}
    want = {k: v for k, v in want.items() if v >= 1e-4}
    got = {(n, s, e, lab): p for n, r in enumerate(rows) for s, e, lab, p in r["spans"]}
    assert got.keys() == want.keys()
    assert max(abs(got[k] - want[k]) for k in got) < 1e-3  # scores are saved to 4 decimals
    assert 0 < len(got) < 40 * 100  # sparse: not every cell of every text


def test_a_distilled_student_approaches_its_teacher(tagger, tmp_path):
    from gpner.prediction.loading import load

    texts = [r["text"] for r in tiny_data(60, 11)]
    unl = tmp_path / "unl.txt"
    unl.write_text("\n".join(r["text"] for r in tiny_data(200, 5)), encoding="utf-8")
    few = tiny_data(40, 1)  # the student's gold: a fifth of what the teacher saw
    train(few, None, tmp_path / "kd", tiny_config(epochs=12, teachers=str(tagger),
                                                  kd_weight=1.0, unlabeled=str(unl)),
          progress=False)
    train(few, None, tmp_path / "gold", tiny_config(epochs=12), progress=False)
    teacher = candidates(load(tagger), texts)

    def distance(run):
        student = candidates(load(run / "model"), texts)
        keys = set(teacher) | set(student)
        mean_gap = float(np.mean([abs(teacher.get(k, 0) - student.get(k, 0)) for k in keys]))
        t = {k for k, v in teacher.items() if v > 0.5}
        s = {k for k, v in student.items() if v > 0.5}
        return mean_gap, 2 * len(t & s) / (len(t) + len(s))

    kd_gap, kd_agree = distance(tmp_path / "kd")
    gold_gap, gold_agree = distance(tmp_path / "gold")
    # measured: gap 0.024 against 0.055, agreement 0.96 against 0.43
    assert kd_gap < gold_gap / 1.5 and kd_agree > 0.85 and kd_agree > gold_agree + 0.2


def test_a_teacher_with_another_tokenizer_loses_cells_and_says_how_many(tiny_bert_dir, data,
                                                                       tmp_path):
    """A wordpiece teacher scores spans that end inside words; a built-in (word-level) student
    cannot hold them. Counted against an independent count over the cached targets."""
    eng = [{"text": "Bank of London hires Alice Smith in Paris .",
            "entities": [{"start": 0, "end": 14, "label": "ORG"},
                         {"start": 8, "end": 14, "label": "LOC"},
                         {"start": 21, "end": 32, "label": "PER"},
                         {"start": 36, "end": 41, "label": "LOC"}]},
           {"text": "Angela Merkel visited Berlin and Paris .",
            "entities": [{"start": 0, "end": 13, "label": "PER"},
                         {"start": 22, "end": 28, "label": "LOC"},
                         {"start": 33, "end": 38, "label": "LOC"}]}] * 4
    train(eng, None, tmp_path / "teacher",
          tiny_config(encoder=str(tiny_bert_dir), head="gp", epochs=1, lr=1e-3), progress=False)
    unl = tmp_path / "unl.txt"
    # words the test vocabulary cuts into pieces: berlin ##s, paris ##e ##s, text ##ed, city ##s
    unl.write_text("Berlins and Parises texted citys .\nNew York citys visited Berlins .\n",
                   encoding="utf-8")
    summary = train(eng, None, tmp_path / "student",
                    tiny_config(epochs=1, teachers=str(tmp_path / "teacher"),
                                unlabeled=str(unl)), progress=False)
    carried = summary["data"]["distill"]["carried"]
    lines = (tmp_path / "student" / CACHE).read_text(encoding="utf-8").splitlines()
    rows = [json.loads(x) for x in lines[1:]]
    texts = [r["text"] for r in eng] + unl.read_text().splitlines()
    # independent count: a span survives when both ends are word edges of the built-in
    # tokenizer (words are runs of letters, digits; punctuation alone)
    import re

    lost = total = 0
    for text, row in zip(texts, rows, strict=True):
        starts = {m.start() for m in re.finditer(r"\w+|[^\w\s]", text)}
        ends = {m.end() for m in re.finditer(r"\w+|[^\w\s]", text)}
        for s, e, _, _ in row["spans"]:
            total += 1
            lost += not (s in starts and e in ends)
    assert total == carried["spans"] and lost > 0
    assert carried["lost"] == {"boundary inside a student token": lost}
    assert carried["carried"] == total - lost


class Kill(Exception):
    pass


def test_a_killed_distillation_resumes_to_the_uninterrupted_weights(tagger, data, tmp_path,
                                                                   monkeypatch):
    cfg = tiny_config(epochs=3, teachers=str(tagger), unlabeled=str(data / "unlabeled.jsonl"),
                      kd_temperature=2.0)
    train(data / "train.jsonl", None, tmp_path / "a", cfg, progress=False)

    def kill(step, loss):
        if step == 9:  # 7 batches an epoch (3 labelled, 4 unlabeled): mid-way through epoch 2
            raise Kill()

    with pytest.raises(Kill):
        train(data / "train.jsonl", None, tmp_path / "b", cfg, progress=False, on_step=kill)

    def no_teacher(*a, **k):
        raise AssertionError("a resumed run reads its teachers' targets, it does not rescore")

    monkeypatch.setattr(Teachers, "open", no_teacher)
    train(None, None, tmp_path / "b", resume=True, progress=False)
    a = load_file(str(tmp_path / "a" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "last" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_relation_student_learns_its_links_from_the_teacher(tmp_path):
    """15 gold texts and 200 teacher-labelled ones, teacher term only (kd_weight=1): the relation
    heads learn from the teacher's link cells (measured: triple F1 0.788, the teacher's own,
    against 0.0 for the same student on gold alone)."""
    from gpner.data.demo import generate_relations
    from gpner.metrics import evaluate_relations
    from gpner.prediction.loading import load

    data, held = generate_relations(120, 1), generate_relations(40, 9)
    cfg = dict(lstm_hidden=48, head_size=16, max_length=24, threads=1)
    train(data, None, tmp_path / "teacher", tiny_config(epochs=15, **cfg), progress=False)
    unl = tmp_path / "unl.txt"
    unl.write_text("\n".join(r["text"] for r in generate_relations(200, 5)), encoding="utf-8")
    summary = train(data[:15], None, tmp_path / "student",
                    tiny_config(epochs=15, teachers=str(tmp_path / "teacher"), kd_weight=1.0,
                                unlabeled=str(unl), **cfg), progress=False)
    assert summary["config"]["task"] == "relations"
    carried = summary["data"]["distill"]["carried"]
    assert carried["lost"] == {} and carried["links"]["carried"] == carried["links"]["spans"] > 0

    def f1(run):
        model = load(run / "model")
        return evaluate_relations(held, model.predict([r["text"] for r in held]))["f1"]

    teacher, student = f1(tmp_path / "teacher"), f1(tmp_path / "student")
    assert teacher > 0.5 and student > teacher - 0.1


def test_a_killed_relation_distillation_resumes_from_its_cached_link_targets(tmp_path,
                                                                            monkeypatch):
    from gpner.data.demo import generate_relations

    data = generate_relations(40, 1)
    size = dict(lstm_hidden=48, head_size=16, max_length=24, threads=1)
    train(data, None, tmp_path / "teacher", tiny_config(epochs=3, **size), progress=False)
    cfg = tiny_config(epochs=3, teachers=str(tmp_path / "teacher"), **size)
    train(data, None, tmp_path / "a", cfg, progress=False)
    head = json.loads((tmp_path / "a" / CACHE).read_text(encoding="utf-8").splitlines()[0])
    assert head["links"] and head["carried"]["links"]["spans"] > 0

    def kill(step, loss):
        if step == 4:  # 3 batches an epoch: in epoch 2
            raise Kill()

    with pytest.raises(Kill):
        train(data, None, tmp_path / "b", cfg, progress=False, on_step=kill)
    monkeypatch.setattr(Teachers, "open", lambda *a, **k: pytest.fail("rescored on resume"))
    train(data, None, tmp_path / "b", resume=True, progress=False)
    a = load_file(str(tmp_path / "a" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_link_cells_are_carried_by_where_spans_start_and_end():
    from types import SimpleNamespace

    from gpner.contracts import Window
    from gpner.training.distill import _attach_links, link_cells

    offsets = [(0, 2), (2, 4), (5, 9), (10, 12)]  # "张伟" "在" ... four tokens
    links = [("heads", 0, 5, "works_at", 0.9),   # subject starts token 0, object token 2
             ("tails", 4, 12, "works_at", 0.8),  # subject ends token 1, object token 3
             ("heads", 1, 5, "works_at", 0.7),   # a start inside token 0: lost
             ("tails", 2, 9, "born_in", 0.6),    # a relation the student lacks: lost
             ("heads", 10, 0, "works_at", 0.4)]  # object before subject: carried
    report = CarryReport()
    cells = link_cells(links, offsets, {"works_at": 0}, report)
    assert cells == [("heads", 0, 0, 2, 0.9), ("tails", 0, 1, 3, 0.8), ("heads", 0, 3, 0, 0.4)]
    assert report.lost == {"boundary inside a student token": 1,
                           "relation the student does not have": 1}
    # two windows with one special token first: tokens 0..2 and 2..3
    wins = [SimpleNamespace(window=Window({}, np.array([False, True, True, True]), 0, 3, 1)),
            SimpleNamespace(window=Window({}, np.array([False, True, True]), 2, 4, 1))]
    _attach_links(wins, cells, report)
    assert wins[0].soft_links["heads"].tolist() == [[0, 1, 3, 0.9]]
    assert wins[0].soft_links["tails"].tolist() == []
    assert wins[1].soft_links["heads"].tolist() == []
    # tokens 1..3 and 3..0 span both windows' edges: neither holds them whole
    assert report.carried == 1 and report.lost["in no student window whole"] == 2


def test_the_cli_distils_and_the_student_is_an_ordinary_model(tagger, data, tmp_path):
    run = tmp_path / "student"
    res = gpner("distill", "--teacher", tagger, "--train", data / "train.jsonl", "--dev",
                data / "dev.jsonl", "--unlabeled", data / "unlabeled.jsonl", "-o", run,
                "--no-progress", "--kd-weight", "0.7", "--temperature", "1.5",
                "word_dim=16", "bigram_dim=8", "char_dim=8", "char_channels=8",
                "lstm_hidden=24", "lstm_layers=1", "head_size=8", "epochs=2")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "teacher targets:" in res.stderr and "unlabeled windows" in res.stderr
    assert "unlabeled.jsonl:32: invalid JSON" in res.stderr  # the bad line, by its number
    saved = (run / "config.yaml").read_text()
    assert f"teachers: {tagger}" in saved and "kd_weight: 0.7" in saved
    out = subprocess.run([sys.executable, "-m", "gpner.cli", "predict", str(run)],
                         input="吴昊是西安银行的研究员。\n", capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout.splitlines()[0])["text"]
    # errors: no teacher; a teacher without span scores
    res = gpner("distill", "--train", data / "train.jsonl", "-o", tmp_path / "x")
    assert res.returncode == 2 and "--teacher is required" in res.stderr
    crf = tmp_path / "crf"
    train(data / "train.jsonl", None, crf, tiny_config(epochs=1, head="crf"), progress=False)
    res = gpner("distill", "--teacher", crf, "--train", data / "train.jsonl", "-o",
                tmp_path / "y", "epochs=1")
    assert res.returncode == 2 and "no span scores" in res.stderr
    with pytest.raises(ConfigError, match="needs a span head"):
        tiny_config(teachers=str(tagger), head="crf")


def test_two_processes_distil_like_one_with_the_same_global_batch(tagger, data, tmp_path):
    from tests.test_distributed import SETTINGS, max_diff, torchrun, weights

    common = ["--teacher", tagger, "--train", data / "train.jsonl", "--unlabeled",
              data / "unlabeled.jsonl", "--no-progress", "epochs=2", *SETTINGS]
    two = torchrun("distill", "-o", tmp_path / "two", *common, "batch_size=4")
    assert two.returncode == 0, two.stderr[-3000:]
    one = gpner("distill", "-o", tmp_path / "one", *common, "batch_size=8")
    assert one.returncode == 0, one.stderr[-3000:]
    assert max_diff(weights(tmp_path / "two"), weights(tmp_path / "one")) < 1e-4
    assert (tmp_path / "two" / CACHE).read_bytes() == (tmp_path / "one" / CACHE).read_bytes()
    shutil.rmtree(tmp_path / "two")
