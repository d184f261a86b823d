"""Per-label thresholds and calibrated probabilities on real data: `gpner calibrate` fits on one
annotated set and is scored on another (`--check`): micro F1 at the default threshold and at
the chosen ones, and the expected calibration error before and after, out of sample.

    python bench/calibration.py --name cluener --model runs/tune-bench/default/seed-1 \\
        --fit runs/tune-bench/dev_a.json --check runs/tune-bench/dev_b.json

Each row goes into bench/results/calibration.json (replacing the row of the same name and
method); the reliability diagram into docs/calibration-NAME.png. The model is copied first, so
the run's own model is left as it was.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from common import RESULTS, ROOT, gpner_exe, machine, portable, run, save

OUT = RESULTS / "calibration.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="the data set's name in the table")
    ap.add_argument("--model", type=Path, required=True, help="model or run directory")
    ap.add_argument("--fit", type=Path, required=True, help="annotated data to fit on (dev)")
    ap.add_argument("--check", type=Path, required=True, help="annotated data to score (test)")
    ap.add_argument("--probs", default="platt", choices=("platt", "isotonic"))
    args = ap.parse_args()
    model = args.model / "model" if (args.model / "model").is_dir() else args.model
    plot = ROOT / "docs" / f"calibration-{args.name}-{args.probs}.png"
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / f"{args.name}-{model.parent.name}" / "model"
        shutil.copytree(model, copy)
        cmd = [gpner_exe(), "calibrate", str(copy), str(args.fit), "--check", str(args.check),
               "--probs", args.probs, "--plot", str(plot), "--json", "--no-progress"]
        out = json.loads(run(cmd).stdout)
    shown = ["gpner", "calibrate", str(model), str(args.fit)] + cmd[4:]
    shown = [portable(c) for c in shown]
    row = {"name": args.name, "probs": args.probs, "model": str(model), "fit": str(args.fit),
           "dev": out["dev"], "check": out["check"], "plot": str(plot.relative_to(ROOT)),
           "command": " ".join(shown)}
    data = json.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else {"rows": []}
    data["rows"] = [r for r in data["rows"] if (r["name"], r["probs"]) != (args.name,
                                                                          args.probs)] + [row]
    data["machine"] = machine()
    save(OUT, data)
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
