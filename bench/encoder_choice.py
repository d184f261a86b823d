"""Which built-in encoder size gives the best accuracy per CPU minute? Each variant trains on
CLUENER for the same time budget (max_minutes fits its learning-rate schedule to the budget)
and is scored on dev. Writes bench/results/encoder_choice.json.

    python bench/encoder_choice.py [--minutes 4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import DATA, RESULTS, gpner_exe, machine, run, save

VARIANTS = {
    "bilstm-1x128": ["lstm_layers=1", "lstm_hidden=128"],
    "bilstm-2x256 (default)": [],
    "bilstm-2x384": ["lstm_hidden=384"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--runs", type=Path, default=Path("runs/encoder-choice"))
    args = ap.parse_args()
    rows = []
    for name, settings in VARIANTS.items():
        out = args.runs / name.split()[0]
        cmd = [gpner_exe(), "train", "--train", str(args.data_root / "cluener/train.json"),
               "--dev", str(args.data_root / "cluener/dev.json"), "--output", str(out),
               "--no-progress", f"max_minutes={args.minutes}", "patience=0", *settings]
        run(cmd)
        s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        rows.append({"variant": name, "settings": settings, "dev_f1": s["best_dev_f1"],
                     "epochs": s["epochs_run"], "minutes": s["minutes"],
                     "command": " ".join(["gpner"] + [c.replace(str(args.data_root),
                                                                "../shared/data")
                                                      for c in cmd[1:]])})
        print(json.dumps(rows[-1]), flush=True)
    save(RESULTS / "encoder_choice.json", {"machine": machine(), "budget_minutes": args.minutes,
                                           "command": "python bench/encoder_choice.py", "rows": rows})


if __name__ == "__main__":
    main()
