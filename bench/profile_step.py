"""Where a gpner training step spends its time: the peer benchmark's setting (a random 4-layer,
hidden-256 BERT with the real Chinese vocabulary, CLUENER sentences, batch 16, GP or EGP head),
profiled with torch.profiler over ``--steps`` steps after a warm-up.

    python bench/profile_step.py [--head gp] [--steps 30]

Prints the share of step time in each stage (collate, encoder forward, head forward, loss,
backward, optimizer) and the top operators by self CPU time; writes
``bench/results/profile_<head>.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from common import DATA, RESULTS, machine, save
from peer import random_bert
from torch.profiler import ProfilerActivity, profile, record_function

STAGES = ("collate", "encoder", "head", "loss", "backward", "optimizer")


@contextmanager
def stage(name: str, totals: dict):
    t = time.perf_counter()
    with record_function(f"gpner.{name}"):
        yield
    totals[name] = totals.get(name, 0.0) + time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--head", default="gp")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--fused", action=argparse.BooleanOptionalAction, default=True,
                    help="gpner's optimizer (fused AdamW); --no-fused: torch's default AdamW")
    args = ap.parse_args()
    from gpner.data.formats import read
    from gpner.model.network import to_device
    from gpner.records import Report
    from gpner.training.build import build
    from gpner.training.config import TrainConfig
    from gpner.training.examples import Collator, length_buckets, make_examples
    from gpner.training.optim import adamw, param_groups

    torch.manual_seed(0)
    bert = random_bert(Path(tempfile.mkdtemp()) / "bert")
    records = read(DATA / "cluener" / "train.json").records[:2000]
    cfg = TrainConfig().update({"encoder": str(bert), "head": args.head, "batch_size":
                                args.batch_size, "weight_decay": 0.0, "grad_clip": 0.0,
                                "schedule": "constant", "warmup": 0.0, "lr": 1e-4}, "profile")
    model, featurizer, task, config = build(cfg, records)
    examples = make_examples(records, featurizer, config.labels, config.max_length,
                             Report("train"), "skip", flat_only=not task.span_head)
    collate = Collator(featurizer, task)
    opt = adamw(param_groups(model, cfg), torch.device("cpu")) if args.fused else \
        torch.optim.AdamW(param_groups(model, cfg))
    order = length_buckets(examples, args.batch_size, 0, 0)
    model.train()
    totals: dict[str, float] = {}

    def step(idx: list[int]) -> None:
        with stage("collate", totals):
            batch = to_device(collate([examples[k] for k in idx]), torch.device("cpu"))
        with stage("encoder", totals):
            hidden = model.encoder(batch)
        with stage("head", totals):
            out = {name: head(hidden, batch["mask"]) for name, head in model.heads.items()}
        with stage("loss", totals):
            loss = task.loss(out, batch)
        with stage("backward", totals):
            loss.backward()
        with stage("optimizer", totals):
            opt.step()
            opt.zero_grad(set_to_none=True)

    for k in range(args.warmup):
        step(order[k])
    totals.clear()
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for k in range(args.warmup, args.warmup + args.steps):
            step(order[k % len(order)])
    wall = time.perf_counter() - started
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    print(table)
    shares = {k: round(100 * totals.get(k, 0) / wall, 1) for k in STAGES}
    print("share of step time (%):", shares, f"{args.steps * args.batch_size / wall:.1f} sent/s")
    top = [{"op": e.key, "self_cpu_ms": round(e.self_cpu_time_total / 1000, 1),
            "calls": e.count} for e in sorted(prof.key_averages(),
                                             key=lambda e: -e.self_cpu_time_total)[:15]]
    save(RESULTS / f"profile_{args.head}{'' if args.fused else '_unfused'}.json",
         {"command": f"python bench/profile_step.py --head {args.head} --steps {args.steps}"
                     + ("" if args.fused else " --no-fused"), "fused_adamw": args.fused,
          "machine": machine(), "sents_per_s_under_profiler": round(
              args.steps * args.batch_size / wall, 1), "stage_share_pct": shares, "top_ops": top})


if __name__ == "__main__":
    main()
