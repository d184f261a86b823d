"""Load test of `gpner serve` on 127.0.0.1: throughput and latency with micro-batching on and
off, torch and onnx backends; then twice the sustainable load.

    python bench/serve_load.py [--model RUN_DIR] [--seconds 60] [--clients 32]

Each configuration starts its own server process (`gpner serve`, default settings otherwise)
and drives it with ``--clients`` closed-loop clients (each sends its next request when the last
is answered) for ``--seconds``. Requests are CLUENER dev texts of mixed length: 70% one
sentence (about 40 characters), 25% five sentences joined, 5% twenty; one text per request.
Then the overload phase: open-loop arrivals at twice the best batched torch throughput for
``--seconds / 2`` against a server with ``--max-queue 32``; it counts 200s, 429s and other
answers, checks /health afterwards, and reads the server's peak RSS (VmHWM).

Bounded: only 127.0.0.1, a fixed time per phase, at most ``--max-requests`` per phase and
``--max-outstanding`` requests open at once. Server and clients share this machine's cores.
Writes ``bench/results/serve_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time

import httpx
from common import DATA, RESULTS, ROOT, machine, save

HOST = "127.0.0.1"  # never another host: this is a load generator


def texts_of_mixed_length(n: int, seed: int = 0) -> list[str]:
    from gpner.data.formats import read

    sents = [r["text"] for r in read(DATA / "cluener" / "dev.json").records]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        u = rng.random()
        k = 1 if u < 0.70 else 5 if u < 0.95 else 20
        out.append("".join(rng.choice(sents) for _ in range(k)))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model: str, *options: str):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gpner.cli", "-q", "serve", model, "--host", HOST,
             "--port", str(self.port), *options],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {self.proc.stderr.read()[-2000:]}")
            time.sleep(0.2)
        raise SystemExit("server not ready in 120 s")

    def peak_rss_mb(self) -> float:
        for line in open(f"/proc/{self.proc.pid}/status", encoding="utf-8"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def quantiles(xs: list[float]) -> dict:
    xs = sorted(xs)
    if not xs:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    q = lambda p: round(1000 * xs[min(len(xs) - 1, int(p * len(xs)))], 1)  # noqa: E731
    return {"p50_ms": q(0.50), "p95_ms": q(0.95), "p99_ms": q(0.99)}


async def post(http: httpx.AsyncClient, text: str, status: dict[int, int],
               lat: list[float]) -> int:
    """One request: its status counted (-1: no answer), its latency kept when it is a 200."""
    t = time.perf_counter()
    try:
        code = (await http.post("/predict", json={"text": text})).status_code
    except httpx.HTTPError:
        code = -1
    status[code] = status.get(code, 0) + 1
    if code == 200:
        lat.append(time.perf_counter() - t)
    return code


async def closed_loop(url: str, texts: list[str], clients: int, seconds: float,
                      max_requests: int) -> dict:
    lat: list[float] = []
    status: dict[int, int] = {}
    chars = 0
    sent = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        async def client(k: int) -> None:
            nonlocal chars, sent
            i = k
            while time.perf_counter() < stop_at and sent < max_requests:
                sent += 1
                text = texts[i % len(texts)]
                i += clients
                if await post(http, text, status, lat) == 200:
                    chars += len(text)

        started = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        wall = time.perf_counter() - started
    ok = status.get(200, 0)
    return {"seconds": round(wall, 1), "requests": sum(status.values()), "ok": ok,
            "errors": sum(n for c, n in status.items() if c != 200),
            "status": {str(c): n for c, n in sorted(status.items())},
            "requests_per_s": round(ok / wall, 1), "chars_per_s": round(chars / wall),
            **quantiles(lat)}


async def open_loop(url: str, texts: list[str], rate: float, seconds: float,
                    max_requests: int, max_outstanding: int) -> dict:
    """Arrivals at ``rate``/s (Poisson) whatever the answers; never more than
    ``max_outstanding`` open (arrivals beyond it are counted as not sent)."""
    rng = random.Random(1)
    status: dict[int, int] = {}
    lat: list[float] = []
    open_now, not_sent, most_open = 0, 0, 0
    limits = httpx.Limits(max_connections=max_outstanding,
                          max_keepalive_connections=max_outstanding)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        async def one(text: str) -> None:
            nonlocal open_now
            await post(http, text, status, lat)
            open_now -= 1

        tasks = []
        start = time.perf_counter()
        nxt = start
        k = 0
        while nxt - start < seconds and k < max_requests:
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
            if open_now >= max_outstanding:
                not_sent += 1
            else:
                open_now += 1
                most_open = max(most_open, open_now)
                tasks.append(asyncio.create_task(one(texts[k % len(texts)])))
            k += 1
            nxt += rng.expovariate(rate)
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    return {"offered_per_s": round(rate, 1), "seconds": round(wall, 1), "arrivals": k,
            "not_sent_client_cap": not_sent, "most_open": most_open,
            "status": {str(c): n for c, n in sorted(status.items())},
            "ok_per_s": round(status.get(200, 0) / wall, 1), **quantiles(lat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "runs" / "bench" / "cluener-egp"))
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--max-requests", type=int, default=200_000)
    ap.add_argument("--max-outstanding", type=int, default=512)
    ap.add_argument("--out", default="serve_load.json")
    args = ap.parse_args()
    from gpner.model.artifact import resolve_dir
    from gpner.prediction.backends import FP32, ONNX_DIR

    model_dir = resolve_dir(args.model)
    if not (model_dir / ONNX_DIR / FP32).exists():
        subprocess.run([sys.executable, "-m", "gpner.cli", "-q", "export", str(model_dir),
                        "--onnx"], check=True)
    texts = texts_of_mixed_length(5000)
    rows = []
    for backend in ("torch", "onnx"):
        for batching in (True, False):
            opts = ["--backend", backend] + ([] if batching else ["--no-batching"])
            server = Server(str(model_dir), *opts)
            try:
                asyncio.run(closed_loop(server.url, texts[:200], 8, 3, 10_000))  # warm up
                r = asyncio.run(closed_loop(server.url, texts, args.clients, args.seconds,
                                            args.max_requests))
                r.update(backend=backend, batching=batching,
                         peak_rss_mb=round(server.peak_rss_mb()))
            finally:
                server.stop()
            print(r, flush=True)
            rows.append(r)
    best = max((r for r in rows if r["backend"] == "torch" and r["batching"]),
               key=lambda r: r["requests_per_s"])
    server = Server(str(model_dir), "--max-queue", "32")
    try:
        asyncio.run(closed_loop(server.url, texts[:200], 8, 3, 10_000))
        rss_before = server.peak_rss_mb()
        over = asyncio.run(open_loop(server.url, texts, 2 * best["requests_per_s"],
                                     args.seconds / 2, args.max_requests,
                                     args.max_outstanding))
        over["health_after"] = httpx.get(f"{server.url}/health").json()["status"]
        over["alive_after"] = server.proc.poll() is None
        over["peak_rss_mb_before"] = round(rss_before)
        over["peak_rss_mb_after"] = round(server.peak_rss_mb())
        after = asyncio.run(closed_loop(server.url, texts, 4, 5, 10_000))
        over["after_errors"] = after["errors"]
    finally:
        server.stop()
    print(over, flush=True)
    save(RESULTS / args.out, {"command": "python bench/serve_load.py", "machine": machine(),
          "settings": {"clients": args.clients, "seconds": args.seconds,
                       "model": str(args.model), "mix": "70% 1, 25% 5, 5% 20 CLUENER dev "
                       "sentences per text", "cpus": os.cpu_count()},
          "rows": rows, "overload": over})


if __name__ == "__main__":
    main()
