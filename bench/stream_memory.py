"""Peak memory of `gpner predict` streaming JSON-lines files of growing size.

    python bench/stream_memory.py [--sizes 10,100,1000] [--backend onnx] [--threads 1]

The input repeats CLUENER train sentences as ``{"text": ..., "id": k}`` lines up to each size
(MB). The model is a small built-in one trained here for one epoch (the streaming path's memory
does not depend on the model's size, and a small model gets through a gigabyte in minutes).
Each run is its own process; its peak RSS comes from ``wait4``. Writes
``bench/results/stream_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from common import DATA, RESULTS, gpner_exe, machine, save

SMALL = ["epochs=1", "word_dim=32", "bigram_dim=16", "char_dim=8", "char_channels=16",
         "lstm_hidden=32", "lstm_layers=1", "head_size=16", "head=gp"]


def make_input(path: Path, megabytes: float, texts: list[str]) -> int:
    """Write ``megabytes`` of JSON lines; returns the number of lines."""
    target, size, n = int(megabytes * 1e6), 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while size < target:
            line = json.dumps({"text": texts[n % len(texts)], "id": n}, ensure_ascii=False) + "\n"
            f.write(line)
            size += len(line.encode())
            n += 1
    return n


def measure(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one command. The peak is the child's own VmHWM, read every
    0.1 s until it exits: ``ru_maxrss`` would count this (larger) process's memory too, because
    Linux carries a parent's high-water mark into a forked child."""
    t = time.perf_counter()
    err = tempfile.TemporaryFile()  # not a pipe: nobody reads it while the child runs
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    peak = 0.0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                line = next((x for x in f if x.startswith("VmHWM")), None)
            if line:
                peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    secs = time.perf_counter() - t
    if proc.returncode:
        err.seek(0)
        raise SystemExit(f"{' '.join(cmd)} failed: {err.read().decode()[-2000:]}")
    return secs, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,100,1000", help="input sizes in MB")
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--threads", type=int, default=1, help="the model's CPU threads")
    ap.add_argument("--work", default="/tmp/gpner-stream-bench")
    ap.add_argument("--data-root", default=str(DATA))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    train = Path(args.data_root) / "cluener" / "train.json"
    model = work / "model"
    if not (model / "model").exists():
        subprocess.run([gpner_exe(), "-q", "train", "--train", str(train), "--output", str(model),
                        "--no-progress", *SMALL], check=True)
    if args.backend != "torch":
        subprocess.run([gpner_exe(), "-q", "export", str(model), "--onnx"], check=True,
                       stderr=subprocess.DEVNULL)
    from gpner.data.formats import read

    texts = [r["text"] for r in read(train).records]
    rows = []
    for mb in [float(x) for x in args.sizes.split(",")]:
        src = work / f"in-{mb:g}MB.jsonl"
        lines = make_input(src, mb, texts)
        out = work / "out.jsonl"
        cmd = [gpner_exe(), "predict", str(model), str(src), "-o", str(out), "--backend",
               args.backend, "--batch-size", "64", "--threads", str(args.threads), "--no-progress"]
        secs, rss = measure(cmd)
        out_lines = sum(1 for _ in open(out, encoding="utf-8"))
        row = {"input_mb": mb, "lines": lines, "output_lines": out_lines, "seconds": round(secs, 1),
               "texts_per_s": round(lines / secs), "peak_rss_mb": round(rss, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        src.unlink()
        out.unlink()
        # saved after every size: the largest takes hours, and the smaller ones stand alone
        save(RESULTS / "stream_memory.json", {
            "command": f"python bench/stream_memory.py --sizes {args.sizes} --backend "
                       f"{args.backend} --threads {args.threads}",
            "model_settings": SMALL, "machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
