"""Relation-extraction benchmark (GPLinker): train and evaluate each row with the product's own
CLI, one JSON result per row in bench/results/relations/.

    python bench/relations.py                      # every row not yet measured
    python bench/relations.py --only duie          # rows whose name contains "duie"
    python bench/relations.py --minilm DIR         # adds the WebNLG* rows (MiniLM-L6 encoder)
    python bench/relations.py --force              # measure again (the old result is kept as "tried")

Each row is `gpner train` (max_minutes=28, so a run fits in 30 minutes on 2 cores) and
`gpner evaluate --json` on the row's evaluation split: triple F1 strict (both entity spans and
the relation exact) and partial (last word of each entity, compared as text: the WebNLG*
scoring), by overlap class and by triples per sentence, and the entity F1.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from accuracy import record
from common import DATA, RESULTS, gpner_exe, machine, portable, run, show_command

# name: (train, dev for early stopping, evaluation split, label of the split)
DATASETS = {
    "webnlg": ("webnlg/train_triples.json", "webnlg/val_triples.json",
               "webnlg/test_triples.json", "test"),
    "duie": ("duie/train_data.json", "duie/dev_data.json", "duie/dev_data.json", "dev"),
    "cmeie": ("cmeie/CMeIE_train.json", "cmeie/CMeIE_dev.json", "cmeie/CMeIE_dev.json", "dev"),
}


def rows(minilm: str | None = None) -> list[dict]:
    out = [{"name": "duie-egp", "data": "duie", "head": "egp", "settings": ["epochs=30"]},
           # 500 sentences are 16 steps an epoch at the default batch: dev F1 stayed 0 for
           # the first epochs and the default patience (4) stopped a first run after 5 epochs
           # at F1 0 (kept under "tried"); smaller batches give 4x the steps
           {"name": "cmeie-egp", "data": "cmeie", "head": "egp",
            "settings": ["epochs=30", "batch_size=8", "patience=10"]}]
    if minilm:
        out.append({"name": "webnlg-minilm-egp", "data": "webnlg", "head": "egp",
                    "encoder": minilm,
                    "settings": ["epochs=12", "batch_size=16", "encoder_lr=1e-4"]})
    return out


def measure(row: dict, data_root: Path, runs: Path, extra: list[str]) -> dict:
    train, dev, test, split = DATASETS[row["data"]]
    out_dir = runs / row["name"]
    cmd = [gpner_exe(), "train", "--train", str(data_root / train), "--dev",
           str(data_root / dev), "--output", str(out_dir), "--head", row["head"], "--task",
           "relations", "--no-progress", "--overwrite"]
    if row.get("encoder"):
        cmd += ["--encoder", row["encoder"]]
    settings = list({s.split("=", 1)[0]: s for s in
                     ["max_minutes=28", *row["settings"], *extra]}.values())
    cmd += settings
    started = time.time()
    run(cmd, runs / f"{row['name']}.train.log")
    minutes = (time.time() - started) / 60
    ev = [gpner_exe(), "evaluate", str(out_dir), str(data_root / test), "--json"]
    result = json.loads(run(ev).stdout)
    summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))

    def prf(r: dict) -> dict:
        return {k: r[k] for k in ("precision", "recall", "f1", "support")}

    return {"name": row["name"], "data": row["data"], "split": split, "head": row["head"],
            "encoder": portable(row.get("encoder", "builtin")), "settings": settings,
            "f1": result["f1"], "precision": result["precision"], "recall": result["recall"],
            "partial": prf(result["partial"]), "entities": prf(result["entities"]),
            "by_overlap": {k: prf(v) | {"sentences": v["sentences"]}
                           for k, v in result["by_overlap"].items()},
            "by_count": {k: prf(v) | {"sentences": v["sentences"]}
                         for k, v in result["by_count"].items()},
            "data_report": {k: result["data"].get(k) for k in ("records", "entities",
                                                               "relations", "skipped", "notes")},
            "train_alignment": summary["data"]["train_alignment"]["skipped"],
            "best_dev_f1": summary["best_dev_f1"], "epochs": summary["epochs_run"],
            "best_epoch": summary["best_epoch"], "train_minutes": round(minutes, 1),
            "command": show_command(cmd, data_root), "eval_command": show_command(ev, data_root),
            "machine": machine()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", help="rows whose name contains this")
    ap.add_argument("--force", action="store_true", help="re-measure rows that have results")
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--runs", type=Path, default=Path("runs/bench"))
    ap.add_argument("--results", type=Path, default=RESULTS / "relations")
    ap.add_argument("--minilm", help="directory of the MiniLM-L6 model (see docs/benchmarks.md)")
    ap.add_argument("extra", nargs="*", help="key=value settings added to every row")
    args = ap.parse_args()
    for row in rows(args.minilm):
        if args.only and args.only not in row["name"]:
            continue
        path = args.results / f"{row['name']}.json"
        if path.exists() and not args.force:
            print(f"{row['name']}: done ({path})")
            continue
        print(f"{row['name']}: training ...", flush=True)
        res = measure(row, args.data_root, args.runs, args.extra)
        record(path, res)  # a result it replaces stays on record under "tried"
        print(f"{row['name']}: F1 {res['f1']:.4f} (partial {res['partial']['f1']:.4f}, "
              f"{res['split']}) in {res['train_minutes']} min", flush=True)


if __name__ == "__main__":
    main()
