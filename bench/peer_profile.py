"""Where the training time goes, gpner and bert4torch side by side: each side's whole training
step against its own BERT's forward + backward on the very batches it trains on (bench/peer.py's
setting: a random 4-layer, hidden-256 BERT, batch 16, the first 800 CLUENER training sentences).

    python bench/peer_profile.py        # make bench-peer sets up bert4torch's environment

If both encoders cost the same per sentence (same kernels: the question), the ratio of the two
steps can grow only by cutting gpner's overhead, and the bound is bert4torch's step time over
gpner's bare encoder time. Issue 34 asks for 2x, or a profile showing that what remains is the
encoder's own work on both sides. Results go to bench/results/peer_profile.json and the limit
section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

from common import DATA, RESULTS, ROOT, machine, save
from limit import training
from peer import B4T, random_bert


def b4t_profile(bert: Path, train: Path, head: str, rounds: int) -> dict:
    res = subprocess.run([str(B4T / "bin" / "python"), str(ROOT / "bench" / "peer_bert4torch.py"),
                          "--bert", str(bert), "--train", str(train), "--dev", str(train),
                          "--head", head, "--profile", "--rounds", str(rounds)],
                         capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"bert4torch side failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.splitlines()[-1])
    bare = statistics.median(out["bare_seconds"])
    return {"steps": out["steps"], "sentences": out["sentences"],
            "step_sents_per_s": round(out["sentences"] / out["step_seconds"], 1),
            "bare_fwd_bwd_sents_per_s": round(out["sentences"] / bare, 1),
            "step_over_bare": round(out["step_seconds"] / bare, 3),
            "seconds": {"steps": round(out["step_seconds"], 3),
                        "bare": [round(x, 3) for x in out["bare_seconds"]]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--sentences", type=int, default=800)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--heads", default="gp,egp")
    args = ap.parse_args()
    if not (B4T / "bin" / "python").exists():
        raise SystemExit(f"no bert4torch environment at {B4T}: run `make bench-peer` once")
    from gpner.data.formats import read, write
    from gpner.training.config import TrainConfig

    work = Path("/tmp/gpner-peer")
    work.mkdir(exist_ok=True)
    records = read(args.data_root / "cluener" / "train.json").records[:args.sentences]
    write(records, work / "profile.jsonl", "jsonl")
    bert = random_bert(work / "bert")
    # bench/peer.py's gpner settings: constant lr, no weight decay or clipping, one epoch
    peer = dict(encoder=str(bert), epochs=1, batch_size=16, lr=1e-4, encoder_lr=1e-4,
                warmup=0.0, schedule="constant", weight_decay=0.0, grad_clip=0.0, patience=0,
                max_length=256)
    result: dict = {"command": "python bench/peer_profile.py", "machine": machine(), "heads": {}}
    for head in args.heads.split(","):
        g = training(TrainConfig(head=head, **peer), records, work / "profile-run", args.rounds)
        b = b4t_profile(bert, work / "profile.jsonl", head, args.rounds)
        row = {"gpner": g, "bert4torch": b,
               # the encoders against each other (same shapes, batches of the same sentences)
               "bare_b4t_over_gpner": round(b["bare_fwd_bwd_sents_per_s"]
                                            / g["bare_fwd_bwd_sents_per_s"], 3),
               "step_ratio": round(g["step_sents_per_s"] / b["step_sents_per_s"], 3),
               # gpner with no overhead at all: its bare encoder against bert4torch's step
               "bound": round(g["bare_fwd_bwd_sents_per_s"] / b["step_sents_per_s"], 3)}
        result["heads"][head] = row
        print(head, json.dumps(row), flush=True)
    save(RESULTS / "peer_profile.json", result)


if __name__ == "__main__":
    main()
