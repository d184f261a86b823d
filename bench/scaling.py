"""Scaling of the head alone: time and peak memory of forward + loss + backward against
sequence length (128 .. 4096, 10 types) and number of types (3 .. 100, 512 tokens), GP and EGP,
dense labels against the sparse loss. Hidden size 768, batch 1, head size 64, 5 gold spans per
type. Each case runs in its own process; memory is the rise of peak RSS during the computation.

    python bench/scaling.py [--quick]      # writes bench/results/scaling.json, docs/scaling.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, ROOT, machine, peak_rss_mb, save


def worker(spec: dict) -> dict:
    import torch

    from gpner.model.losses import mcce_dense, mcce_sparse
    from gpner.tasks import HEADS

    torch.manual_seed(0)
    L, C = spec["length"], spec["types"]
    head = HEADS[spec["head"]].cls()(768, C, 64)
    hidden = torch.randn(1, L, 768)
    mask = torch.ones(1, L, dtype=torch.bool)
    g = torch.Generator().manual_seed(1)
    starts = torch.randint(0, L - 8, (C * 5,), generator=g)
    pos = torch.stack([torch.zeros_like(starts), torch.arange(C).repeat_interleave(5), starts,
                       starts + torch.randint(0, 8, (C * 5,), generator=g)], 1)
    times = []
    before = peak_rss_mb()
    for _ in range(spec["repeats"]):
        t = time.perf_counter()
        scores = head(hidden, mask)
        if spec["loss"] == "dense":  # a (B, C, L, L) label tensor, as public ports build it
            labels = torch.zeros(scores.shape, dtype=torch.bool)
            labels[tuple(pos.T)] = True
            loss = mcce_dense(scores, labels)
        else:
            loss = mcce_sparse(scores, pos)
        loss.backward()
        times.append(time.perf_counter() - t)
        del scores, loss
        head.zero_grad()
    peak = peak_rss_mb()
    return dict(spec, seconds=statistics.median(times), peak_mb=peak - before)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--worker")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "scaling.json")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "scaling.png")
    ap.add_argument("--plot-only", action="store_true", help="redraw from the saved results")
    args = ap.parse_args()
    if args.plot_only:
        plot(json.loads(args.out.read_text(encoding="utf-8"))["rows"], args.plot)
        return
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    lengths = [64, 128] if args.quick else [128, 256, 512, 1024, 2048, 4096]
    types = [3, 10] if args.quick else [3, 10, 30, 100]
    cases = [dict(sweep="length", length=L, types=10) for L in lengths]
    cases += [dict(sweep="types", length=128 if args.quick else 512, types=C) for C in types]
    rows = []
    for case in cases:
        for head in ("gp", "egp"):
            for loss in ("sparse", "dense"):
                spec = dict(case, head=head, loss=loss, repeats=2 if args.quick else 3)
                out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                                     capture_output=True, text=True)
                if out.returncode:
                    raise RuntimeError(out.stderr[-2000:])
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    save(args.out, {"machine": machine(), "command": "python bench/scaling.py", "rows": rows})
    plot(rows, args.plot)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    type_len = next(r["length"] for r in rows if r["sweep"] == "types")
    for head in ("gp", "egp"):
        for loss, style in (("sparse", "-"), ("dense", "--")):
            def pick(sweep, key, head=head, loss=loss):
                return sorted((r for r in rows if r["sweep"] == sweep and r["head"] == head
                               and r["loss"] == loss), key=lambda r: r[key])
            lab = f"{head.upper()} {loss}"
            sel = pick("length", "length")
            axes[0].plot([r["length"] for r in sel], [r["seconds"] for r in sel], style,
                         marker="o", label=lab)
            axes[1].plot([r["length"] for r in sel], [r["peak_mb"] for r in sel], style,
                         marker="o", label=lab)
            sel = pick("types", "types")
            axes[2].plot([r["types"] for r in sel], [r["seconds"] for r in sel], style,
                         marker="o", label=lab)
    for ax, title, ylab in ((axes[0], "time vs length (10 types)", "seconds"),
                            (axes[1], "peak memory vs length (10 types)", "MB"),
                            (axes[2], f"time vs types ({type_len} tokens)",
                             "seconds")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = sorted({r["types" if ax is axes[2] else "length"] for r in rows
                        if r["sweep"] == ("types" if ax is axes[2] else "length")})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_title(title)
        ax.set_ylabel(ylab)
        ax.grid(alpha=0.3)
    axes[0].set_xlabel("tokens")
    axes[1].set_xlabel("tokens")
    axes[2].set_xlabel("entity types")
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
