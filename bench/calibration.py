"""Per-label thresholds and calibrated probabilities on real data: `gpner calibrate` fits on one
annotated set and is scored on another (`--check`): micro F1 at the default threshold and at
the chosen ones, and the expected calibration error before and after, out of sample.

    python bench/calibration.py --name cluener --model runs/tune-bench/default/seed-1 \\
        --fit runs/tune-bench/dev_a.json --check runs/tune-bench/dev_b.json
    python bench/calibration.py --set peoples_daily --minutes 12   # trains its model first
    python bench/calibration.py --set conll2003 --model runs/distill-conll/teacher

With --set, the data set's own files are used: fitted on dev, scored on test (CMeEE, whose test
labels are not public: dev split in two halves, even records to fit, odd ones to score), and
without --model a built-in GP model is trained on the set's train file (dev choosing its epoch)
for --minutes into runs/calibration/SET, or reused when it is there.

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

from common import DATA, RESULTS, ROOT, gpner_exe, machine, portable, run, save, show_command

OUT = RESULTS / "calibration.json"
SETS = {"conll2003": ("train.txt", "valid.txt", "test.txt"),
        "peoples_daily": ("example.train", "example.dev", "example.test"),
        "cmeee": ("train.json", None, None)}  # dev.json in halves


def set_files(name: str, data_root: Path, runs: Path) -> tuple[Path, Path, Path]:
    """(train, fit, check) of a data set; CMeEE's dev in halves (even records fit, odd check)."""
    train, fit, check = SETS[name]
    root = data_root / name
    if fit and check:
        return root / train, root / fit, root / check
    rows = json.loads((root / "dev.json").read_text(encoding="utf-8"))  # one JSON array
    runs.mkdir(parents=True, exist_ok=True)
    a, b = runs / f"{name}-dev_a.json", runs / f"{name}-dev_b.json"
    a.write_text(json.dumps(rows[0::2], ensure_ascii=False, indent=1), encoding="utf-8")
    b.write_text(json.dumps(rows[1::2], ensure_ascii=False, indent=1), encoding="utf-8")
    return root / train, a, b


def train_model(name: str, train: Path, dev: Path, minutes: float, runs: Path,
                data_root: Path) -> tuple[Path, str]:
    """A built-in GP model of ``name`` (trained unless runs/calibration/NAME has one); its
    directory and training command."""
    out = runs / name
    cmd = [gpner_exe(), "train", "--train", str(train), "--dev", str(dev), "--output", str(out),
           "--head", "gp", "--no-progress", f"max_minutes={minutes}"]
    if not (out / "summary.json").exists():
        run([*cmd, "--overwrite"])
    return out, show_command(cmd, data_root)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", help="the data set's name in the table (default: --set)")
    ap.add_argument("--set", choices=sorted(SETS), help="a data set under --data-root")
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--runs", type=Path, default=Path("runs/calibration"))
    ap.add_argument("--minutes", type=float, default=12.0,
                    help="training budget of the model --set trains")
    ap.add_argument("--model", type=Path, help="model or run directory")
    ap.add_argument("--fit", type=Path, help="annotated data to fit on (dev)")
    ap.add_argument("--check", type=Path, help="annotated data to score (test)")
    ap.add_argument("--probs", default="platt", choices=("platt", "isotonic"))
    args = ap.parse_args()
    trained_by = None
    if args.set:
        train, fit, check = set_files(args.set, args.data_root, args.runs)
        args.name, args.fit, args.check = args.name or args.set, args.fit or fit, \
            args.check or check
        if args.model is None:
            args.model, trained_by = train_model(args.set, train, fit, args.minutes, args.runs,
                                                 args.data_root)
    if not (args.name and args.model and args.fit and args.check):
        ap.error("give --set, or --name, --model, --fit and --check")
    model = args.model / "model" if (args.model / "model").is_dir() else args.model
    plot = ROOT / "docs" / f"calibration-{args.name}-{args.probs}.png"
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / f"{args.name}-{model.parent.name}" / "model"
        shutil.copytree(model, copy)
        cmd = [gpner_exe(), "calibrate", str(copy), str(args.fit), "--check", str(args.check),
               "--probs", args.probs, "--plot", str(plot), "--json", "--no-progress"]
        out = json.loads(run(cmd).stdout)
    shown = ["gpner", "calibrate", str(model), str(args.fit)] + cmd[4:]
    shown = [portable(c.replace(str(args.data_root), "../shared/data")) for c in shown]
    row = {"name": args.name, "probs": args.probs, "model": portable(str(model)),
           "fit": portable(str(args.fit).replace(str(args.data_root), "../shared/data")),
           "dev": out["dev"], "check": out["check"], "plot": str(plot.relative_to(ROOT)),
           "command": " ".join(shown)}
    if trained_by:
        row["trained_by"] = trained_by
    data = json.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else {"rows": []}
    data["rows"] = [r for r in data["rows"] if (r["name"], r["probs"]) != (args.name,
                                                                          args.probs)] + [row]
    data["machine"] = machine()
    save(OUT, data)
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
