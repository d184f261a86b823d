"""gpner against spaCy, the library most users pick for CPU NER (issue 34, point 1).

    python bench/peer_spacy.py [--minutes 8] [--quick]     # make bench-spacy sets up spaCy's env

No pretrained vectors on either side; spaCy runs in its own virtual environment
(``bench/peer_spacy_side.py``), gpner is the built-in encoder with default settings.

* **CoNLL-2003** (flat): spaCy's ``ner`` with its CPU ``efficiency`` and ``accuracy`` configs
  (``spacy init config``, static vectors off) against gpner; each chooses its model on valid
  (spaCy's ``model-best``, gpner's best epoch) and is scored on test.
* **CMeEE** (nested, Chinese characters): spaCy's ``spancat`` (candidates up to the length that
  covers 97% of the train entities, said in the results) against gpner, on a sample of train
  (``--cmeee-train``); dev is split in halves: even lines choose, odd lines are reported.

Every side trains with the same wall-clock budget (``--minutes``, counted from before
vocabulary building / initialisation) on one core, two sides at a time on the machine's two
cores. Both sides' predictions are scored by the same scorer (``gpner.metrics``: strict micro F1
on character spans). Prediction speed: sentences/s of one pass over the scored texts in a
fresh process after a warm-up (``nlp.pipe``; gpner ``predict`` with PyTorch and ONNX int8),
one core each, rounds interleaved A B A B, medians; gpner ONNX int8 on both cores too. Peak
RSS of each prediction process. The dev F1 against minutes of every run is plotted
(docs/peer_spacy.png). Writes ``bench/results/peer_spacy.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import DATA, RESULTS, ROOT, gpner_exe, machine, peak_rss_mb, plot_panels, save

SPACY = Path(os.environ.get("SPACY_VENV", "/tmp/gpner-spacy-venv"))
SIDE = ROOT / "bench" / "peer_spacy_side.py"


def write_jsonl(records: list, path: Path) -> Path:
    from gpner.data.formats import write

    write(records, path, "jsonl")
    return path


def spacy_train(task: str, lang: str, optimize: str, train: Path, dev: Path, minutes: float,
                out: Path, max_size: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        [str(SPACY / "bin" / "python"), str(SIDE), "train", "--task", task, "--lang", lang,
         "--optimize", optimize, "--train", str(train), "--dev", str(dev), "--minutes",
         str(minutes), "--output", str(out), "--max-size", str(max_size)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def gpner_train(train: Path, dev: Path, minutes: float, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [gpner_exe(), "train", "--train", str(train), "--dev", str(dev), "--output", str(out),
         "--no-progress", "--overwrite", "threads=1", f"max_minutes={minutes}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, what: str) -> str:
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{what} failed ({proc.returncode}):\n{err[-3000:]}")
    return out


def pair(jobs: list[tuple[str, subprocess.Popen]]) -> dict[str, str]:
    """Wait for jobs started together; their stdout by name."""
    return {name: finish(proc, name) for name, proc in jobs}


def predict_spacy(model: Path, texts: Path, out: Path | None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cmd = [str(SPACY / "bin" / "python"), str(SIDE), "predict", "--model", str(model),
           "--texts", str(texts)] + (["--out", str(out)] if out else [])
    return json.loads(finish(subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env,
                                              stderr=subprocess.PIPE, text=True),
                             "spaCy predict").splitlines()[-1])


def predict_gpner(model: Path, backend: str, threads: int | None, texts: Path, out: Path | None
                  ) -> dict:
    cmd = [sys.executable, __file__, "--worker", json.dumps(
        {"model": str(model), "backend": backend, "threads": threads, "texts": str(texts),
         "out": str(out) if out else None})]
    return json.loads(finish(subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True),
                             "gpner predict").splitlines()[-1])


def worker(spec: dict) -> dict:
    """One timed prediction pass of gpner in a fresh process (after a warm-up)."""
    from gpner.prediction.loading import load

    texts = [json.loads(x)["text"] for x in Path(spec["texts"]).read_text(
        encoding="utf-8").splitlines() if x.strip()]
    model = load(spec["model"], backend=spec["backend"], threads=spec["threads"])
    model.predict(texts[:64])
    t = time.perf_counter()
    pred = model.predict(texts, batch_size=32)
    seconds = time.perf_counter() - t
    if spec["out"]:
        write_jsonl(pred, Path(spec["out"]))
    return {"seconds": round(seconds, 3), "n": len(texts), "peak_rss_mb": peak_rss_mb()}


def score(gold: list, pred_file: Path) -> dict:
    from gpner.data.formats import read
    from gpner.metrics import evaluate

    m = evaluate(gold, read(pred_file).records)
    return {k: m[k] for k in ("f1", "precision", "recall")}


def gpner_curve(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text(encoding="utf-8")
            .splitlines() if x.strip()]
    return [{"minutes": round(r["minutes"], 2), "dev_f1": r["dev"]["f1"], "epoch": r["epoch"]}
            for r in rows if r.get("dev")]


def spacy_curve(out: Path) -> list[dict]:
    rows = [json.loads(x) for x in (out / "curve.jsonl").read_text(encoding="utf-8")
            .splitlines() if x.strip()]
    return [{"minutes": round(r["seconds"] / 60, 2), "dev_f1": r["score"], "step": r["step"]}
            for r in rows]


def covering_length(records: list, share: float) -> int:
    """The entity length (characters) that covers ``share`` of the entities."""
    lengths = sorted(e["end"] - e["start"] for r in records for e in r["entities"])
    return lengths[min(len(lengths) - 1, int(share * len(lengths)))]


def speeds(arms: dict, texts: Path, rounds: int) -> dict:
    """Prediction passes of every arm, interleaved round by round; medians."""
    times: dict = {name: [] for name in arms}
    rss: dict = {name: [] for name in arms}
    for _ in range(rounds):
        for name, run in arms.items():
            r = run(texts)
            times[name].append(r["seconds"])
            rss[name].append(r["peak_rss_mb"])
    n = sum(1 for x in texts.read_text(encoding="utf-8").splitlines() if x.strip())
    return {name: {"sents_per_s": round(n / statistics.median(v), 1), "n": n,
                   "seconds": v, "peak_rss_mb": max(rss[name])} for name, v in times.items()}


def plot(result: dict, path: Path) -> None:
    """One panel a pair: dev F1 against training minutes, one line a system."""
    plot_panels(path, [{"title": f"{name.split(' (')[0]}: dev F1 (the set that chooses) by minute",
                        "xlabel": "minutes (one core)", "ylabel": "dev F1",
                        "lines": [(arm, [c["minutes"] for c in a["curve"]],
                                   [100 * c["dev_f1"] for c in a["curve"]],
                                   {"marker": "o" if arm.startswith("gpner") else "."})
                                  for arm, a in p["arms"].items()]}
                       for name, p in result["pairs"].items()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker")
    ap.add_argument("--minutes", type=float, default=8.0, help="training budget of every side")
    ap.add_argument("--cmeee-train", type=int, default=5000, help="CMeEE train sample size")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--work", type=Path, default=Path("/tmp/gpner-peer-spacy"))
    ap.add_argument("--quick", action="store_true", help="tiny sizes and budget (a check)")
    ap.add_argument("--reuse", action="store_true",
                    help="score and time the models a previous run left in --work (no training)")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if not (SPACY / "bin" / "python").exists():
        raise SystemExit(f"no spaCy environment at {SPACY}: run `make bench-spacy`")
    from gpner.data.formats import read

    q, w = args.quick, args.work
    w.mkdir(parents=True, exist_ok=True)
    if q:
        args.minutes, args.rounds, args.cmeee_train = 0.3, 1, 300
    root = args.data_root
    conll = {k: read(root / "conll2003" / f"{k}.txt").records for k in ("train", "valid", "test")}
    cmeee_dev = read(root / "cmeee" / "dev.json").records
    cmeee = {"train": read(root / "cmeee" / "train.json").records[:args.cmeee_train],
             "dev_a": cmeee_dev[0::2], "dev_b": cmeee_dev[1::2]}
    if q:
        conll = {"train": conll["train"][:300], "valid": conll["valid"][:60],
                 "test": conll["test"][:60]}
        cmeee = {k: v[:300] if k == "train" else v[:60] for k, v in cmeee.items()}
    files = {f"conll-{k}": write_jsonl(v, w / f"conll-{k}.jsonl") for k, v in conll.items()}
    files |= {f"cmeee-{k}": write_jsonl(v, w / f"cmeee-{k}.jsonl") for k, v in cmeee.items()}
    max_size = covering_length(cmeee["train"], 0.97)
    m = args.minutes
    result: dict = {
        "command": "python bench/peer_spacy.py" + (" --quick" if q else
                                                  f" --minutes {m:g}"),
        "machine": machine(), "minutes": m, "pairs": {}}
    started = time.monotonic()
    if args.reuse:
        result["command"] += " (trained; then --reuse: scored and timed again)"
        previous = json.loads((RESULTS / "peer_spacy.json").read_text(encoding="utf-8"))
        result["train_minutes_total"] = previous.get("train_minutes_total")
        arms = {a: v["train"] for p in previous["pairs"].values() for a, v in p["arms"].items()}
        eff, acc, sc = (arms["spaCy ner efficiency"], arms["spaCy ner accuracy"],
                        arms["spaCy spancat"])
    else:
        eff, acc, sc = train_all(files, w, m, max_size)
        result["train_minutes_total"] = round((time.monotonic() - started) / 60, 1)
    score_and_time(result, conll, cmeee, files, w, max_size, args.rounds, eff, acc, sc)
    save(RESULTS / ("peer_spacy.quick.json" if q else "peer_spacy.json"), result)
    if not q:
        plot(result, ROOT / "docs" / "peer_spacy.png")


def train_all(files: dict, w: Path, m: float, max_size: int) -> tuple[dict, dict, dict]:
    """Every side's training, two at a time on a core each; spancat last, alone. Returns the
    spaCy sides' training reports (efficiency, accuracy, spancat)."""
    out = pair([("gpner conll", gpner_train(files["conll-train"], files["conll-valid"], m,
                                            w / "gpner-conll")),
                ("spacy ner efficiency", spacy_train("ner", "en", "efficiency",
                                                     files["conll-train"], files["conll-valid"],
                                                     m, w / "spacy-eff", 3))])
    eff = json.loads(out["spacy ner efficiency"].splitlines()[-1])
    out = pair([("spacy ner accuracy", spacy_train("ner", "en", "accuracy", files["conll-train"],
                                                   files["conll-valid"], m, w / "spacy-acc", 3)),
                ("gpner cmeee", gpner_train(files["cmeee-train"], files["cmeee-dev_a"], m,
                                            w / "gpner-cmeee"))])
    acc = json.loads(out["spacy ner accuracy"].splitlines()[-1])
    out = pair([("spacy spancat", spacy_train("spancat", "zh", "efficiency",
                                              files["cmeee-train"], files["cmeee-dev_a"], m,
                                              w / "spacy-sc", max_size))])
    sc = json.loads(out["spacy spancat"].splitlines()[-1])
    return eff, acc, sc


def score_and_time(result: dict, conll: dict, cmeee: dict, files: dict, w: Path, max_size: int,
                   rounds: int, eff: dict, acc: dict, sc: dict) -> None:
    """Both sides' F1 by one scorer, their prediction speed and peak RSS, into ``result``."""
    for name, gold, texts, gp_run, sp in (
            ("CoNLL-2003 (test)", conll["test"], files["conll-test"], w / "gpner-conll",
             {"spaCy ner efficiency": (w / "spacy-eff", eff),
              "spaCy ner accuracy": (w / "spacy-acc", acc)}),
            ("CMeEE sample (dev half B)", cmeee["dev_b"], files["cmeee-dev_b"],
             w / "gpner-cmeee", {"spaCy spancat": (w / "spacy-sc", sc)})):
        arms: dict = {}
        for arm, (d, info) in sp.items():
            predict_spacy(d / "model-best", texts, d / "pred.jsonl")
            arms[arm] = {"train": info, "curve": spacy_curve(d),
                         **score(gold, d / "pred.jsonl")}
        predict_gpner(gp_run, "torch", 1, texts, gp_run / "pred.jsonl")
        summary = json.loads((gp_run / "summary.json").read_text(encoding="utf-8"))
        arms["gpner"] = {"train": {k: summary.get(k) for k in (
            "epochs_run", "best_epoch", "best_f1", "minutes", "skipped_steps")},
            "curve": gpner_curve(gp_run), **score(gold, gp_run / "pred.jsonl")}
        subprocess.run([gpner_exe(), "export", str(gp_run), "--onnx", "--int8"], check=True,
                       capture_output=True)
        runners = {arm: (lambda t, d=d: predict_spacy(d / "model-best", t, None))
                   for arm, (d, _) in sp.items()}
        runners |= {label: (lambda t, b=b, n=n, r=gp_run: predict_gpner(r, b, n, t, None))
                    for label, b, n in (("gpner torch", "torch", 1),
                                        ("gpner onnx-int8", "onnx-int8", 1),
                                        ("gpner onnx-int8, 2 cores", "onnx-int8", 2))}
        result["pairs"][name] = {"arms": arms, "speed": speeds(runners, texts, rounds)}
        if name.startswith("CMeEE"):
            result["pairs"][name]["spancat_max_size"] = max_size
            result["pairs"][name]["train_sentences"] = len(cmeee["train"])
        print(json.dumps({name: {a: v["f1"] for a, v in arms.items()}}), flush=True)


if __name__ == "__main__":
    main()
