"""Which built-in encoder size gives the best accuracy per CPU minute? Each variant trains on
CLUENER for the same time budget and is scored on dev. The epoch cap is lifted (epochs=100) so
that the budget, not the cap, ends every run, and max_minutes fits the learning-rate schedule to
the budget. Results for several budgets accumulate in bench/results/encoder_choice.json.

    python bench/encoder_choice.py --minutes 4
    python bench/encoder_choice.py --minutes 18 --variants bilstm-1x128,bilstm-1x256
    python bench/encoder_choice.py --minutes 18 --adopt bilstm-2x256=runs/cluener-egp
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import DATA, RESULTS, gpner_exe, machine, run, save, show_command

VARIANTS = {
    "bilstm-1x128": ["lstm_layers=1", "lstm_hidden=128"],
    "bilstm-1x256": ["lstm_layers=1", "lstm_hidden=256"],
    "bilstm-2x256": ["lstm_layers=2", "lstm_hidden=256"],
    "bilstm-2x384": ["lstm_layers=2", "lstm_hidden=384"],
}
OUT = RESULTS / "encoder_choice.json"


def _row(name: str, minutes_budget: float, summary: dict, command: str, **extra) -> dict:
    return {"variant": name, "budget_minutes": minutes_budget, "settings": VARIANTS[name],
            "dev_f1": summary["best_dev_f1"], "epochs": summary["epochs_run"],
            "best_epoch": summary["best_epoch"], "minutes": summary["minutes"],
            "command": command, **extra}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=4.0, help="budget per variant")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"comma list from: {', '.join(VARIANTS)}")
    ap.add_argument("--adopt", metavar="VARIANT=RUN_DIR",
                    help="record a finished CLUENER run (its summary.json) instead of training")
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--runs", type=Path, default=Path("runs/encoder-choice"))
    args = ap.parse_args()
    data = json.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else {}
    rows = data.get("rows", [])

    def put(row: dict) -> None:
        rows[:] = [r for r in rows if (r["variant"], r["budget_minutes"]) !=
                   (row["variant"], row["budget_minutes"])] + [row]
        rows.sort(key=lambda r: (r["budget_minutes"], list(VARIANTS).index(r["variant"])))
        save(OUT, {"machine": machine(), "command": "python bench/encoder_choice.py",
                   "rows": rows})
        print(json.dumps(row), flush=True)

    if args.adopt:
        name, run_dir = args.adopt.split("=", 1)
        s = json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))
        cfg = s["config"]
        want = dict(v.split("=") for v in VARIANTS[name])
        if any(str(cfg[k]) != v for k, v in want.items()):
            raise SystemExit(f"{run_dir} does not use {name}'s settings {VARIANTS[name]}")
        command = (f"gpner train --train {s['data']['train']['source']} --dev "
                   f"{s['data']['dev']['source']} --output {run_dir} epochs={cfg['epochs']}")
        put(_row(name, args.minutes, s, command, adopted=True))
        return
    for name in args.variants.split(","):
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
        out = args.runs / f"{name}-{args.minutes:g}min"
        cmd = [gpner_exe(), "train", "--train", str(args.data_root / "cluener/train.json"),
               "--dev", str(args.data_root / "cluener/dev.json"), "--output", str(out),
               "--no-progress", "--overwrite", f"max_minutes={args.minutes:g}", "epochs=100",
               "patience=0",
               *VARIANTS[name]]
        run(cmd)
        s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        put(_row(name, args.minutes, s, show_command(cmd, args.data_root)))


if __name__ == "__main__":
    main()
