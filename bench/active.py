"""A learning curve for active learning: does uncertainty selection reach random selection's
final F1 with fewer labels? (issue 30, point 4)

On CLUENER (scored on dev) and CoNLL-2003 (scored on test), built-in encoder: start from
`--start` labelled sentences drawn at random, then each round a strategy chooses `--step` more
from the rest of train (`gpner.active.select`, the code behind `gpner select`) and their gold
labels are revealed as if annotated; a model is trained from scratch on what is labelled for a
fixed `--epochs` (a short, fixed budget per round) and scored. Random selection runs with
`--random-seeds` seeds.

    python bench/active.py cluener conll2003                  # the full curve
    python bench/active.py cluener --rounds 2 --quick         # a check that it runs

Results: bench/results/active.json, the plot docs/active_learning.png, and the "Active
learning" section of docs/benchmarks.md. Goal: uncertainty selection reaches random selection's
final F1 with at most 60% of its labels.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from common import DATA, RESULTS, ROOT, machine, save

sys.path.insert(0, str(ROOT / "src"))

SETS = {"cluener": ("cluener/train.json", "cluener/dev.json"),
        "conll2003": ("conll2003/train.txt", "conll2003/test.txt")}


def curve(name: str, by: str, seed: int, train: list, gold: list, args: argparse.Namespace,
          runs: Path) -> list[dict]:
    from gpner.active import select
    from gpner.metrics import evaluate
    from gpner.prediction.loading import load
    from gpner.training.config import TrainConfig
    from gpner.training.trainer import train as fit

    rng = random.Random(seed)
    order = list(range(len(train)))
    rng.shuffle(order)
    labelled = set(order[:args.start])
    rows = []
    cfg = TrainConfig().update({"epochs": args.epochs, "patience": 0, "seed": seed,
                                "threads": args.threads, **dict(args.settings)}, "bench")
    for rnd in range(args.rounds + 1):
        out = runs / f"{name}-{by}-{seed}-{rnd}"
        started = time.monotonic()
        fit([train[k] for k in sorted(labelled)], None, out, cfg, progress=False,
            overwrite=True)
        model = load(out / "model", threads=args.threads)
        pred = model.predict([r["text"] for r in gold])
        f1 = evaluate(gold, pred)["f1"]
        rows.append({"round": rnd, "labels": len(labelled), "f1": f1,
                     "minutes": round((time.monotonic() - started) / 60, 2)})
        print(json.dumps({"data": name, "by": by, "seed": seed, **rows[-1]}), flush=True)
        if rnd == args.rounds:
            break
        rest = [k for k in range(len(train)) if k not in labelled]
        items = ((k, train[k]["text"], None) for k in rest)
        chosen = select(model, items, args.step, by=by, seed=seed * 1000 + rnd)
        labelled.update(c.line for c in chosen)  # line: the index into train
    return rows


def labels_to_reach(rows: list[dict], target: float) -> int | None:
    """The fewest labels at which a curve reaches ``target`` F1 (None: never)."""
    return next((r["labels"] for r in rows if r["f1"] >= target), None)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(result["data"])
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4), squeeze=False)
    for ax, name in zip(axes[0], sets, strict=True):
        for key, rows in result["data"][name]["curves"].items():
            ax.plot([r["labels"] for r in rows], [100 * r["f1"] for r in rows],
                    marker="o", label=key, alpha=0.5 if key.startswith("random") else 1.0)
        ax.set_title(f"{name} ({result['data'][name]['scored_on']})")
        ax.set_xlabel("labelled sentences")
        ax.set_ylabel("F1")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs="+", choices=list(SETS))
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--runs", type=Path, default=Path("runs/active-bench"))
    ap.add_argument("--start", type=int, default=500)
    ap.add_argument("--step", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    # 4 epochs left CLUENER at F1 0.00 with 500 and 1,000 sentences (too few steps to learn)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--by", nargs="+", default=["uncertainty", "margin", "entropy"])
    ap.add_argument("--random-seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a check, not a result")
    ap.add_argument("--set", dest="settings", action="append", default=[], type=lambda s:
                    tuple(s.split("=", 1)), metavar="KEY=VALUE", help="a training setting")
    args = ap.parse_args()
    if args.quick:
        args.start, args.step, args.epochs, args.random_seeds = 50, 50, 1, 1
        args.settings += [("lstm_hidden", 32), ("word_dim", 32), ("lstm_layers", 1)]
    from gpner.data.formats import read

    result: dict = {"machine": machine(), "settings": {
        "start": args.start, "step": args.step, "rounds": args.rounds, "epochs": args.epochs,
        "threads": args.threads, "extra": dict(args.settings)}, "data": {}}
    started = time.monotonic()
    for name in args.sets:
        train = read(args.data_root / SETS[name][0]).records
        gold = read(args.data_root / SETS[name][1]).records
        if args.quick:
            train, gold = train[:400], gold[:100]
        curves = {}
        for by in args.by:
            curves[by] = curve(name, by, 1, train, gold, args, args.runs)
        for seed in range(1, args.random_seeds + 1):
            curves[f"random-{seed}"] = curve(name, "random", seed, train, gold, args, args.runs)
        final = [c[-1]["f1"] for k, c in curves.items() if k.startswith("random")]
        target = sum(final) / len(final)
        random_labels = curves["random-1"][-1]["labels"]
        reach = {by: labels_to_reach(curves[by], target) for by in args.by}
        result["data"][name] = {
            "scored_on": Path(SETS[name][1]).stem, "curves": curves,
            "random_final_f1_mean": target, "random_labels": random_labels,
            "labels_to_reach_random_final": reach,
            "share_of_random_labels": {by: (None if n is None else n / random_labels)
                                       for by, n in reach.items()}}
    result["minutes"] = round((time.monotonic() - started) / 60, 1)
    if not args.quick:
        save(RESULTS / "active.json", result)
        plot(result, ROOT / "docs" / "active_learning.png")
    print(json.dumps({k: v["share_of_random_labels"] for k, v in result["data"].items()}))


if __name__ == "__main__":
    main()
