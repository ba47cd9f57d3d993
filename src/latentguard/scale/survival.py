"""``latentguard survival ... --engine ray`` (and ``protect ... --survival --engine ray``): the survival batches
scored by Ray Data actors.

The driver pairs the inputs and forms the same-size batches exactly as the local run does (the purifiers' noise
is seeded from the ids of a batch, so a batch is the unit that must not change); each batch is one Ray Data
row, sent to a pool of :class:`SurvivalActor` (each builds the edits, purifiers and scorers once, in its
constructor, from the run's spec), which reloads the batch's images from their paths and calls
:meth:`latentguard.evaluate.survival.SurvivalSetup.score`: the function the local loop calls. The rows come
back to the driver, which puts them in input order and writes every output itself, so the files are the
local run's but for the timing column (``seconds_per_image``).

Failure behaviour: a dead actor is restarted and its batch redone (``max_restarts`` / ``max_task_retries``);
the driver keeps the first answer per batch, so nothing is counted twice. A batch that fails for good fails
the run with its error: a survival table with holes would read as a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Iterator, Sequence

from latentguard.core.errors import UserError
from latentguard.evaluate.survival import SurvivalItem, SurvivalSetup
from latentguard.io import load_image
from latentguard.scale.runtime import ActorOptions


def _item_record(it: SurvivalItem) -> dict:
    if not it.protected_path or not it.clean_path:
        raise UserError(f"--engine ray reads the images from their files; {it.id!r} has no path")
    return {"id": it.id, "protected": it.protected_path, "clean": it.clean_path, "method": it.method,
            "objective": it.objective}


class SurvivalActor:
    """Holds one :class:`SurvivalSetup` and scores batches. ``fault``: a test hook, ``{"crash_on": ID,
    "marker": PATH}`` makes the actor's process exit once when it reaches the batch holding that image."""

    def __init__(self, spec: dict, threads: int | None = None, fault: dict | None = None) -> None:
        import torch  # deferred: torch

        if threads:
            torch.set_num_threads(int(threads))
        self.setup = SurvivalSetup.build(spec)
        self.fault = fault

    def __call__(self, batch: dict) -> dict:
        import numpy as np  # deferred: numpy

        out_k, out_doc = [], []
        for k, job in zip(batch["index"], batch["payload"]):
            recs = json.loads(str(job))
            f = self.fault
            if f and any(r["id"] == f.get("crash_on") for r in recs) and not Path(f["marker"]).exists():
                Path(f["marker"]).write_text(str(os.getpid()))
                os._exit(1)  # like a SIGKILL or an OOM kill
            items = [SurvivalItem(r["id"], load_image(r["protected"]), load_image(r["clean"]), r["method"],
                                  r["objective"], r["protected"], r["clean"]) for r in recs]
            rows, images = self.setup.score(items)
            out_k.append(int(k))
            out_doc.append(json.dumps({"rows": rows, "images": images}, default=float))
        return {"index": np.array(out_k, dtype=np.int64), "doc": np.array(out_doc, dtype=object)}


def ray_survival_engine(args: argparse.Namespace, fault: dict | None = None):
    """An engine for :func:`latentguard.evaluate.survival.run_survival` with the Ray options of ``args``
    (``address``, ``num_actors``, ``cpus_per_actor``, ``gpus_per_actor``, ``max_restarts``, ``threads``)."""
    o = ActorOptions.of(args)
    gpus, retries, threads = o.gpus, o.retries, o.threads

    def engine(jobs: Sequence[Sequence[SurvivalItem]], spec: dict) -> Iterator[tuple[int, list, list]]:
        if not jobs:
            return
        payloads = [json.dumps([_item_record(it) for it in job]) for job in jobs]
        aspec = dict(spec)
        if gpus > 0 and aspec.get("device") in (None, "auto"):
            aspec["device"] = "cuda"
        seen: set[int] = set()
        for k, d in o.run_indexed(payloads, SurvivalActor, {"spec": aspec, "threads": threads, "fault": fault}):
            seen.add(k)
            yield k, d["rows"], d["images"]
        missing = sorted(set(range(len(jobs))) - seen)
        if missing:
            raise UserError(f"survival on Ray: {len(missing)} batch(es) lost after {retries} retries "
                            f"(first: {', '.join(it.id for it in jobs[missing[0]])})")

    engine.engine_name = "ray"  # type: ignore[attr-defined]  # run.json's config names it
    return engine
