"""Scale-out on Ray: protect throughput (local loop vs Ray actors) and exact AD tasks over Parquet shards.

    PYTHONPATH=src python benchmarks/bench_scale.py [--images 16] [--steps 5] [--batch-size 2]
        [--ad-n 100000,1000000] [--ad-tasks 3] [--check-n 20000] [--skip-protect] [--skip-ad]
        [--out benchmarks/results/bench_scale.json]

**Protect** (``pca+`` on ``zoo:vae-a``, 256 px: the 8 bundled photos and their mirror images, ``--steps`` PGD
steps, CPU, one torch thread per worker): the local engine in this process, then ``--engine ray`` with 1 and 2
actors (one CPU each) on a local Ray instance with 2 CPUs. Timed from the first item handed to the engine to
each result row's arrival: ``wall_s`` includes the actors' start (process, imports, model load);
``steady_images_per_s`` counts the images finished after each worker's first one, over the time from then to the
last (from the rows' ``finished_at``): the rate a long job runs at. ``overhead_vs_local`` = 1 - steady(Ray) / steady(local). The PNGs of every engine are
compared byte for byte (``identical_to_local``).

**AD** (``n`` pairs of ``dim``-d float32 embeddings: ``u ~ N(0, I)``, ``v = u + 3 N(0, I)``, in Parquet shards of
100,000 rows): a sample of the exact method's upper-triangle block tasks (``task_rows`` x ``task_rows``, tiles of
``block_size``) is run as Ray tasks, each in a fresh worker process (``max_calls=1``) so its memory high-water
mark is its own: ``seconds``, ``rss_start_mib`` (worker after imports), ``peak_rss_mib`` and ``block_mib`` (what
the task allocated: its blocks and tile). The full exact run's cost is projected from the measured off-diagonal
task time (``projected_*``: labelled as projections, not runs). A full exact run at ``--check-n`` and a sampled run
at the first ``--ad-n`` are checked against the single-process code.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

os.environ.setdefault("OMP_NUM_THREADS", "1")
# Ray's workers import latentguard by name: this checkout's sources first, as in the driver
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.png"))}


def _timed(rows_iter) -> tuple[list[dict], list[float]]:
    rows, times = [], []
    t0 = time.perf_counter()
    for r in rows_iter:
        rows.append(r)
        times.append(time.perf_counter() - t0)
    return rows, times


def _steady(rows: list[dict], first: int) -> float | None:
    """Images per second after the first ``first`` images finished (one per worker: its warm-up), from the
    rows' ``finished_at`` (when each PNG was in place), not from when the driver received them."""
    t = sorted(r["finished_at"] for r in rows if "finished_at" in r)
    if len(t) <= first or t[-1] <= t[first - 1]:
        return None
    return (len(t) - first) / (t[-1] - t[first - 1])


def bench_protect(images: int, steps: int, batch_size: int, work: Path) -> dict:
    import torch

    from latentguard.cli.app import build_parser
    from latentguard.io import save_image
    from latentguard.protect import cli as protect_cli
    from latentguard.protect.batch import clean_staging, collect_items, local_engine
    from latentguard.samples import sample_images
    from latentguard.scale.protect import ray_engine
    from latentguard.scale.runtime import init_ray

    torch.set_num_threads(1)
    x = sample_images(256)
    x = torch.cat([x, x.flip(-1)])[:images]
    src = work / "in"
    for i in range(len(x)):
        save_image(x[i], src / f"img{i:02d}.png")
    argv = ["protect", str(src), "--steps", str(steps), "--random-start", "--device", "cpu", "--threads", "1",
            "--out", str(work / "unused")]
    args = build_parser().parse_args(argv)
    method, models = protect_cli.build_method(args)
    items = collect_items(args.inputs)
    prov = {"method": args.method, "eps": method.eps, "norm": method.norm, "steps": method.steps, "surrogates": models}
    runs = {}
    out = work / "local"
    out.mkdir()
    rows, times = _timed(local_engine(args, method, items, out, provenance=prov))
    clean_staging(out)
    ref = _digests(out)
    runs["local"] = {"wall_s": round(times[-1], 2), "images": len(rows), "load_avg": _load(),
                     "steady_images_per_s": _steady(rows, 1),
                     "protect_s_per_image": sum(r["seconds"] for r in rows) / len(rows)}
    t = time.perf_counter()
    ray = init_ray(None, num_cpus=2)
    ray_init_s = time.perf_counter() - t
    for actors in (1, 2):
        a = build_parser().parse_args(argv + ["--engine", "ray", "--num-actors", str(actors),
                                              "--batch-size", str(batch_size)])
        out = work / f"ray{actors}"
        out.mkdir()
        rows, times = _timed(ray_engine(a, method, items, out, provenance=prov))
        clean_staging(out)
        runs[f"ray_{actors}_actor"] = {
            "wall_s": round(times[-1], 2), "images": len(rows), "load_avg": _load(),
            "steady_images_per_s": _steady(rows, actors),
            "protect_s_per_image": sum(r["seconds"] for r in rows) / len(rows),
            "identical_to_local": _digests(out) == ref, "batch_size": batch_size}
    base = runs["local"]["steady_images_per_s"]
    for k, r in runs.items():
        if k != "local" and base and r["steady_images_per_s"]:
            r["overhead_vs_local"] = round(1 - r["steady_images_per_s"] / base, 4)
    ray.shutdown()
    return {"method": "pca+", "model": "zoo:vae-a", "size_px": 256, "steps": steps, "random_start": True,
            "images": len(x), "device": "cpu", "torch_threads_per_worker": 1, "ray_init_s": round(ray_init_s, 2),
            "runs": runs}


def _write_pairs(folder: Path, n: int, dim: int, seed: int = 0, shard_rows: int = 100_000) -> None:
    import numpy as np

    from latentguard.scale.ad import write_embedding_shards

    g = np.random.default_rng(seed)
    for k, i0 in enumerate(range(0, n, shard_rows)):
        m = min(shard_rows, n - i0)
        u = g.standard_normal((m, dim), dtype=np.float32)
        v = u + 3 * g.standard_normal((m, dim), dtype=np.float32)
        sub = folder / f"part{k:03d}"
        write_embedding_shards(sub, u, v, rows_per_shard=shard_rows)
        (sub / "shard-00000.parquet").rename(folder / f"shard-{k:05d}.parquet")
        sub.rmdir()


def bench_ad(ns: list[int], dim: int, task_rows: int, block_size: int, n_tasks: int, check_n: int, work: Path) -> dict:
    import numpy as np
    import torch

    from latentguard.poison.alignment import alignment_difficulty
    from latentguard.scale.ad import alignment_difficulty_sharded, exact_block_task, list_shards, read_rows
    from latentguard.scale.runtime import init_ray

    torch.set_num_threads(1)
    ray = init_ray(None, num_cpus=2)
    task = ray.remote(num_cpus=1, max_calls=1)(exact_block_task)  # a fresh worker per task: its own peak memory
    out: dict = {"dim": dim, "task_rows": task_rows, "block_size": block_size, "dtype": "float32",
                 "accumulation": "float64 row/column sums per tile, float64 across tasks", "sizes": {}}
    for n in ns:
        folder = work / f"ad{n}"
        t = time.perf_counter()
        _write_pairs(folder, n, dim)
        write_s = time.perf_counter() - t
        ss = list_shards(str(folder))
        nb = -(-n // task_rows)
        blocks = [(a * task_rows, min((a + 1) * task_rows, n)) for a in range(nb)]
        picks = [(0, 0), (0, 1), (nb // 2, nb // 2 + 1), (nb - 2, nb - 1)][:max(1, n_tasks)]
        tasks = []
        ref = ray.put(ss)
        for bi, bj in picks:
            (i0, i1), (j0, j1) = blocks[bi], blocks[bj]
            r = ray.get(task.remote(ref, i0, i1, j0, j1, block_size, torch.float32, 1))
            tasks.append({"block": [bi, bj], "rows": [i0, i1, j0, j1], "diagonal": bi == bj,
                          "seconds": round(r["seconds"], 3), "rss_start_mib": round(r["rss_start_mib"] or 0, 1),
                          "peak_rss_mib": round(r["peak_rss_mib"], 1), "block_mib": round(r["block_bytes"] / 2**20, 1),
                          "load_avg": _load()})
        off = [t["seconds"] for t in tasks if not t["diagonal"] and t["rows"][3] - t["rows"][2] == task_rows]
        n_grid = nb * (nb + 1) // 2
        per_task = float(np.mean(off)) if off else None
        entry = {"n": n, "shards": len(ss.shards), "write_shards_s": round(write_s, 1), "grid_tasks": n_grid,
                 "tasks_measured": tasks, "off_diagonal_task_s_mean": per_task,
                 "flop_per_off_diagonal_task": 4 * task_rows * task_rows * dim}
        if per_task:
            # upper triangle incl. the diagonal: ~ (nb^2 / 2) full blocks of work
            cpu_s = per_task * (nb * nb / 2)
            entry.update({"projected_cpu_hours": round(cpu_s / 3600, 2),
                          "projected_wall_hours_2_workers_here": round(cpu_s / 2 / 3600, 2),
                          "gflop_per_s_per_task": round(entry["flop_per_off_diagonal_task"] / per_task / 1e9, 2)})
        if n == ns[0]:
            u, v = read_rows(ss, 0, n)
            t = time.perf_counter()
            single = alignment_difficulty(u, v, method="sampled", seed=0)
            t_single = time.perf_counter() - t
            t = time.perf_counter()
            res, run = alignment_difficulty_sharded(ss, method="sampled", seed=0, engine="ray")
            entry["sampled"] = {"num_samples": res.num_samples, "structure": res.structure,
                                "structure_ci": list(res.structure_ci), "ad": res.ad, "ad_ci": list(res.ad_ci),
                                "seconds_ray": round(time.perf_counter() - t, 2), "seconds_single_process": round(t_single, 2),
                                "identical_to_single_process": (res.ad, res.structure_ci) == (single.ad, single.structure_ci),
                                "tasks": run.n_tasks}
            del u, v
        shutil.rmtree(folder)
        out["sizes"][str(n)] = entry
    if check_n:
        folder = work / "check"
        _write_pairs(folder, check_n, dim, seed=1)
        u, v = read_rows(list_shards(str(folder)), 0, check_n)
        t = time.perf_counter()
        single = alignment_difficulty(u, v, method="exact")
        t_single = time.perf_counter() - t
        t = time.perf_counter()
        res, run = alignment_difficulty_sharded(str(folder), method="exact", task_rows=task_rows,
                                                block_size=block_size, engine="ray")
        out["exact_check"] = {"n": check_n, "ad_single_process": single.ad, "ad_ray": res.ad,
                              "rel_diff": abs(res.ad - single.ad) / single.ad,
                              "row_structure_max_abs_diff": float(np.abs(res.row_structure - single.row_structure).max()),
                              "seconds_single_process_1_thread": round(t_single, 2),
                              "seconds_ray_2_workers": round(time.perf_counter() - t, 2), "tasks": run.n_tasks,
                              "load_avg": _load()}
        shutil.rmtree(folder)
    ray.shutdown()
    return out


def main() -> None:
    from _tables import write_result

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--ad-n", default="100000,1000000")
    ap.add_argument("--ad-dim", type=int, default=512)
    ap.add_argument("--ad-tasks", type=int, default=3)
    ap.add_argument("--task-rows", type=int, default=8192)
    ap.add_argument("--block-size", type=int, default=2048)
    ap.add_argument("--check-n", type=int, default=20000)
    ap.add_argument("--skip-protect", action="store_true")
    ap.add_argument("--skip-ad", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/bench_scale.json"))
    a = ap.parse_args()
    import ray

    t0 = time.perf_counter()
    path = Path(a.out)
    result: dict = {}
    if path.exists():  # keep the part not re-run
        import json

        result = json.loads(path.read_text())
    result.update({"host": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg_start": _load()},
                   "ray": ray.__version__, "command": "python benchmarks/bench_scale.py " + " ".join(sys.argv[1:])})
    work = Path(tempfile.mkdtemp(prefix="bench_scale-"))
    try:
        if not a.skip_protect:
            result["protect"] = bench_protect(a.images, a.steps, a.batch_size, work)
        if not a.skip_ad:
            result["ad"] = bench_ad([int(s) for s in a.ad_n.split(",") if s], a.ad_dim, a.task_rows, a.block_size,
                                    a.ad_tasks, a.check_n, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    write_result(path, result)


if __name__ == "__main__":
    main()
