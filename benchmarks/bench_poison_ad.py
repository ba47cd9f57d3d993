"""Alignment Difficulty at scale: time and peak memory of the exact (blocked) and sampled structure terms.

    PYTHONPATH=src python benchmarks/bench_poison_ad.py [--n 1000000] [--dim 256] [--device cpu]
        [--exact-n 10000,20000] [--exact-full] [--num-samples 10000000] [--out benchmarks/results/poison_ad_cpu.json]

Data: ``n`` random pairs, ``u ~ N(0, I)`` and ``v = u + 3 N(0, I)`` (image-text cosines around 0.32, so s_i spreads),
both L2-normalised, float32, generated in chunks by a seeded generator. Each measurement runs in a fresh
subprocess so its peak memory is its own: ``peak_rss_mb`` (ru_maxrss), ``embeddings_mb`` (the two input
matrices, which any method must hold), ``extra_peak_mb`` = peak minus RSS after the data was built
(the memory AD itself needed), and on CUDA ``cuda_peak_mb`` (max_memory_allocated). The exact method
is timed on the first ``exact_n`` pairs (and on all ``n`` with ``--exact-full``: hours on one CPU core,
seconds on a GPU); ``pairs_per_s`` counts unordered pairs ``i < j``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def make_pairs(n: int, dim: int, seed: int, device):
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)
    u = torch.empty(n, dim, dtype=torch.float32, device=device)
    v = torch.empty(n, dim, dtype=torch.float32, device=device)
    step = 1 << 16
    for i in range(0, n, step):
        a = torch.randn(min(step, n - i), dim, generator=g)
        b = a + 3.0 * torch.randn(a.shape, generator=g)
        u[i : i + len(a)] = torch.nn.functional.normalize(a, dim=1).to(device)
        v[i : i + len(a)] = torch.nn.functional.normalize(b, dim=1).to(device)
    return u, v


def single(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from latentguard.ops.runtime import resolve_device
    from latentguard.poison.alignment import alignment_difficulty

    dev = resolve_device(args.device)
    u, v = make_pairs(args.n, args.dim, args.seed, dev)
    if args.rows < args.n:
        u, v = u[: args.rows], v[: args.rows]
    rss0 = _rss_mb()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = alignment_difficulty(u, v, method=args.method, num_samples=args.num_samples, block_size=args.block_size,
                               seed=args.seed)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    n = u.shape[0]
    out = {
        "method": args.method, "n": n, "dim": args.dim, "device": str(dev), "seconds": round(secs, 3),
        "ad": res.ad, "feature": res.feature, "structure": res.structure, "structure_se": res.structure_se,
        "structure_ci": list(res.structure_ci), "num_samples": res.num_samples, "samples_per_row": res.samples_per_row,
        "block_size": args.block_size if args.method == "exact" else None,
        "embeddings_mb": round(2 * n * args.dim * 4 / 2**20, 1), "rss_before_mb": round(rss0, 1),
        "peak_rss_mb": round(_peak_mb(), 1), "extra_peak_mb": round(_peak_mb() - rss0, 1),
    }
    if args.method == "exact":
        out["pairs_per_s"] = n * (n - 1) / 2 / secs
    else:
        out["samples_per_s"] = res.num_samples / secs
    if dev.type == "cuda":
        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def run_child(base: list[str], extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--single", *base, *extra]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--block-size", type=int, default=2048)
    ap.add_argument("--num-samples", type=int, default=10_000_000)
    ap.add_argument("--exact-n", default="10000,20000", help="comma-separated subset sizes for exact timing")
    ap.add_argument("--exact-full", action="store_true", help="also the exact term on all n pairs")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "poison_ad_cpu.json"))
    # internal
    ap.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--method", default="sampled", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        args.rows = args.rows or args.n
        print(json.dumps(single(args)))
        return
    base = ["--dim", str(args.dim), "--device", args.device, "--threads", str(args.threads), "--seed", str(args.seed),
            "--block-size", str(args.block_size), "--num-samples", str(args.num_samples)]
    results = []
    t_all = time.time()
    exact_ns = [int(x) for x in args.exact_n.split(",") if x.strip()]
    for m in exact_ns:  # the first m rows of the same data: sampled vs exact comparable
        r = run_child(base, ["--n", str(m), "--method", "exact"])
        print(json.dumps(r), flush=True)
        results.append(r)
        r = run_child(base, ["--n", str(m), "--method", "sampled", "--num-samples", str(min(args.num_samples, 100 * m))])
        print(json.dumps(r), flush=True)
        results.append(r)
    r = run_child(base, ["--n", str(args.n), "--method", "sampled"])
    print(json.dumps(r), flush=True)
    results.append(r)
    if args.exact_full:
        r = run_child(base, ["--n", str(args.n), "--method", "exact"])
        print(json.dumps(r), flush=True)
        results.append(r)
    ex = [r for r in results if r["method"] == "exact"]
    doc = {
        "benchmark": "poison.alignment_difficulty at scale",
        "command": "python benchmarks/bench_poison_ad.py " + " ".join(sys.argv[1:]),
        "host": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "threads": args.threads},
        "results": results,
        "seconds_total": round(time.time() - t_all, 1),
    }
    if ex and not args.exact_full:
        best = max(ex, key=lambda r: r["n"])
        doc["exact_full_n_extrapolated_seconds"] = round(args.n * (args.n - 1) / 2 / best["pairs_per_s"], 0)
        doc["note"] = ("exact_full_n_extrapolated_seconds is an extrapolation from the largest exact run's pair "
                       "throughput (O(n^2)), not a measurement")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
