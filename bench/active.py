"""A learning curve for active learning: does uncertainty selection reach random selection's
final F1 with fewer labels? (issue 30, point 4)

On CLUENER (scored on dev) and CoNLL-2003 (scored on test), built-in encoder: start from
`--start` labelled sentences drawn at random, then each round a strategy chooses `--step` more
from the rest of train (`gpner.active.select`, the code behind `gpner select`) and their gold
labels are revealed as if annotated; a model is trained from scratch on what is labelled and
scored. Every round has the same short budget of `--steps` optimizer steps (as many epochs as
that takes, at least one), so a round costs the same whatever its size and the whole curve fits
about an hour. Random selection runs with `--random-seeds` seeds; each strategy starts from the
first random seed's start set.

    python bench/active.py cluener --threads 1 & python bench/active.py conll2003 --threads 1
    python bench/active.py cluener --rounds 2 --quick         # a check that it runs

Results: bench/results/active/<data>.json (one file a data set, so the sets run side by side),
the plot docs/active_learning.png (redrawn from every result file), and the "Active learning"
section of docs/benchmarks.md. Goal: uncertainty selection reaches random selection's final F1
with at most 60% of its labels.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

from common import DATA, RESULTS, ROOT, machine, plot_panels, save

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
    base = TrainConfig().update({"patience": 0, "seed": seed, "threads": args.threads,
                                 **dict(args.settings)}, "bench")
    for rnd in range(args.rounds + 1):
        out = runs / f"{name}-{by}-{seed}-{rnd}"
        started = time.monotonic()
        epochs = epochs_for(args.steps, args.min_epochs, base.batch_size, len(labelled))
        cfg = base.update({"epochs": epochs}, "bench")
        fit([train[k] for k in sorted(labelled)], None, out, cfg, progress=False,
            overwrite=True)
        model = load(out / "model", threads=args.threads)
        pred = model.predict([r["text"] for r in gold])
        f1 = evaluate(gold, pred)["f1"]
        rows.append({"round": rnd, "labels": len(labelled), "f1": f1, "epochs": epochs,
                     "minutes": round((time.monotonic() - started) / 60, 2)})
        print(json.dumps({"data": name, "by": by, "seed": seed, **rows[-1]}), flush=True)
        if rnd == args.rounds:
            break
        rest = [k for k in range(len(train)) if k not in labelled]
        items = ((k, train[k]["text"], None) for k in rest)
        chosen = select(model, items, args.step, by=by, seed=seed * 1000 + rnd)
        labelled.update(c.line for c in chosen)  # line: the index into train
    return rows


def epochs_for(steps: int, min_epochs: int, batch_size: int, n: int) -> int:
    """The epochs that spend about ``steps`` optimizer steps on ``n`` sentences, and at least
    ``min_epochs``: small rounds get enough steps to learn, large ones see every sentence
    ``min_epochs`` times (so a round's budget never shrinks as the labels grow)."""
    return max(min_epochs, round(steps / math.ceil(n / batch_size)))


def labels_to_reach(rows: list[dict], target: float) -> int | None:
    """The fewest labels at which a curve reaches ``target`` F1 (None: never)."""
    return next((r["labels"] for r in rows if r["f1"] >= target), None)


def compare(curves: dict[str, list[dict]], strategies: list[str]) -> dict:
    """Random selection's mean final F1 and, for each strategy, the labels it needed to reach
    it, also as a share of random's labels (nothing to compare without a random curve)."""
    final = [c[-1]["f1"] for k, c in curves.items() if k.startswith("random")]
    if not final:
        return {}
    target = sum(final) / len(final)
    random_labels = next(c for k, c in curves.items() if k.startswith("random"))[-1]["labels"]
    reach = {by: labels_to_reach(curves[by], target) for by in strategies}
    return {"random_final_f1_mean": target, "random_labels": random_labels,
            "labels_to_reach_random_final": reach,
            "share_of_random_labels": {by: (None if n is None else n / random_labels)
                                       for by, n in reach.items()}}


def plot(results: list[dict], path: Path) -> None:
    """One panel a data set: F1 against labelled sentences, one line a strategy or seed."""
    sets = {name: d for r in results for name, d in r["data"].items()}
    plot_panels(path, [{"title": f"{name} ({data['scored_on']})",
                        "xlabel": "labelled sentences", "ylabel": "F1",
                        "lines": [(key, [r["labels"] for r in rows], [100 * r["f1"] for r in rows],
                                   {"marker": "o",
                                    "alpha": 0.5 if key.startswith("random") else 1.0})
                                  for key, rows in data["curves"].items()]}
                       for name, data in sets.items()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs="+", choices=list(SETS))
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--runs", type=Path, default=Path("runs/active-bench"))
    ap.add_argument("--start", type=int, default=500)
    ap.add_argument("--step", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    # 15 epochs a round from scratch took about 26 minutes a curve (6 rounds) on 2 cores, 5
    # hours for the benchmark. 200 steps a round alone left 2 epochs for 3,000 sentences, and
    # CoNLL's F1 fell from 41.9 to 27.5 between the last two rounds: hence both floors
    ap.add_argument("--steps", type=int, default=200, help="optimizer steps a round, at least")
    ap.add_argument("--min-epochs", type=int, default=4, help="epochs a round, at least")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--by", nargs="*", default=["uncertainty", "margin", "entropy"])
    ap.add_argument("--random-seeds", nargs="*", type=int, default=[1, 2, 3],
                    help="the seeds of random selection (each strategy starts from seed 1's "
                    "start set)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a check, not a result")
    ap.add_argument("--set", dest="settings", action="append", default=[], type=lambda s:
                    tuple(s.split("=", 1)), metavar="KEY=VALUE", help="a training setting")
    args = ap.parse_args()
    if args.quick:
        args.start, args.step, args.steps, args.random_seeds = 50, 50, 2, [1]
        args.settings += [("lstm_hidden", 32), ("word_dim", 32), ("lstm_layers", 1)]
    from gpner.data.formats import read

    for name in args.sets:
        result: dict = {"machine": machine(), "settings": {
            "start": args.start, "step": args.step, "rounds": args.rounds, "steps": args.steps,
            "min_epochs": args.min_epochs, "threads": args.threads,
            "extra": dict(args.settings)}, "data": {}}
        started = time.monotonic()
        train = read(args.data_root / SETS[name][0]).records
        gold = read(args.data_root / SETS[name][1]).records
        if args.quick:
            train, gold = train[:400], gold[:100]
        curves = {}
        for by in args.by:
            curves[by] = curve(name, by, 1, train, gold, args, args.runs)
        for seed in args.random_seeds:
            curves[f"random-{seed}"] = curve(name, "random", seed, train, gold, args, args.runs)
        minutes = round((time.monotonic() - started) / 60, 1)
        if args.quick:
            print(json.dumps({name: compare(curves, args.by).get("share_of_random_labels")}))
            continue
        merged = merge(RESULTS / "active" / f"{name}.json", result, name, curves, minutes)
        print(json.dumps({name: merged["data"][name].get("share_of_random_labels")}))
        plot([json.loads(p.read_text(encoding="utf-8"))
              for p in sorted((RESULTS / "active").glob("*.json"))],
             ROOT / "docs" / "active_learning.png")


def merge(path: Path, result: dict, name: str, curves: dict, minutes: float) -> dict:
    """Add ``curves`` to the data set's result file (parts of one benchmark run side by side,
    `make bench-active`), under a lock; a file from other settings is replaced. The comparison
    is recomputed over every curve the file then holds."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        if old and old["settings"] == result["settings"]:
            curves = {**old["data"][name]["curves"], **curves}
            result["parts"] = old.get("parts", []) + [minutes]
        else:
            result["parts"] = [minutes]
        result["minutes"] = round(sum(result["parts"]), 1)
        strategies = [k for k in curves if not k.startswith("random")]
        # strategies first, then random by seed, whichever part ran first
        curves = {k: curves[k] for k in strategies + sorted(set(curves) - set(strategies))}
        result["data"][name] = {"scored_on": Path(SETS[name][1]).stem, "curves": curves,
                                **compare(curves, strategies)}
        save(path, result)
    return result


if __name__ == "__main__":
    main()
