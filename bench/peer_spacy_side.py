"""spaCy's side of bench/peer_spacy.py; runs in spaCy's own environment (no gpner import).

    python peer_spacy_side.py train --task ner --lang en --optimize efficiency \
        --train train.jsonl --dev dev.jsonl --minutes 8 --output DIR
    python peer_spacy_side.py predict --model DIR/model-best --texts test.jsonl --out pred.jsonl

Records are JSON lines ``{"text", "entities": [{"start", "end", "label"}]}`` with character
offsets (what gpner writes). ``train`` builds spaCy's own config for the pipeline
(``spacy init config``'s CPU template, no static vectors), converts the records into DocBins
(a span that is not on spaCy's token boundaries is counted, not guessed), trains with spaCy's
loop and stops after ``--minutes`` of wall-clock time counted from before initialisation; the
loop saves ``model-best`` (best dev score) at every evaluation (spaCy's default: every 200
steps), the step that runs out of time evaluates once more (as gpner evaluates when its budget
ends), and the best model is the result. The dev score after every evaluation goes to
``curve.jsonl`` (seconds, score). ``predict`` runs
``nlp.pipe`` over the texts after a warm-up and prints the seconds of one timed pass and the
peak RSS; the predicted spans go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import spacy
from spacy.tokens import DocBin

KEY = "sc"  # spancat's span group


class OutOfTime(Exception):
    """Raised by the logger once the wall-clock budget is spent (spaCy has no time limit)."""


def read(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def docbin(nlp, records: list[dict], task: str, out: Path) -> dict:
    """Records -> a DocBin; spans off spaCy's token boundaries are counted."""
    db, lost, kept = DocBin(), 0, 0
    for r in records:
        doc = nlp.make_doc(r["text"])
        spans = []
        for e in r["entities"]:
            span = doc.char_span(e["start"], e["end"], label=e["label"], alignment_mode="strict")
            if span is None:
                lost += 1
            else:
                spans.append(span)
        if task == "ner":
            spans = spacy.util.filter_spans(spans)  # flat: doc.ents cannot overlap
            doc.ents = spans
        else:
            doc.spans[KEY] = spans
        kept += len(spans)
        db.add(doc)
    db.to_disk(out)
    return {"spans": kept, "off_token_boundaries": lost}


def config_for(task: str, lang: str, optimize: str, train: Path, dev: Path, max_size: int):
    from spacy.cli.init_config import init_config

    cfg = init_config(lang=lang, pipeline=[task], optimize=optimize, gpu=False)
    cfg["paths"]["train"], cfg["paths"]["dev"] = str(train), str(dev)
    embed = cfg["components"]["tok2vec"]["model"].get("embed", {})
    if "include_static_vectors" in embed:  # no pretrained vectors on either side
        embed["include_static_vectors"] = False
    cfg["initialize"]["vectors"] = None
    cfg["training"]["max_steps"] = 0  # the wall-clock budget ends training
    cfg["training"]["max_epochs"] = 0
    cfg["training"]["patience"] = 0
    cfg["training"]["logger"] = {"@loggers": "gpner.BudgetLogger.v1"}
    if task == "spancat":  # candidate spans up to max_size tokens (default 1 to 3)
        cfg["components"]["spancat"]["suggester"] = {
            "@misc": "spacy.ngram_range_suggester.v1", "min_size": 1, "max_size": max_size}
        cfg["components"]["spancat"]["spans_key"] = KEY
    return cfg


def train(args: argparse.Namespace) -> dict:
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train as spacy_train

    started = time.monotonic()
    budget = args.minutes * 60
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "curve.jsonl").unlink(missing_ok=True)  # a run before this one in the same folder
    curve: list[dict] = []

    def record(row: dict) -> None:
        curve.append(row)
        with open(out / "curve.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    @spacy.registry.loggers("gpner.BudgetLogger.v1")
    def budget_logger():
        def setup(nlp, stdout=sys.stdout, stderr=sys.stderr):
            steps = [0]

            def log_step(info):
                steps[0] += 1
                if info is not None:  # an evaluation: model-best is already on disk
                    record({"seconds": round(time.monotonic() - started, 1),
                            "step": info["step"], "epoch": info["epoch"],
                            "score": info["score"], "other": info["other_scores"]})
                if time.monotonic() - started > budget:
                    if info is None:  # stopped between evaluations: evaluate here, as gpner
                        final_evaluation(nlp, steps[0])  # does at the end of its budget
                    raise OutOfTime()
            return log_step, lambda: None
        return setup

    def final_evaluation(nlp, step: int) -> None:
        from spacy.training import Corpus

        key = "ents_f" if args.task == "ner" else f"spans_{KEY}_f"
        scores = nlp.evaluate(list(Corpus(str(dev_db))(nlp)))
        score = float(scores.get(key) or 0.0)
        if not curve or score > max(c["score"] for c in curve):
            nlp.to_disk(out / "model-best")
        record({"seconds": round(time.monotonic() - started, 1), "step": step,
                "epoch": curve[-1]["epoch"] if curve else 0, "score": score,
                "other": {key: score}, "final": True})

    nlp0 = spacy.blank(args.lang)
    train_db, dev_db = out / "train.spacy", out / "dev.spacy"
    report = {"train": docbin(nlp0, read(args.train), args.task, train_db),
              "dev": docbin(nlp0, read(args.dev), args.task, dev_db)}
    cfg = config_for(args.task, args.lang, args.optimize, train_db, dev_db, args.max_size)
    cfg["training"]["eval_frequency"] = args.eval_frequency
    nlp = init_nlp(cfg)
    try:
        spacy_train(nlp, out, stdout=open("/dev/null", "w"))  # noqa: SIM115
    except OutOfTime:
        pass
    best = max(curve, key=lambda c: c["score"]) if curve else None
    return {"seconds": round(time.monotonic() - started, 1), "evaluations": len(curve),
            "steps": curve[-1]["step"] if curve else 0,
            "epochs": curve[-1]["epoch"] if curve else 0,
            "best_dev_score": best["score"] if best else None, "docbin": report,
            "spacy": spacy.__version__, "peak_rss_mb": rss_mb()}


def rss_mb() -> float:
    """This process's own peak RSS (VmHWM): ru_maxrss carries the parent's peak across exec."""
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def predict(args: argparse.Namespace) -> dict:
    nlp = spacy.load(args.model)
    texts = [r["text"] for r in read(args.texts)]
    list(nlp.pipe(texts[:64]))  # warm-up
    t = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=args.batch_size))
    seconds = time.perf_counter() - t
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            for doc in docs:
                spans = doc.spans.get(KEY, []) if "spancat" in nlp.pipe_names else doc.ents
                f.write(json.dumps({"text": doc.text, "entities": [
                    {"start": s.start_char, "end": s.end_char, "label": s.label_}
                    for s in spans]}, ensure_ascii=False) + "\n")
    return {"seconds": round(seconds, 3), "n": len(texts), "peak_rss_mb": rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--task", choices=["ner", "spancat"], required=True)
    t.add_argument("--lang", required=True)
    t.add_argument("--optimize", choices=["efficiency", "accuracy"], default="efficiency")
    t.add_argument("--train", required=True)
    t.add_argument("--dev", required=True)
    t.add_argument("--minutes", type=float, required=True)
    t.add_argument("--output", required=True)
    t.add_argument("--max-size", type=int, default=3, help="spancat's longest candidate")
    t.add_argument("--eval-frequency", type=int, default=200)
    p = sub.add_parser("predict")
    p.add_argument("--model", required=True)
    p.add_argument("--texts", required=True)
    p.add_argument("--out")
    p.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    print(json.dumps(train(args) if args.cmd == "train" else predict(args)), flush=True)


if __name__ == "__main__":
    main()
