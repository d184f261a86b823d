"""Accuracy benchmark: train and evaluate every (data set, head, regulariser) row with the
product's own CLI, one JSON result per row in bench/results/accuracy/.

    python bench/accuracy.py                 # every row not yet measured
    python bench/accuracy.py --only cluener  # rows whose name contains "cluener"
    python bench/accuracy.py --force         # measure again (the old result moves to "tried")
    python bench/accuracy.py --only NAME --adopt RUN_DIR [--tried]
                                             # evaluate a run made by hand with the row's settings
    python bench/accuracy.py --only NAME --tried key=value ...
                                             # measure other settings; the row keeps its result

Each row is `gpner train` (defaults plus the row's settings, max_minutes=28 so a run always fits
in 30 minutes on 2 cores) followed by `gpner evaluate --json` on the row's evaluation split.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import DATA, RESULTS, gpner_exe, machine, portable, run, save, show_command

from gpner.tasks import HEADS

# name: (train, dev for early stopping, evaluation split, label of the split)
DATASETS = {
    "cluener": ("cluener/train.json", "cluener/dev.json", "cluener/dev.json", "dev"),
    "peoples_daily": ("peoples_daily/example.train", "peoples_daily/example.dev",
                      "peoples_daily/example.test", "test"),
    "cmeee": ("cmeee/train.json", "cmeee/dev.json", "cmeee/dev.json", "dev"),
    "conll2003": ("conll2003/train.txt", "conll2003/valid.txt", "conll2003/test.txt", "test"),
}
# the R-Drop rows measure the published divergence (a sum over every cell); the default since
# then is its mean over each text's cells, measured as "tried" runs of cmeee-gp+rdrop
EXTRA = {"gp+rdrop": ["rdrop=1.0", "divergence=sum"], "gp+fgm": ["fgm=1.0"]}


def rows(minilm: str | None = None) -> list[dict]:
    out = []
    for ds in DATASETS:
        for head in HEADS:
            out.append({"name": f"{ds}-{head}", "data": ds, "head": head, "settings": []})
        if ds in ("cluener", "cmeee"):
            for name, settings in EXTRA.items():
                out.append({"name": f"{ds}-{name}", "data": ds, "head": "gp",
                            "settings": settings})
    if minilm:
        for head in HEADS:
            out.append({"name": f"conll2003-minilm-{head}", "data": "conll2003", "head": head,
                        "encoder": minilm,
                        # chosen on dev F1 with GP: 92.68 here, 92.22 with epochs=6 and the
                        # default encoder_lr=3e-5 (docs/benchmarks.md, "tried")
                        "settings": ["epochs=8", "batch_size=16", "encoder_lr=1e-4"]})
    return out


def measure(row: dict, data_root: Path, runs: Path, extra: list[str],
            tried: bool = False) -> dict:
    train, dev, test, split = DATASETS[row["data"]]
    # a tried run gets its own directory, so the row's chosen model stays on disk
    name = row["name"] + ("+" + "+".join(extra) if tried and extra else "")
    out_dir = runs / name
    cmd = [gpner_exe(), "train", "--train", str(data_root / train), "--dev",
           str(data_root / dev), "--output", str(out_dir), "--head", row["head"], "--no-progress",
           "--overwrite"]
    if row.get("encoder"):
        cmd += ["--encoder", row["encoder"]]
    cmd += _merged(["max_minutes=28", *row["settings"], *extra])
    started = time.time()
    run(cmd, runs / f"{name}.train.log")
    minutes = (time.time() - started) / 60
    ev = [gpner_exe(), "evaluate", str(out_dir), str(data_root / test), "--json"]
    return _result(row, split, run_dir=out_dir, ev=ev, cmd=cmd, data_root=data_root,
                   encoder=row.get("encoder", "builtin"), settings=row["settings"] + extra,
                   minutes=round(minutes, 1))


def adopt(row: dict, run_dir: Path, data_root: Path) -> dict:
    """Result of a finished run made outside the harness with the row's settings: evaluated
    here; its command is rebuilt from the run's config.yaml (settings that differ from the
    defaults)."""
    import yaml

    from gpner.training.config import TrainConfig

    train, dev, test, split = DATASETS[row["data"]]
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    if cfg["head"] != row["head"]:
        raise ValueError(f"{run_dir} trained head {cfg['head']}, row {row['name']} wants "
                         f"{row['head']}")
    if (cfg["encoder"] == "builtin") != ("encoder" not in row):
        raise ValueError(f"{run_dir} trained encoder {cfg['encoder']}, row {row['name']} wants "
                         f"{row.get('encoder', 'builtin')}")
    defaults = TrainConfig().to_dict()
    # (`extra`, an unused key of gpner 0.1.0 runs, is not a setting any more)
    changed = [f"{k}={v}" for k, v in cfg.items() if k not in ("head", "encoder", "extra")
               and v != defaults[k]]
    cmd = ["gpner", "train", "--train", str(data_root / train), "--dev", str(data_root / dev),
           "--output", str(run_dir), "--head", row["head"]]
    if "encoder" in row:
        cmd += ["--encoder", cfg["encoder"]]
    ev = [gpner_exe(), "evaluate", str(run_dir), str(data_root / test), "--json"]
    return _result(row, split, run_dir=run_dir, ev=ev, cmd=cmd + changed, data_root=data_root,
                   encoder=cfg["encoder"], settings=changed, minutes=None, adopted=True)


def _merged(settings: list[str]) -> list[str]:
    """key=value settings with each key once, a later value replacing an earlier one in place,
    so a recorded command reads as what ran."""
    out: dict[str, str] = {}
    for item in settings:
        out[item.split("=", 1)[0]] = item
    return list(out.values())


def _result(row: dict, split: str, run_dir: Path, ev: list[str], cmd: list[str],
            data_root: Path, encoder: str, settings: list[str], minutes: float | None,
            **extra) -> dict:
    """One result row: `gpner evaluate --json` on the split, plus the run's summary.json."""
    result = json.loads(run(ev).stdout)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    return {"name": row["name"], "data": row["data"], "split": split, "head": row["head"],
            "encoder": portable(encoder), "settings": settings,
            "f1": result["f1"], "precision": result["precision"], "recall": result["recall"],
            "macro_f1": result["macro_f1"], "best_dev_f1": summary["best_dev_f1"],
            "epochs": summary["epochs_run"], "best_epoch": summary["best_epoch"],
            "train_minutes": summary["minutes"] if minutes is None else minutes,
            "skipped": summary["data"]["train_alignment"]["skipped"],
            "command": show_command(cmd, data_root), "eval_command": show_command(ev, data_root),
            **extra, "machine": machine()}


def record(path: Path, res: dict, tried_only: bool = False) -> None:
    """Save a row's result. A result it replaces moves to the row's "tried" list, so settings
    measured and not chosen stay on record; `tried_only` files `res` there instead."""
    old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    if tried_only:
        if old is None:
            raise SystemExit(f"{path}: no result yet to file a tried run beside")
        old.setdefault("tried", []).append(res)
        res = old
    elif old is not None:
        res["tried"] = old.pop("tried", []) + [old]
    save(path, res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", help="row names (comma-separated; exact, else substrings)")
    ap.add_argument("--force", action="store_true", help="re-measure rows that have results")
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--runs", type=Path, default=Path("runs/bench"))
    ap.add_argument("--results", type=Path, default=RESULTS / "accuracy")
    ap.add_argument("--minilm", help="directory of the MiniLM-L6 model (see docs/benchmarks.md)")
    ap.add_argument("--list", action="store_true", help="print the rows and exit")
    ap.add_argument("--adopt", type=Path, help="with --only NAME: evaluate this finished run "
                    "directory (trained with the row's settings) instead of training")
    ap.add_argument("--tried", action="store_true", help="file the run (adopted, or measured "
                    "with the key=value extras) under the row's settings tried, keeping the "
                    "row's result")
    ap.add_argument("extra", nargs="*", help="key=value settings added to every row")
    args = ap.parse_args()
    todo = rows(args.minilm)
    if args.only:  # comma-separated; an exact row name wins over a substring
        wanted = args.only.split(",")
        by_name = {r["name"]: r for r in todo}
        todo = [by_name[w] for w in wanted if w in by_name] or \
            [r for r in todo if any(w in r["name"] for w in wanted)]
    if args.list:
        print("\n".join(r["name"] for r in todo))
        return
    if args.adopt:
        if len(todo) != 1:
            raise SystemExit("--adopt needs --only naming exactly one row")
        res = adopt(todo[0], args.adopt, args.data_root)
        record(args.results / f"{todo[0]['name']}.json", res, tried_only=args.tried)
        print(f"{todo[0]['name']}: F1 {res['f1']:.4f} ({res['split']}), adopted {args.adopt}"
              + (" as tried" if args.tried else ""))
        return
    for row in todo:
        path = args.results / f"{row['name']}.json"
        if args.tried and not path.exists():
            raise SystemExit(f"{row['name']}: --tried needs the row's own result first ({path})")
        if path.exists() and not (args.force or args.tried):
            print(f"{row['name']}: done ({path})")
            continue
        print(f"{row['name']}: training ...", flush=True)
        res = measure(row, args.data_root, args.runs, args.extra, tried=args.tried)
        record(path, res, tried_only=args.tried)
        print(f"{row['name']}: F1 {res['f1']:.4f} ({res['split']}) in {res['train_minutes']} min"
              + (" as tried" if args.tried else ""), flush=True)


if __name__ == "__main__":
    main()
