"""Does an ensemble of three built-in CLUENER runs, distilled into one default student, beat a
single run? Dev is split in two halves as in bench/tune.py: every run chooses its epoch on half
A and is scored on half B, which nothing was chosen on. The student also learns from the
teachers' labels for CLUENER's unlabeled test texts.

    python bench/distill.py --minutes 15   # teachers (seeds 1..3, skipped when done), then
                                           # the student; every run 15 minutes at most

Goal (issue 29): the student's dev F1 >= 76.5 where a single model gets 75.31. Results go to
bench/results/distill.json and the "Distillation" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import DATA, RESULTS, gpner_exe, machine, portable, run, save, show_command
from tune import halves, score

OUT = RESULTS / "distill.json"


def trained(cmd: list[str], out: Path, log: Path) -> dict:
    """Run ``cmd`` (a train or distill command writing ``out``) unless ``out`` holds a finished
    run (a killed one is resumed with its saved settings); its summary."""
    if not (out / "summary.json").exists():
        if (out / "last" / "state.json").exists():
            cmd = [*cmd[:2], "--output", str(out), "--no-progress", "--resume"]
        else:
            cmd = [*cmd, "--overwrite"]
        run(cmd, log)
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--runs", type=Path, default=Path("runs/distill-bench"))
    ap.add_argument("--teachers", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--minutes", type=float, help="max_minutes for every run (teachers and "
                    "student): the whole benchmark in about 4 x this")
    ap.add_argument("settings", nargs="*", metavar="key=value",
                    help="settings for every run (a quick check: epochs=1 lstm_hidden=16)")
    args = ap.parse_args()
    if args.minutes:
        args.settings = [f"max_minutes={args.minutes}", *args.settings]
    root = args.data_root / "cluener"
    train, unlabeled = root / "train.json", root / "test.json"
    dev_a, dev_b = halves(args.data_root, args.runs)
    logs = args.runs / "logs"
    result: dict = {"teachers": [], "machine": machine(), "minutes_per_run": args.minutes}
    teachers = []
    for seed in range(1, args.teachers + 1):
        out = args.runs / f"teacher-{seed}"
        cmd = [gpner_exe(), "train", "--train", str(train), "--dev", str(dev_a), "--output",
               str(out), "--no-progress", f"seed={seed}", f"threads={args.threads}", *args.settings]
        s = trained(cmd, out, logs / f"teacher-{seed}.log")
        row = {"seed": seed, "dev_a_f1": s["best_dev_f1"], "epochs": s["epochs_run"],
               "minutes": s["minutes"], "dev_b": score(out / "model", dev_b, args.runs),
               "command": show_command(cmd, args.data_root)}
        result["teachers"].append(row)
        teachers.append(out)
        print(json.dumps(row), flush=True)
    out = args.runs / "student"
    cmd = [gpner_exe(), "distill", *[x for t in teachers for x in ("--teacher", str(t))],
           "--train", str(train), "--dev", str(dev_a), "--unlabeled", str(unlabeled),
           "--output", str(out), "--no-progress", f"threads={args.threads}", *args.settings]
    started = time.monotonic()
    s = trained(cmd, out, logs / "student.log")
    result["student"] = {"dev_a_f1": s["best_dev_f1"], "epochs": s["epochs_run"],
                         "minutes": s["minutes"], "dev_b": score(out / "model", dev_b, args.runs),
                         "distill": json.loads(portable(json.dumps(s["data"].get("distill")))),
                         "wall_minutes": round((time.monotonic() - started) / 60, 2),
                         "command": show_command(cmd, args.data_root)}
    single = [t["dev_b"]["f1"] for t in result["teachers"]]
    result["single_dev_b_f1"] = {"mean": sum(single) / len(single), "min": min(single),
                                 "max": max(single)}
    result["goal"] = {"student_dev_f1_at_least": 0.765, "single_model_published_here": 0.7531}
    if all(x.startswith("max_minutes=") for x in args.settings):  # a quick check: no result
        save(OUT, result)
    print(json.dumps(result["student"]), flush=True)


if __name__ == "__main__":
    main()
