"""``latentguard protect ... --engine ray``: Ray Data actors that hold the protection and run the per-batch function.

The driver (the ``latentguard`` process) lists the inputs and skips the finished ones exactly as the local
engine does; Ray Data then streams the remaining items, ``batch_size`` at a time, to a pool of
``num_actors`` :class:`ProtectActor` (each loads the models once, in its constructor, with
``cpus_per_actor`` CPUs and ``gpus_per_actor`` GPUs), which call
:func:`latentguard.protect.batch.protect_batch`: the same function, reading the same bytes and deriving the same
per-image seeds as the local loop, so the PNGs are the same bytes. Each actor writes its PNGs atomically into
the output folder (which every node must see: a shared filesystem); the rows come back to the driver, which
alone appends them to ``results.jsonl`` (one writer: no interleaved lines).

Failure behaviour:

* an input that cannot be read, decoded or protected: an ``error`` row; the job goes on;
* an actor that dies (killed, out of memory, a crashed node): Ray restarts it (``max_restarts``) and re-runs the
  batch it held (``max_task_retries``). The dead attempt's rows never reached the driver, so no row is written
  twice; a PNG it had already published is replaced, atomically, by the same bytes;
* a batch that still fails after the retries: its inputs get ``error`` rows ("lost ... after N retries") and the
  job goes on (Ray Data's ``max_errored_blocks``); a rerun with ``--resume`` retries them;
* the driver killed: nothing is lost but the batches in flight; their PNGs are either whole or absent, and
  ``--resume`` redoes exactly the inputs without an ``ok`` row.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import warnings
from importlib import import_module
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from latentguard.protect import cli as protect_cli
from latentguard.protect.batch import ProtectItem, protect_batch
from latentguard.scale.runtime import ActorOptions

# Arguments that never travel to the actors (callables set by the entry point).
_LOCAL_ONLY = ("func", "protect_engine")


def actor_spec(args: argparse.Namespace) -> dict:
    """The command's arguments as plain data for the actors (they rebuild the protection from it)."""
    return {k: v for k, v in vars(args).items() if k not in _LOCAL_ONLY and not callable(v)}


class ProtectActor:
    """Holds one protection (models loaded once) and protects batches of items with :func:`protect_batch`.

    ``fault`` is a test hook: ``{"crash_on": STEM, "marker": PATH}`` makes the actor's process exit, once (the
    marker file records it), when it reaches that item: an actor killed mid-batch.
    """

    def __init__(self, spec: dict, out_dir: str, provenance: dict, threads: int | None = None,
                 fault: dict | None = None) -> None:
        import torch  # deferred: torch

        if threads:
            torch.set_num_threads(int(threads))
        self.args = argparse.Namespace(**spec)
        self.method, _ = protect_cli.build_method(self.args)
        self.mask = protect_cli.load_mask(self.args.mask) if getattr(self.args, "mask", None) else None
        self.out_dir = out_dir
        self.provenance = provenance
        self.fault = fault

    def _on_item(self, item: ProtectItem) -> None:
        f = self.fault
        if f and item.stem == f.get("crash_on") and not Path(f["marker"]).exists():
            Path(f["marker"]).write_text(str(os.getpid()))
            os._exit(1)  # like a SIGKILL or an OOM kill: no cleanup, no reply

    def __call__(self, batch: dict) -> dict:
        import numpy as np  # deferred: numpy

        items = [ProtectItem(str(k), str(i), str(s)) for k, i, s in zip(batch["key"], batch["input"], batch["stem"])]
        rows = protect_batch(self.method, items, self.out_dir, seed=self.args.seed, method_name=self.args.method,
                             mask=self.mask, provenance=self.provenance, lossy=getattr(self.args, "lossy", None),
                             on_item=self._on_item)
        return {"key": np.array([r["key"] for r in rows], dtype=object),
                "row": np.array([json.dumps(r, default=str) for r in rows], dtype=object)}


def ray_engine(args: argparse.Namespace, method: Any, items: Sequence[ProtectItem], out_dir: str | Path, *,
               provenance: dict, mask: Any = None, log: Callable[[str], None] | None = None,
               fault: dict | None = None, callback: Callable | None = None) -> Iterator[dict]:
    """Protect ``items`` on Ray; yield one result row per item as batches finish (every item exactly once).

    The signature of :func:`latentguard.protect.batch.local_engine` (``mask`` is reloaded by each actor from
    ``args.mask``). Reads from ``args``: ``address``, ``num_actors``, ``batch_size``, ``cpus_per_actor``, ``gpus_per_actor``,
    ``max_restarts`` and ``threads`` (torch threads per actor; default: its CPUs). ``callback`` (the local
    engine's per-step progress) is not used: the steps run in the actors; progress is per finished image.
    """
    if not items:
        return
    o = ActorOptions.of(args)
    num_actors, batch_size, cpus, gpus, retries = o.num_actors, o.batch_size, o.cpus, o.gpus, o.retries
    o.start()
    rdata = import_module("ray.data")  # deferred: ray.data (heavy; imported only on this path)

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = rdata.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.max_errored_blocks = len(items)  # a batch that fails for good becomes error rows, not a failed job
    threads = o.threads
    spec = actor_spec(args)
    if gpus > 0 and spec.get("device") in (None, "auto"):
        spec["device"] = "cuda"
    records = [{"key": it.key, "input": it.input, "stem": it.stem} for it in items]
    ds = rdata.from_items(records, override_num_blocks=max(1, -(-len(records) // batch_size)))
    with warnings.catch_warnings():
        # Ray 2.60 has no named parameter for max_restarts/max_task_retries yet and warns about passing them
        # as remote args; they are still honoured (tests/scale kill an actor mid-batch).
        warnings.simplefilter("ignore", DeprecationWarning)
        out = ds.map_batches(
            ProtectActor, fn_constructor_kwargs={"spec": spec, "out_dir": str(out_dir), "provenance": provenance,
                                                 "threads": threads, "fault": fault},
            batch_size=batch_size, batch_format="numpy", num_cpus=cpus, num_gpus=gpus or None,
            compute=rdata.ActorPoolStrategy(size=num_actors),
            # a dead actor is restarted and the batch it held is re-run on it, `retries` times at most
            max_restarts=retries, max_task_retries=retries)
    seen: set[str] = set()
    for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
        for key, row in zip(batch["key"], batch["row"]):
            if key in seen:  # cannot happen with Ray Data's semantics; never write a row twice anyway
                continue
            seen.add(str(key))
            r = json.loads(row)
            if r.get("status") != "ok" and log:
                err = str(r.get("error"))
                log(f"latentguard: skipped {err if err.startswith(r['input']) else r['input'] + ': ' + err}")
            yield r
    for it in items:
        if it.key not in seen:
            msg = f"{it.input}: lost after {retries} retries of its batch (a worker died each time)"
            if log:
                log(f"latentguard: failed {msg}")
            yield {"key": it.key, "input": it.input, "method": args.method, "status": "error", "error": msg}
