"""``latentguard bench CONFIG.toml --engine ray``: the bench runner's units on Ray Data actors.

A unit (:class:`latentguard.evaluate.runner.BenchUnit`) is one protection cell (method, budget, surrogate) on
one batch of images, through every target, edit and purification: the grain at which the local loop already
protects, caches and scores. The driver lists the units in the local loop's order and sends each as a Ray Data
row to a pool of :class:`BenchActor` (each loads the config, its images, models and scorers once, in its
constructor), which runs :meth:`latentguard.evaluate.runner.UnitRunner.run`, the local loop's per-unit function,
with a row buffer in place of the results file. The rows come back to the driver, which alone writes
``results.jsonl``, in the units' order, so the file is the local run's but for the timing fields; the actors
write the image cache (``images/``: protected, purified, edited PNGs, atomically) into the output folder, which
every node must see.

Resuming: the finished cells (``--resume``) go to every actor, which skips them as the local loop does. A dead
actor is restarted and its unit redone (``max_restarts`` / ``max_task_retries``); the driver keeps the first
answer per unit. A unit that fails for good fails the run; what was written before it is kept for ``--resume``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Iterator, Sequence

from latentguard.core.errors import UserError
from latentguard.evaluate.config import BenchConfig
from latentguard.evaluate.runner import BenchUnit, RowBuffer, UnitRunner
from latentguard.scale.runtime import ActorOptions


class BenchActor:
    """Holds the models and scorers of one bench config and runs its units. ``fault``: a test hook,
    ``{"crash_on": UNIT_INDEX, "marker": PATH}`` makes the process exit once when it reaches that unit."""

    def __init__(self, cfg: BenchConfig, out_dir: str, done: list[str], threads: int | None = None,
                 fault: dict | None = None) -> None:
        import torch  # deferred: torch

        from latentguard.ops.runtime import seed_everything

        if threads:
            torch.set_num_threads(int(threads))
        seed_everything(cfg.seed)
        self.buffer = RowBuffer()
        self.runner = UnitRunner.for_config(cfg, out_dir, self.buffer, done)
        self.fault = fault

    def __call__(self, batch: dict) -> dict:
        import numpy as np  # deferred: numpy
        from tqdm.auto import tqdm

        idx, docs = [], []
        for k, unit in zip(batch["index"], batch["payload"]):
            f = self.fault
            if f and int(k) == int(f.get("crash_on", -1)) and not Path(f["marker"]).exists():
                Path(f["marker"]).write_text(str(os.getpid()))
                os._exit(1)  # like a SIGKILL or an OOM kill
            self.buffer.rows = []
            counts = self.runner.run(BenchUnit(**json.loads(str(unit))), tqdm(disable=True))
            idx.append(int(k))
            docs.append(json.dumps({"rows": self.buffer.rows, "counts": counts}, default=str))
        return {"index": np.array(idx, dtype=np.int64), "doc": np.array(docs, dtype=object)}


def ray_bench_engine(args: argparse.Namespace, fault: dict | None = None):
    """An engine for :func:`latentguard.evaluate.runner.run_bench` with the Ray options of ``args``
    (``address``, ``num_actors``, ``cpus_per_actor``, ``gpus_per_actor``, ``max_restarts``, ``threads``)."""
    o = ActorOptions.of(args)
    gpus, retries, threads = o.gpus, o.retries, o.threads

    def engine(cfg: BenchConfig, out: Path, units: Sequence[BenchUnit], done: set) -> Iterator[tuple[int, list, dict]]:
        if not units:
            return
        # the actors may not share the driver's working directory: image paths travel absolute
        images = cfg.images if isinstance(cfg.images, str) else tuple(str(Path(p).resolve()) for p in cfg.images)
        acfg = replace(cfg, images=images)
        if gpus > 0 and acfg.device in (None, "auto"):
            acfg = replace(acfg, device="cuda")
        seen: set[int] = set()
        payloads = [json.dumps(asdict(u)) for u in units]
        kwargs = {"cfg": acfg, "out_dir": str(out), "done": sorted(done), "threads": threads, "fault": fault}
        for k, d in o.run_indexed(payloads, BenchActor, kwargs):
            seen.add(k)
            yield k, d["rows"], d["counts"]
        if len(seen) != len(units):
            raise UserError(f"bench on Ray: {len(units) - len(seen)} unit(s) lost after {retries} retries; "
                            "rerun with --resume")

    engine.engine_name = "ray"  # type: ignore[attr-defined]  # run.json names it
    return engine
