"""`gpner predict --ray` against the single-process path on this machine: texts/s, identical
output.

    python bench/ray_throughput.py [--model RUN_DIR] [--lines 20000]

The input is CLUENER train sentences as JSON lines. Single process: one process with the
machine's cores as intra-op threads. Ray: a local instance, two model replicas of one thread
each. Wall time includes Ray's start-up (about 10 s here), as a user of the command sees it.
Writes ``bench/results/ray_throughput.json``.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import subprocess
import time
from pathlib import Path

from common import DATA, RESULTS, ROOT, gpner_exe, machine, save


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)}: {res.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "runs" / "bench" / "cluener-egp"))
    ap.add_argument("--lines", type=int, default=20000)
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--data-root", default=str(DATA))
    args = ap.parse_args()
    from gpner.data.formats import read

    texts = [r["text"] for r in read(Path(args.data_root) / "cluener" / "train.json").records]
    work = Path("/tmp/gpner-ray-bench")
    work.mkdir(exist_ok=True)
    src = work / "in.jsonl"
    with open(src, "w", encoding="utf-8") as f:
        for k in range(args.lines):
            f.write(json.dumps({"text": texts[k % len(texts)], "id": k}, ensure_ascii=False)
                    + "\n")
    if args.backend != "torch":
        subprocess.run([gpner_exe(), "-q", "export", args.model, "--onnx"], check=True,
                       capture_output=True)
    base = [gpner_exe(), "predict", args.model, str(src), "--backend", args.backend,
            "--no-progress"]
    single = timed(base + ["-o", str(work / "single.jsonl")])
    ray = timed(base + ["-o", str(work / "ray.jsonl"), "--ray", "--ray-actors", "2"])
    single1 = timed(base + ["-o", str(work / "single1.jsonl"), "--threads", "1"])
    same = filecmp.cmp(work / "single.jsonl", work / "ray.jsonl", shallow=False)
    one = (work / "single.jsonl").read_text(encoding="utf-8").splitlines()
    differ = sum(a != b for a, b in zip(one, (work / "ray.jsonl").read_text(
        encoding="utf-8").splitlines(), strict=True))
    spans = [[(e["start"], e["end"], e["label"]) for e in json.loads(x)["entities"]]
             for x in (work / "single.jsonl").read_text(encoding="utf-8").splitlines()]
    spans_ray = [[(e["start"], e["end"], e["label"]) for e in json.loads(x)["entities"]]
                 for x in (work / "ray.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [{"path": "single process (2 threads)", "seconds": round(single, 1),
             "texts_per_s": round(args.lines / single)},
            {"path": "single process (1 thread)", "seconds": round(single1, 1),
             "texts_per_s": round(args.lines / single1)},
            {"path": "Ray, 2 replicas of 1 thread", "seconds": round(ray, 1),
             "texts_per_s": round(args.lines / ray)}]
    print(rows, "identical output:", same, "same spans:", spans == spans_ray, "differing:", differ)
    save(RESULTS / "ray_throughput.json", {
        "command": f"python bench/ray_throughput.py --lines {args.lines} --backend {args.backend}",
        "model": args.model, "lines": args.lines, "identical_output": same,
        "same_spans": spans == spans_ray, "records_differing": differ, "rows": rows,
        "machine": machine()})


if __name__ == "__main__":
    main()
