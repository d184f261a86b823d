"""Does `gpner tune` beat the default settings at the same budget? On CLUENER with the built-in
encoder: dev is split in two halves (even and odd lines); runs choose their epoch on half A, and
the chosen run is scored on half B, which nothing was chosen on (CLUENER's test set has no
labels).

Two arms, each given the same wall-clock budget (four default runs: 4 x 18 min on this kind of
machine) and one thread, run one after the other or side by side:

    python bench/tune.py --arm default   # default settings, seeds 1, 2, ... until the budget ends
    python bench/tune.py --arm tune      # gpner tune --space bench/tune_space.yaml, same budget

Each arm's result goes into bench/results/tune.json (under "arms"); `make bench-tune` runs both
and regenerates docs/benchmarks.md. The default arm's last run gets what is left of the budget
as max_minutes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import DATA, RESULTS, gpner_exe, machine, portable, run, save, show_command

OUT = RESULTS / "tune.json"
SPACE = Path(__file__).parent / "tune_space.yaml"
BUDGET = 72.0  # minutes: four default CLUENER runs (18.22 min each, docs/benchmarks.md)


def halves(data_root: Path, runs: Path) -> tuple[Path, Path]:
    """dev.json split into dev_a (even lines: choosing) and dev_b (odd lines: reporting)."""
    lines = (data_root / "cluener" / "dev.json").read_text(encoding="utf-8").splitlines()
    runs.mkdir(parents=True, exist_ok=True)
    a, b = runs / "dev_a.json", runs / "dev_b.json"
    a.write_text("".join(x + "\n" for x in lines[0::2]), encoding="utf-8")
    b.write_text("".join(x + "\n" for x in lines[1::2]), encoding="utf-8")
    return a, b


def score(model: Path, gold: Path, runs: Path) -> dict:
    """Strict micro P/R/F1 of ``model`` on ``gold`` (gpner evaluate --json)."""
    res = run([gpner_exe(), "evaluate", str(model), str(gold), "--json", "--no-progress"])
    out = json.loads(res.stdout)
    return {k: out[k] for k in ("precision", "recall", "f1")}


def default_arm(args: argparse.Namespace, train: Path, dev_a: Path, dev_b: Path) -> dict:
    started, rows, seed = time.monotonic(), [], 0
    while (left := args.budget - (time.monotonic() - started) / 60) > 1.0:
        seed += 1
        out = args.runs / "default" / f"seed-{seed}"
        cmd = [gpner_exe(), "train", "--train", str(train), "--dev", str(dev_a), "--output",
               str(out), "--no-progress", "--overwrite", f"seed={seed}", "threads=1",
               f"max_minutes={left:.2f}"]
        run(cmd, args.runs / "logs" / f"default-seed-{seed}.log")
        s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        rows.append({"seed": seed, "dev_a_f1": s["best_dev_f1"], "epochs": s["epochs_run"],
                     "minutes": s["minutes"], "command": show_command(cmd, args.data_root)})
        print(json.dumps(rows[-1]), flush=True)
    best = max(rows, key=lambda r: r["dev_a_f1"])
    best["dev_b"] = score(args.runs / "default" / f"seed-{best['seed']}" / "model", dev_b,
                          args.runs)
    return {"arm": "default", "budget_minutes": args.budget,
            "minutes": round((time.monotonic() - started) / 60, 2), "runs": rows, "best": best}


def tune_arm(args: argparse.Namespace, train: Path, dev_a: Path, dev_b: Path) -> dict:
    started = time.monotonic()
    out = args.runs / "tune"
    cmd = [gpner_exe(), "tune", "--train", str(train), "--dev", str(dev_a), "--output", str(out),
           "--space", str(args.space), "--minutes",
           str(args.budget), "--no-progress", "--warmup-epochs", "1", "threads=1"]
    if (out / "study.db").exists():
        cmd.append("--resume")
    run(cmd, args.runs / "logs" / "tune.log")
    table = json.loads((out / "trials.json").read_text(encoding="utf-8"))
    best = dict(table["best"])
    best["dev_b"] = score(out / "best" / "model", dev_b, args.runs)
    return {"arm": "tune", "budget_minutes": args.budget,
            "minutes": round((time.monotonic() - started) / 60, 2), "trials": table["trials"],
            "pruned_minutes_saved": table.get("pruned_minutes_saved"), "best": best,
            "command": show_command(cmd, args.data_root)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arm", choices=("default", "tune"), required=True)
    ap.add_argument("--budget", type=float, default=BUDGET, help="minutes per arm")
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--runs", type=Path, default=Path("runs/tune-bench"))
    ap.add_argument("--space", type=Path, default=SPACE, help="the tune arm's search space")
    ap.add_argument("--results", type=Path, default=OUT, help="the JSON file the arms go to")
    ap.add_argument("--title", help="the experiment's line in docs/benchmarks.md")
    args = ap.parse_args()
    train = args.data_root / "cluener" / "train.json"
    dev_a, dev_b = halves(args.data_root, args.runs)
    if args.arm:
        arm = (default_arm if args.arm == "default" else tune_arm)(args, train, dev_a, dev_b)
        # read only now: the other arm, run side by side, may have saved in the meantime
        out = args.results
        data = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {"arms": {}}
        data["arms"][args.arm] = arm
        data["machine"] = machine()
        data["space"] = portable(str(args.space))
        data["results"] = portable(str(args.results.resolve()))
        if args.title:
            data["title"] = args.title
        save(out, data)
        print(json.dumps(arm["best"]), flush=True)


if __name__ == "__main__":
    main()
