"""Load test of ``latentguard serve`` on 127.0.0.1: latency, throughput, errors and memory of the server process.

Starts ``python -m latentguard serve`` as a child process on a free loopback port with a temporary data folder,
warms it up (the first requests load the models), then sends ``--requests`` POST /v1/protect requests from
``--concurrency`` client threads (small PNGs, ``--method`` with ``--steps`` steps, each answered with the PNG),
and writes ``benchmarks/results/bench_serve.json``: p50/p95/p99/max latency, throughput, status counts (zero
5xx expected; 429 would mean the queue was full), and the server's resident memory (VmRSS) after warm-up,
sampled during the run, and at the end. Traffic goes to 127.0.0.1 only; the run is bounded in requests and
time (``--timeout``) and stops the server itself.

    PYTHONPATH=src python benchmarks/bench_serve.py --requests 200 --concurrency 8
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


def png(size: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray((rng.random((4, 4, 3)) * 255).astype("uint8")).resize((size, size), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--size", type=int, default=32, help="image side in pixels")
    ap.add_argument("--method", default="pca+")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds for the whole run")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_serve.json"))
    args = ap.parse_args()
    if not (1 <= args.concurrency <= 64 and 1 <= args.requests <= 10000):
        ap.error("--concurrency must be in 1..64 and --requests in 1..10000")

    port = free_port()
    data = tempfile.mkdtemp(prefix="lg-bench-serve-")
    cmd = [sys.executable, "-m", "latentguard", "serve", "--host", HOST, "--port", str(port), "--data-dir", data,
           "--workers", str(args.workers), "--threads", str(args.threads), "--steps", str(args.steps),
           "--queue-size", str(max(16, 2 * args.concurrency)), "--wait", "120", "--ttl", "30"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(args.threads))
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://{HOST}:{port}"
    deadline = time.monotonic() + args.timeout
    t_start = time.monotonic()
    try:
        with httpx.Client(base_url=base, timeout=10) as c:
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"server exited: {server.stderr.read()[-2000:]}")
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("server did not start")
                time.sleep(0.2)
        startup_s = time.monotonic() - t_start
        rss_started = rss_mb(server.pid)
        images = [png(args.size, i) for i in range(16)]
        fields = {"method": args.method, "steps": str(args.steps), "eps": "16/255", "wait": "120"}

        local = threading.local()

        def one(i: int) -> tuple[int, float]:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=base, timeout=180)
            t0 = time.perf_counter()
            r = local.client.post("/v1/protect", files={"image": (f"b{i}.png", images[i % len(images)], "image/png")},
                                  data=fields)
            return r.status_code, time.perf_counter() - t0

        t0 = time.monotonic()
        with ThreadPoolExecutor(args.concurrency) as ex:  # warm-up: models load, allocator settles
            warm = list(ex.map(one, range(args.warmup)))
        warmup_s = time.monotonic() - t0
        rss_before = rss_mb(server.pid)
        samples: list[tuple[int, float]] = []
        results: list[tuple[int, float]] = []
        lock = threading.Lock()

        def tracked(i: int) -> tuple[int, float]:
            if time.monotonic() > deadline:
                return -1, 0.0
            out = one(i)
            with lock:
                results.append(out)
                if len(results) % 25 == 0:
                    samples.append((len(results), round(rss_mb(server.pid), 1)))
            return out

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as ex:
            list(ex.map(tracked, range(args.requests)))
        wall = time.perf_counter() - t0
        rss_after = rss_mb(server.pid)
        with httpx.Client(base_url=base, timeout=10) as c:
            health = c.get("/healthz").json()
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    lat = [t for s, t in results if s == 200]
    codes = Counter(s for s, _ in results)
    out = {
        "benchmark": "bench_serve",
        "command": " ".join(sys.argv),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_at_end": [round(v, 2) for v in os.getloadavg()]},
        "server": {"workers": args.workers, "torch_threads": args.threads, "method": args.method, "steps": args.steps,
                   "image": f"{args.size}x{args.size} PNG", "startup_s": round(startup_s, 2)},
        "load": {"requests": args.requests, "concurrency": args.concurrency, "completed": len(results),
                 "warmup_requests": args.warmup, "warmup_s": round(warmup_s, 2),
                 "warmup_status": dict(Counter(s for s, _ in warm))},
        "status_counts": {str(k): v for k, v in sorted(codes.items())},
        "errors_5xx": sum(v for k, v in codes.items() if k >= 500),
        "latency_s": {"p50": round(pct(lat, 50), 4), "p95": round(pct(lat, 95), 4), "p99": round(pct(lat, 99), 4),
                      "max": round(max(lat), 4), "mean": round(statistics.fmean(lat), 4)} if lat else None,
        "throughput_rps": round(len(lat) / wall, 3),
        "wall_s": round(wall, 2),
        "rss_mb": {"after_start": round(rss_started, 1), "before": round(rss_before, 1), "after": round(rss_after, 1),
                   "delta": round(rss_after - rss_before, 1), "samples": samples},
        "health_at_end": health,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("status_counts", "errors_5xx", "latency_s", "throughput_rps", "rss_mb")}))
    return 0 if out["errors_5xx"] == 0 and codes.get(200, 0) == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
