"""Long documents: prediction time and peak memory from 1,000 to 1,000,000 characters.

    python bench/long_docs.py [--model RUN_DIR] [--quick]

Each document is generated (Chinese and English sentences of the demo generator, entities
throughout) and predicted in its own process, so each peak RSS is that size's alone. Writes
``bench/results/long_docs.json`` and ``docs/long_docs.png``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, ROOT, machine, save

CHILD = """
import json, sys, time
from gpner.prediction.loading import load


def hwm():  # this process's own peak RSS (ru_maxrss would include the parent's at fork)
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


model = load(sys.argv[1], backend=sys.argv[3])
text = open(sys.argv[2], encoding="utf-8").read()
loaded = hwm()
# a warm-up text of more windows than the predictor's look-ahead holds (16 batches of 32, about
# 66k tokens): the high-water mark after it is the model's working set (windows waiting in the
# look-ahead, batch tensors, allocator caches), which does not depend on the document
model.predict("北京大学在海淀区。Bank of London opened in Paris. " * 5000, batch_size=32)
base = hwm()
t = time.perf_counter()
rec = model.predict(text, batch_size=32)
secs = time.perf_counter() - t
peak = hwm()
import tracemalloc  # after the measurement: what the text's token encoding alone takes

tracemalloc.start()
enc = model.featurizer.encode(text)
encoding_mb = tracemalloc.get_traced_memory()[0] / 2 ** 20
tracemalloc.stop()
packed_mb = enc.packed().nbytes / 2 ** 20  # what is held while the windows are predicted
print(json.dumps({{"tokens": len(enc), "seconds": secs, "peak_rss_mb": peak,
                  "rss_loaded_mb": loaded, "rss_before_mb": base, "encoding_mb": encoding_mb,
                  "packed_mb": packed_mb,
                  "found": [(e["start"], e["end"], e["label"]) for e in rec["entities"]]}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "runs" / "demo" / "run"),
                    help="a model trained on the demo corpus (make demo writes one)")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    child = CHILD.format()
    sys.path.insert(0, str(ROOT / "tests"))
    from test_windows import document

    rows = []
    for n in sizes:
        t = time.time()
        doc = document(n, seed=21)  # generated here: the child holds only the text and model
        path = Path(f"/tmp/gpner-long-doc-{n}.txt")
        path.write_text(doc["text"], encoding="utf-8")
        res = subprocess.run([sys.executable, "-c", child, args.model, str(path), args.backend],
                             capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(res.stderr[-3000:])
        row = json.loads(res.stdout.splitlines()[-1])
        found = {tuple(x) for x in row.pop("found")}
        gold = {(e["start"], e["end"], e["label"]) for e in doc["entities"]}
        row.update(chars=len(doc["text"]), entities=len(gold), found=len(found),
                   correct=len(found & gold), chars_per_s=round(len(doc["text"]) / row["seconds"]))
        rows.append(row)
        print(json.dumps(row), f"({time.time() - t:.0f} s)", flush=True)
    out = {"command": "python bench/long_docs.py" + (" --quick" if args.quick else ""),
           "model": args.model, "backend": args.backend, "machine": machine(), "rows": rows}
    save(RESULTS / ("long_docs.quick.json" if args.quick else "long_docs.json"), out)
    if not args.quick:
        plot(rows, ROOT / "docs" / "long_docs.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["chars"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.loglog(x, [r["seconds"] for r in rows], "o-", label="measured")
    k = rows[-1]["seconds"] / x[-1]
    a.loglog(x, [k * v for v in x], "--", color="grey", label="linear")
    a.set_xlabel("characters")
    a.set_ylabel("seconds")
    a.legend()
    b.semilogx(x, [r["peak_rss_mb"] for r in rows], "o-", label="peak")
    if all("rss_before_mb" in r for r in rows):
        b.semilogx(x, [r["rss_before_mb"] for r in rows], "s--", color="grey",
                   label="warmed up (before the document)")
        b.legend(loc="lower right")
    b.set_ylim(0, max(r["peak_rss_mb"] for r in rows) * 1.2)
    b.set_xlabel("characters")
    b.set_ylabel("RSS (MB)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
