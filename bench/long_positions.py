"""CoNLL-2003 as whole documents with MiniLM-L6 and extended positions, against the
sentence-level row (issue 12, point 3).

Converts the ``-DOCSTART-`` documents to JSON lines (``gpner convert --documents``), trains GP
with ``encoder_max_length=1024 max_length=1024`` (MiniLM has 512 positions; the test documents
are at most 867 word pieces, so each is one window) and the sentence-level row's settings
otherwise, evaluates on the test documents and writes ``bench/results/conll2003-docs.json``.

    make bench-minilm-docs            # or: python bench/long_positions.py --minilm DIR
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import DATA, RESULTS, ROOT, gpner_exe, machine, run, save

SETTINGS = ["head=gp", "batch_size=4", "encoder_lr=0.0001", "max_length=1024",
            "encoder_max_length=1024"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minilm", required=True, help="MiniLM-L6 model directory")
    ap.add_argument("--data-root", default=str(DATA))
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench" / "conll-docs"))
    ap.add_argument("--minutes", type=float, default=28.0, help="time budget; 0: none")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    work, src = Path(args.work), Path(args.data_root) / "conll2003"
    work.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        res = run([gpner_exe(), "-q", "convert", str(src / f"{split}.txt"), "-o",
                   str(work / f"{split}.jsonl"), "--documents"])
        if res.returncode:
            raise SystemExit(res.stderr)
    settings = SETTINGS + [f"epochs={args.epochs}", f"threads={args.threads}"] + (
        [f"max_minutes={args.minutes}"] if args.minutes else [])
    cmd = [gpner_exe(), "train", "--train", str(work / "train.jsonl"), "--dev",
           str(work / "valid.jsonl"), "--output", str(work / "run"), "--encoder", args.minilm,
           "--no-progress", "--overwrite", *settings]
    started = time.time()
    res = run(cmd, work / "train.log")
    if res.returncode:
        raise SystemExit(f"training failed: see {work / 'train.log'}")
    minutes = (time.time() - started) / 60
    ev = run([gpner_exe(), "evaluate", str(work / "run"), str(work / "test.jsonl"), "--json"])
    result = json.loads(ev.stdout)
    summary = json.loads((work / "run" / "summary.json").read_text())
    sentence = json.loads((RESULTS / "accuracy" / "conll2003-minilm-gp.json").read_text())
    docs = (work / "test.jsonl").read_text().splitlines()
    row = {"name": "conll2003-minilm-docs-gp", "split": "test (231 documents)",
           "settings": settings, "f1": result["f1"], "precision": result["precision"],
           "recall": result["recall"], "best_dev_f1": summary.get("best_dev_f1"),
           "best_epoch": summary.get("best_epoch"), "epochs_run": summary.get("epochs_run"),
           "train_minutes": round(minutes, 2), "test_documents": len(docs),
           "command": " ".join(["gpner convert ../shared/data/conll2003/{train,valid,test}.txt "
                                "--documents;"] + [str(c) for c in cmd[1:]]),
           "machine": machine()}
    path = RESULTS / "conll2003-docs.json"  # one row per settings, the latest run of each
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    rows = [r for r in rows if r["settings"] != settings] + [row]
    save(path, {"sentence_level_f1": sentence["f1"], "rows": rows})
    print(f"documents F1 {result['f1']:.4f} vs sentences {sentence['f1']:.4f}")


if __name__ == "__main__":
    main()
