"""The benchmark harness, run end to end on a tiny generated data set so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpner.data.demo import generate
from gpner.data.formats import write
from gpner.records import is_nested

ROOT = Path(__file__).resolve().parents[1]
VOCAB = ROOT.parent / "shared" / "encoders" / "bert-chinese-vocab" / "vocab.txt"
TINY = ["word_dim=16", "bigram_dim=8", "char_dim=8", "char_channels=8", "lstm_hidden=16",
        "lstm_layers=1", "head_size=8", "epochs=1"]


def bench(script, *args, cwd=ROOT):
    res = subprocess.run([sys.executable, str(ROOT / "bench" / script), *map(str, args)],
                         capture_output=True, text=True, cwd=cwd)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write(generate(48, 1), root / "cluener" / "train.json", "cluener")
    write(generate(16, 2), root / "cluener" / "dev.json", "cluener")
    return root


def test_accuracy_rows_and_report(data_root, tmp_path):
    results = tmp_path / "results"
    out = bench("accuracy.py", "--only", "cluener-gp+fgm", "--data-root", data_root, "--runs",
                tmp_path / "runs", "--results", results / "accuracy", *TINY)
    assert "F1" in out
    row = json.loads((results / "accuracy" / "cluener-gp+fgm.json").read_text())
    assert row["split"] == "dev" and 0 <= row["f1"] <= 1 and row["head"] == "gp"
    assert "fgm=1.0" in row["command"] and "gpner" in row["command"]
    again = bench("accuracy.py", "--only", "cluener-gp+fgm", "--data-root", data_root, "--runs",
                  tmp_path / "runs", "--results", results / "accuracy")
    assert "done" in again  # measured rows are kept, not re-run
    # other settings measured with --tried: own run directory, the row keeps its result
    tried = bench("accuracy.py", "--only", "cluener-gp+fgm", "--data-root", data_root, "--runs",
                  tmp_path / "runs", "--results", results / "accuracy", "--tried", *TINY,
                  "head_size=4")
    assert "as tried" in tried
    kept = json.loads((results / "accuracy" / "cluener-gp+fgm.json").read_text())
    assert kept["f1"] == row["f1"] and kept["command"] == row["command"]
    assert len(kept["tried"]) == 1 and "head_size=4" in kept["tried"][0]["command"]
    assert kept["tried"][0]["settings"][-1] == "head_size=4"
    assert (tmp_path / "runs" / "cluener-gp+fgm" / "model").is_dir()
    assert len(list((tmp_path / "runs").glob("cluener-gp+fgm+*head_size=4/model"))) == 1
    listed = bench("accuracy.py", "--list").split()
    assert len(listed) == 20 and "cmeee-gp+rdrop" in listed and "conll2003-softmax" in listed
    doc = tmp_path / "benchmarks.md"
    bench("report.py", "--results", results, "--out", doc)
    text = doc.read_text()
    assert f"{100 * row['f1']:.2f}" in text and row["command"] in text
    assert "CLUENER (dev): goal >= 75" in text and "No speed results yet" in text
    t = kept["tried"][0]
    assert (f"- CLUENER (dev) GP with {' '.join(t['settings'])}: {100 * t['f1']:.2f} (dev;"
            in text and "Show the table (2 runs)" in text)


def test_pretrained_rows_adopt_and_report(data_root, tmp_path, tiny_bert_dir):
    """The MiniLM rows go through the Hugging Face encoder path (here a tiny random BERT);
    --adopt takes a finished run for its own row only."""
    for name, seed, n in (("train.txt", 1, 32), ("valid.txt", 2, 12), ("test.txt", 3, 12)):
        flat = [r for r in generate(n, seed) if not is_nested(r)]  # BIO cannot hold nesting
        write(flat, data_root / "conll2003" / name, "conll")
    common = ["--minilm", tiny_bert_dir, "--data-root", data_root]
    results, runs = tmp_path / "results", tmp_path / "runs"
    bench("accuracy.py", *common, "--only", "conll2003-minilm-gp", "--runs", runs, "--results",
          results / "accuracy", "epochs=1")
    row = json.loads((results / "accuracy" / "conll2003-minilm-gp.json").read_text())
    assert row["encoder"] == str(tiny_bert_dir) and row["split"] == "test"
    assert f"--encoder {tiny_bert_dir}" in row["command"] and "epochs=1" in row["settings"]

    wrong = subprocess.run([sys.executable, str(ROOT / "bench" / "accuracy.py"),
                            *map(str, common), "--only", "conll2003-minilm-crf", "--adopt",
                            runs / "conll2003-minilm-gp"], capture_output=True, text=True,
                           cwd=ROOT)
    assert wrong.returncode != 0 and "trained head gp" in wrong.stderr
    bench("accuracy.py", *common, "--only", "conll2003-minilm-gp", "--adopt",
          runs / "conll2003-minilm-gp", "--results", tmp_path / "adopted")
    adopted = json.loads((tmp_path / "adopted" / "conll2003-minilm-gp.json").read_text())
    assert adopted["adopted"] and adopted["f1"] == row["f1"]  # same model, same test file
    assert f"--encoder {tiny_bert_dir}" in adopted["command"] and "epochs=1" in adopted["command"]

    # a run filed as tried leaves the row's result; a replaced result moves to "tried"
    row_file = results / "accuracy" / "conll2003-minilm-gp.json"
    bench("accuracy.py", *common, "--only", "conll2003-minilm-gp", "--adopt",
          runs / "conll2003-minilm-gp", "--results", results / "accuracy", "--tried")
    kept = json.loads(row_file.read_text())
    assert "adopted" not in kept and [t["adopted"] for t in kept["tried"]] == [True]
    bench("accuracy.py", *common, "--only", "conll2003-minilm-gp", "--adopt",
          runs / "conll2003-minilm-gp", "--results", results / "accuracy")
    replaced = json.loads(row_file.read_text())
    assert replaced["adopted"] and len(replaced["tried"]) == 2
    assert "adopted" not in replaced["tried"][1] and "tried" not in replaced["tried"][1]

    doc = tmp_path / "benchmarks.md"
    bench("report.py", "--results", results, "--out", doc)
    text = doc.read_text()
    assert "Other settings tried for a row" in text
    first = replaced["tried"][1]  # the row's first measured run, kept as tried
    assert (f"GP with {' '.join(first['settings'])}: {100 * first['f1']:.2f} (test;" in text
            and f"best dev {100 * first['best_dev_f1']:.2f} against the row's "
                f"{100 * replaced['best_dev_f1']:.2f}" in text)
    verdict = "met" if row["f1"] >= 0.89 else "MISSED"
    assert f"| GP | {100 * row['f1']:.2f} |" in text and "| CRF | not measured yet |" in text
    assert f"- GP >= 89: {100 * row['f1']:.2f}, {verdict}." in text


def test_speed_and_scaling_workers(data_root, monkeypatch):
    """One speed row (training, inference, head share) and one scaling case, through the same
    worker functions the benchmarks spawn, run here in-process (the full quick run is slow)."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import scaling
    import speed

    spec = {"data_root": str(data_root), "batch_size": 16, "repeats": 1, "n": 48, "batches": 2,
            "infer": True, "share": True, "encoder": "builtin", "head": "gp"}
    row = speed.worker(spec)
    assert row["train_sents_per_s"] > 0 and row["infer_sents_per_s"] > 0
    assert 0 < row["head_share"] < 1 and row["batch_size"] == 16
    padded = speed.worker(dict(spec, pad=256, infer=False, share=False))
    assert padded["train_sents_per_s"] > 0
    case = scaling.worker({"sweep": "length", "length": 32, "types": 3, "head": "egp",
                           "loss": "sparse", "repeats": 1})
    assert case["seconds"] > 0 and case["peak_mb"] >= 0


@pytest.mark.slow
@pytest.mark.skipif(not VOCAB.exists(), reason="needs ../shared/encoders")
def test_speed_and_scaling_quick(data_root, tmp_path):
    bench("speed.py", "--quick", "--data-root", data_root, "--out", tmp_path / "speed.json")
    speed = json.loads((tmp_path / "speed.json").read_text())
    heads = [r for r in speed["rows"] if r["kind"] == "heads"]
    assert {(r["encoder"], r["head"]) for r in heads} == {
        (e, h) for e in ("builtin", "bert-base") for h in ("gp", "egp", "crf", "softmax")}
    assert all(r["train_sents_per_s"] > 0 and r["peak_rss_mb"] > 0 for r in heads)
    assert all(0 < r["head_share"] < 1 for r in heads if r["head"] in ("gp", "egp"))
    bench("scaling.py", "--quick", "--out", tmp_path / "scaling.json", "--plot",
          tmp_path / "scaling.png")
    scaling = json.loads((tmp_path / "scaling.json").read_text())
    assert len(scaling["rows"]) == 16 and (tmp_path / "scaling.png").stat().st_size > 1000
    (tmp_path / "accuracy").mkdir()
    bench("report.py", "--results", tmp_path, "--out", tmp_path / "b.md")
    text = (tmp_path / "b.md").read_text()
    assert "Dynamic padding trains" in text and "## Scaling of the head" in text


def test_show_command_reads_the_same_on_any_checkout(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from common import show_command

    data = tmp_path / "data"
    cmd = ["/abs/bin/gpner", "train", "--train", str(data / "conll2003" / "train.txt"),
           "--encoder", str(ROOT / ".venv" / "site-packages" / "model"), "epochs=1"]
    assert show_command(cmd, data) == ("gpner train --train ../shared/data/conll2003/train.txt "
                                       "--encoder .venv/site-packages/model epochs=1")


def test_prediction_sections_render_each_table():
    sys.path.insert(0, str(ROOT / "bench"))
    from report import prediction_sections

    m = {"cpu": "cpu", "cores": 2, "torch": "2", "date": "d", "gpner_commit": "c"}
    results = {
        "onnx_speed.json": {"command": "c", "machine": m, "f1_model": "run",
                            "f1": {"torch": 0.75, "onnx": 0.75, "onnx-int8": 0.7478},
                            "rows": [{"encoder": "builtin", "batch": 1, "backend": "onnx-int8",
                                      "sents_per_s": 30.0, "vs_torch": 2.5},
                                     {"encoder": "builtin", "batch": 1, "backend": "onnx-int8",
                                      "concurrency": 2, "sents_per_s": 40.0,
                                      "vs_torch": 3.333}]},
        "peer.json": {"command": "c", "machine": m, "rows": [{
            "head": "gp", "train_ratio": 2.0, "predict_ratio": {"torch": 1.5, "onnx-int8-c2": 3.1},
            "bert4torch": {"train_sents_per_s": 40.0, "predict_sents_per_s": 100.0, "f1": 0.2},
            "gpner": {"train_sents_per_s": 80.0, "f1": {"torch": 0.21, "onnx-int8-c2": 0.2125},
                      "predict_sents_per_s_torch": 150.0,
                      "predict_sents_per_s_onnx-int8-c2": 310.0}}]},
        "long_docs.json": {"command": "c", "machine": m, "backend": "torch",
                           "rows": [{"chars": 1000000, "tokens": 600000, "seconds": 50.0,
                                     "chars_per_s": 20000, "peak_rss_mb": 400.0,
                                     "rss_before_mb": 300.0, "encoding_mb": 41.56,
                                     "packed_mb": 4.22,
                                     "entities": 80000, "found": 79990, "correct": 79000}]},
        "stream_memory.json": {"command": "c", "machine": m, "model_settings": ["epochs=1"],
                               "rows": [{"input_mb": 10, "lines": 70000, "seconds": 60.0,
                                         "texts_per_s": 1166, "peak_rss_mb": 250.0}]},
    }
    text = "\n".join(prediction_sections(results.get))
    assert "| builtin | 1 | onnx-int8 | 1 | 30.0 | 2.50x |" in text  # an older file: 1
    assert "| builtin | 1 | onnx-int8 | 2 | 40.0 | 3.33x |" in text
    assert "| gp | 40.0 | 80.0 | 2.00x | 20.00 | 21.00 |" in text
    assert "| gp | bert4torch | 1 | 100 | 1.00x | 20.00 |" in text
    assert "| gp | gpner torch | 1 | 150 | 1.50x | 21.00 |" in text
    assert "| gp | gpner onnx-int8 | 2 | 310 | 3.10x | 21.25 |" in text
    assert "int8 changes F1 by -0.22 points" in text
    # growth is peak less the warmed-up RSS
    assert ("| 1,000,000 | 600,000 | 50.00 | 20,000 | 300 | 400 | 100 | 41.6 | 4.2 | 80,000 | 79,990 "
            "| 79,000 |") in text
    assert "| 10 | 70,000 | 60.0 | 1,166 | 250 |" in text
    assert prediction_sections({}.get) == []


def test_tuning_and_calibration_sections_render_and_say_who_won():
    sys.path.insert(0, str(ROOT / "bench"))
    from report import calibration_section, tuning_section

    m = {"cpu": "cpu", "cores": 2, "torch": "2", "date": "d", "gpner_commit": "c"}
    b = {"precision": 0.7, "recall": 0.6, "f1": 0.6462}
    data = {"machine": m, "arms": {
        "default": {"budget_minutes": 72, "minutes": 71.5, "runs": [{}, {}],
                    "best": {"seed": 2, "dev_a_f1": 0.75, "dev_b": b}},
        "tune": {"budget_minutes": 72, "minutes": 70.1, "command": "gpner tune ...",
                 "pruned_minutes_saved": 9.5,
                 "trials": [{"number": 0, "state": "complete", "dev_f1": 0.7, "minutes": 12.0,
                             "epochs": 5, "params": {"lr": 0.002, "head": "gp"}},
                            {"number": 1, "state": "pruned", "dev_f1": 0.3, "minutes": 2.5,
                             "epochs": 2, "pruned_after_epoch": 2, "params": {"lr": 0.005}}],
                 "best": {"dev_f1": 0.7, "params": {"lr": 0.002, "head": "gp"},
                          "dev_b": {"precision": 0.6, "recall": 0.6, "f1": 0.6}}}}}
    text = "\n".join(tuning_section(data))
    assert "| default | 72 | 71.5 | 2 runs | 75.00 | 64.62 (70.00 / 60.00) | seed 2 |" in text
    assert "| tune | 72 | 70.1 | 1 complete, 1 pruned | 70.00 | 60.00 (60.00 / 60.00) | lr=0.002, head=gp |" in text
    assert "| 1 | pruned (pruned after epoch 2) | 30.00 | 2.5 | 2 | lr=0.005 |" in text
    assert "Tuning did not win: dev-B F1 60.00 against 64.62 (-4.62 points)." in text
    cal = {"machine": m, "rows": [{"name": "cluener", "probs": "platt", "plot": "docs/x.png",
                                   "command": "gpner calibrate ...", "dev": {"candidates": 10},
                                   "model": "runs/m/model", "fit": "runs/dev_a.json",
                                   "check": {"candidates": 12, "f1_before": 0.7,
                                             "data": "runs/dev_b.json",
                                             "f1_after": 0.71, "ece_before": 0.05,
                                             "ece_after": 0.01}},
                                  {"name": "cmeee", "probs": "platt", "plot": "docs/y.png",
                                   "command": "gpner calibrate ...", "dev": {"candidates": 8},
                                   "model": "runs/c/model", "fit": "runs/cmeee-dev_a.json",
                                   "trained_by": "gpner train --train t.json",
                                   "check": {"candidates": 9, "f1_before": 0.5,
                                             "data": "runs/cmeee-dev_b.json",
                                             "f1_after": 0.55, "ece_before": 0.1,
                                             "ece_after": 0.02}}]}
    text = "\n".join(calibration_section(cal))
    assert ("| cluener | platt | dev_a.json -> dev_b.json | 10 / 12 | 70.00 | 71.00 | 0.0500 | "
            "0.0100 | [png](x.png) | `gpner calibrate ...` |") in text
    assert ("The models: cluener: the model runs/m/model; cmeee: `gpner train --train t.json`."
            in text)


def test_distillation_section_renders_and_says_whether_the_goal_was_met():
    sys.path.insert(0, str(ROOT / "bench"))
    from report import distill_section

    m = {"cpu": "cpu", "cores": 2, "torch": "2", "date": "d", "gpner_commit": "c"}
    teachers = [{"seed": s, "dev_a_f1": 0.75, "dev_b": {"f1": f}, "epochs": 9, "minutes": 18.0,
                 "command": f"gpner train ... seed={s}"}
                for s, f in ((1, 0.74), (2, 0.73), (3, 0.75))]
    student = {"dev_a_f1": 0.77, "dev_b": {"f1": 0.7612}, "epochs": 12, "minutes": 25.0,
               "command": "gpner distill ...",
               "distill": {"unlabeled_texts": 1345,
                           "carried": {"spans": 900, "lost": {"x": 2}}}}
    data = {"machine": m, "teachers": teachers, "student": student,
            "single_dev_b_f1": {"mean": 0.74, "min": 0.73, "max": 0.75},
            "goal": {"student_dev_f1_at_least": 0.765}}
    text = "\n".join(distill_section(data))
    assert "| **student** | 77.00 | **76.12** | 12 | 25.0 | `gpner distill ...` |" in text
    assert "| teacher, seed 2 | 75.00 | 73.00 | 9 | 18.0 | `gpner train ... seed=2` |" in text
    assert "(900 teacher spans, 2 lost)" in text
    assert "**missed** by 0.38 points." in text
    student["dev_b"]["f1"] = 0.77
    assert "**met**." in "\n".join(distill_section(data))


def test_conll_distillation_section_weighs_f1_and_speed_against_the_goal(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    from distill_conll import webnlg_texts
    from report import distill_conll_section

    m = {"cpu": "cpu", "cores": 2, "torch": "2", "date": "d", "gpner_commit": "c"}
    run = {"test": {"f1": 0.8866, "precision": 0.89, "recall": 0.88}, "epochs": 5,
           "command": "gpner train ..."}
    student = {"test": {"f1": 0.8810, "precision": 0.9, "recall": 0.86}, "epochs": 12,
               "command": "gpner distill ...",
               "distill": {"carried": {"spans": 1000, "carried": 990,
                                       "lost": {"boundary inside a student token": 10}}}}
    data = {"machine": m, "teacher": run, "students": {"student": student},
            "unlabeled": {"texts": 5000},
            "settings": {"teacher_minutes": 28, "student_minutes": 18},
            "goal": {"student_test_f1_at_least": 0.88, "speedup_at_least": 3.0,
                     "builtin_alone_test_f1": 0.8638},
            "speed": {"teacher (MiniLM-L6 GP)": {"sents_per_s": 300.0},
                      "student (built-in GP)": {"sents_per_s": 1200.0}}}
    text = "\n".join(distill_conll_section(data))
    assert ("| student (built-in GP) | 88.10 | 90.00 | 86.00 | 12 | 1,200 | 4.00x | "
            "`gpner distill ...` |") in text
    assert "student: 990 of 1,000 (lost: boundary inside a student token 10)" in text
    assert "student: 88.10 at 4.00x, **met**." in text
    data["speed"]["student (built-in GP)"]["sents_per_s"] = 600.0  # 2x: too slow
    student["test"]["f1"] = 0.8750
    assert "student: 87.50 at 2.00x, **missed** by 0.50 F1 points and on speed." in \
        "\n".join(distill_conll_section(data))
    # WebNLG: every text once, in order, whatever split repeats it
    for name, texts in (("train", ["A b .", "C d ."]), ("val", ["A b ."]),
                        ("test", [" E f . "])):
        (tmp_path / f"{name}_triples.json").write_text(json.dumps(
            [{"text": t, "triple_list": []} for t in texts]), encoding="utf-8")
    assert webnlg_texts(tmp_path, tmp_path / "out.txt") == 3
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "A b .\nC d .\nE f .\n"


def test_active_learning_curves_compare_merge_and_render(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    from active import compare, epochs_for, labels_to_reach, merge
    from report import active_section

    # every round at least 200 steps and 4 epochs of batch 32
    assert [epochs_for(200, 4, 32, n) for n in (500, 1000, 1500, 3000)] == [12, 6, 4, 4]
    rows = [{"labels": 500, "f1": 0.5}, {"labels": 1000, "f1": 0.62}, {"labels": 1500,
                                                                     "f1": 0.66}]
    assert labels_to_reach(rows, 0.6) == 1000 and labels_to_reach(rows, 0.7) is None
    randoms = {"random-1": [{"labels": 500, "f1": 0.5}, {"labels": 1500, "f1": 0.60}],
               "random-2": [{"labels": 500, "f1": 0.5}, {"labels": 1500, "f1": 0.64}]}
    assert compare({"uncertainty": rows}, ["uncertainty"]) == {}  # no random curve yet
    got = compare({"uncertainty": rows, **randoms}, ["uncertainty"])
    assert got["random_final_f1_mean"] == pytest.approx(0.62)  # the mean of 0.60 and 0.64
    assert got["labels_to_reach_random_final"] == {"uncertainty": 1000}
    assert got["share_of_random_labels"]["uncertainty"] == pytest.approx(1000 / 1500)
    # two parts of one run land in one file; the comparison covers both
    m = {"cpu": "cpu", "cores": 2, "torch": "2", "date": "d", "gpner_commit": "c"}
    settings = {"start": 500, "step": 500, "rounds": 2, "steps": 200, "min_epochs": 4}
    path = tmp_path / "cluener.json"
    merge(path, {"machine": m, "settings": settings, "data": {}}, "cluener",
          {"uncertainty": rows}, 30.0)
    data = merge(path, {"machine": m, "settings": settings, "data": {}}, "cluener", randoms,
                 20.0)
    assert data["minutes"] == 50.0 and data["parts"] == [30.0, 20.0]
    assert list(data["data"]["cluener"]["curves"]) == ["uncertainty", "random-1", "random-2"]
    assert json.loads(path.read_text())["data"]["cluener"]["share_of_random_labels"] == \
        got["share_of_random_labels"]
    text = "\n".join(active_section([data]))
    assert ("| cluener (dev) | uncertainty | 500: 50.00, 1000: 62.00, 1500: 66.00 | 1000 | 67% |"
            in text)
    assert "at least 200 optimizer steps and at least 4 epochs" in text
    assert "with <= 60% of its labels | | | **missed** (best strategy 67%) |" in text
    data["data"]["cluener"]["share_of_random_labels"]["uncertainty"] = 0.5
    assert "**met**" in "\n".join(active_section([data]))
    # other settings replace the file rather than mixing curves of two budgets
    other = merge(path, {"machine": m, "settings": {**settings, "steps": 100}, "data": {}},
                  "cluener", randoms, 5.0)
    assert list(other["data"]["cluener"]["curves"]) == ["random-1", "random-2"]


def test_spacy_limit_and_gpu_sections_say_which_goals_are_met():
    sys.path.insert(0, str(ROOT / "bench"))
    from peer_spacy import covering_length
    from report import gpu_section, limit_section, spacy_section

    recs = [{"entities": [{"start": 0, "end": n}]} for n in (1, 2, 2, 3, 9)]
    assert covering_length(recs, 0.5) == 2 and covering_length(recs, 0.97) == 9
    m = {"cpu": "cpu", "cores": 2, "torch": "2", "date": "d", "gpner_commit": "c"}
    arm = {"train": {"steps": 100, "epochs": 2, "evaluations": 3}, "curve": [],
           "precision": 0.8, "recall": 0.8}
    spacy = {"command": "python bench/peer_spacy.py --minutes 8", "machine": m, "minutes": 8,
             "pairs": {"CoNLL-2003 (test)": {
                 "arms": {"spaCy ner efficiency": {**arm, "f1": 0.80},
                          "gpner": {**arm, "train": {"epochs_run": 5, "best_epoch": 5},
                                    "f1": 0.83}},
                 "speed": {"spaCy ner efficiency": {"sents_per_s": 1000.0, "peak_rss_mb": 300},
                           "gpner onnx-int8": {"sents_per_s": 800.0, "peak_rss_mb": 280}}}}}
    text = "\n".join(spacy_section(spacy))
    assert "| gpner | 83.00 | 80.00 | 80.00 | 5 epochs, best 5 |" in text
    assert "- gpner ahead of spaCy ner efficiency on CoNLL-2003 (test): met (83.00 against " \
           "80.00)" in text
    assert "(one core each): missed (800 against 1,000 sentences/s, 0.80x)" in text
    limit = {"command": "python bench/limit.py", "machine": m,
             "prediction": [{"encoder": "builtin", "backend": "torch", "batch": 32,
                             "end_to_end_sents_per_s": 450.0, "bare_encoder_sents_per_s": 500.0,
                             "share_of_encoder_throughput": 0.9}],
             "training": {"bert-base": {"head": "egp", "batch_size": 16,
                                        "step_sents_per_s": 10.0,
                                        "bare_fwd_bwd_sents_per_s": 12.0,
                                        "step_over_bare": 1.2}}}
    text = "\n".join(limit_section(limit))
    assert "| builtin | torch | 32 | 450.0 | 500.0 | 90% | met |" in text
    assert "| bert-base | egp | 16 | 10.0 | 12.0 | 1.20x | missed |" in text
    assert "no session so far was lent one" in "\n".join(gpu_section(None))
    from report import peer_profile_section

    side = {"step_sents_per_s": 120.0, "step_over_bare": 1.2, "bare_fwd_bwd_sents_per_s": 144.0}
    prof = {"command": "python bench/peer_profile.py", "machine": m, "heads": {
        "gp": {"gpner": side, "bert4torch": {**side, "step_sents_per_s": 75.0,
                                             "step_over_bare": 1.9},
               "bare_b4t_over_gpner": 0.99, "step_ratio": 1.6, "bound": 1.92}}}
    assert ("| gp | 120.0 | 1.20x | 75.0 | 1.90x | 0.99 | 1.60x | 1.92x | missed; out of reach |"
            in "\n".join(peer_profile_section(prof)))
    prof["heads"]["gp"]["bound"] = 2.3
    assert "| 1.60x | 2.30x | missed |" in "\n".join(peer_profile_section(prof))
    gpu = {"command": "bash bench/gpu.sh", "machine": m, "gpu": "NVIDIA H100", "minutes": 6,
           "gpu_memory_mb": 81559, "cuda_version": "13.0", "encoder": "BERT", "data": "demo",
           "tests": {"passed": 10, "failed": ["test_x"], "skipped": 0},
           "training": [{"head": "gp", "precision": "bf16", "sents_per_s": 900.0,
                         "peak_gpu_mb": 5000, "losses_finite": True}],
           "prediction": [{"backend": "torch", "runs_on": "cuda", "batch": 32,
                           "sents_per_s": 3000.0}],
           "long_text": {"chars": 100000, "windows": 800, "seconds": 2.5, "peak_gpu_mb": 900}}
    text = "\n".join(gpu_section(gpu))
    assert "on NVIDIA H100 (81,559 MB" in text and "10 passed, 1 failed: test_x" in text
    assert "| gp | bf16 | 900.0 | 5000 | True |" in text
    assert "| torch | cuda | 32 | 3,000.0 |" in text and "800 windows, 2.5 s" in text


def test_peak_rss_is_the_workers_own_not_its_parents():
    """A worker started by a process that once held 200 MB reports its own peak: ru_maxrss
    would carry the parent's across fork and exec (the trap bench/speed.py fell into)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from common import peak_rss_mb

    code = ("import sys; sys.path.insert(0, sys.argv[1]); from common import peak_rss_mb; "
            "print(peak_rss_mb())")
    big = bytearray(200 * 2**20)
    big[::4096] = b"x" * len(big[::4096])  # touch every page: resident
    parent = peak_rss_mb()
    own = float(subprocess.run([sys.executable, "-c", code, str(ROOT / "bench")],
                               capture_output=True, text=True, check=True).stdout)
    del big
    assert parent > 200 and own < parent - 150
