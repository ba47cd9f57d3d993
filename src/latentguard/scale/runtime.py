"""Connecting to Ray: a local instance or a running cluster (``--address``), with a clear error without Ray."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from typing import Any, Iterator

from latentguard.core.errors import UserError

# Small by default: a local instance here shares the machine with the rest of the run. A cluster's own
# `ray start` settings win when --address is given.
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2


def import_ray() -> Any:
    """``ray``, or a one-line :class:`UserError` naming the extra to install."""
    try:
        import ray  # deferred: ray (the optional latentguard[scale] extra)
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'latentguard[scale]' (or pip install 'ray[data]')") from None
    return ray


def init_ray(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None,
             object_store_memory: int | None = None) -> Any:
    """Connect to Ray once: an already initialised session is reused (tests, notebooks), ``address``
    (``auto``, ``ray://host:10001`` or ``host:6379``) joins a cluster, nothing starts a local instance.

    Returns the ``ray`` module.
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home from a user's job
    kw: dict = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
    if address:
        ray.init(address=address, **kw)
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus,
                 object_store_memory=object_store_memory or LOCAL_OBJECT_STORE_BYTES, **kw)
    return ray


def cluster_summary(ray: Any) -> dict:
    """Resources Ray sees (for run.json): CPUs, GPUs, nodes."""
    res = ray.cluster_resources()
    return {"cpus": res.get("CPU", 0.0), "gpus": res.get("GPU", 0.0), "nodes": len([n for n in ray.nodes() if n.get("Alive")])}


@dataclass(frozen=True)
class ActorOptions:
    """The Ray options every ``--engine ray`` command shares, read from its arguments and checked once."""

    num_actors: int = 1
    batch_size: int = 8
    cpus: float = 1.0
    gpus: float = 0.0
    retries: int = 3
    address: str | None = None
    threads: int = 1

    @classmethod
    def of(cls, args: Any) -> "ActorOptions":
        """From ``args`` (an argparse namespace or any object with the option names); a missing option takes
        its default, a bad value is a one-line :class:`UserError`."""
        def get(name: str, default: Any) -> Any:
            v = getattr(args, name, None)
            return default if v is None else v

        o = cls(int(get("num_actors", 1)), int(get("batch_size", 8)), float(get("cpus_per_actor", 1.0)),
                float(get("gpus_per_actor", 0.0)), int(get("max_restarts", 3)), getattr(args, "address", None), 1)
        for name, v, lo in (("--num-actors", o.num_actors, 1), ("--batch-size", o.batch_size, 1),
                            ("--max-restarts", o.retries, 0)):
            if v < lo:
                raise UserError(f"{name} must be >= {lo}, got {v}")
        if o.cpus <= 0 or o.gpus < 0:
            raise UserError(f"--cpus-per-actor must be > 0 and --gpus-per-actor >= 0, got {o.cpus} and {o.gpus}")
        if o.gpus > 0 and getattr(args, "device", "auto") == "cpu":
            raise UserError("--gpus-per-actor > 0 with --device cpu: the actors would hold GPUs they do not use")
        threads = getattr(args, "threads", None)
        return replace(o, threads=int(threads) if threads else max(1, int(o.cpus)))

    def start(self) -> Any:
        """:func:`init_ray` for these options (a local instance sized for the actors); returns ``ray``."""
        return init_ray(self.address, num_cpus=None if self.address else max(2, int(self.num_actors * self.cpus)))

    def run_indexed(self, payloads: list[str], actor: type, kwargs: dict) -> Iterator[tuple[int, dict]]:
        """Send each payload (a JSON string) as one Ray Data row to a pool of ``actor`` (built with ``kwargs``;
        its ``__call__`` takes ``{"index", "payload"}`` batches and returns ``{"index", "doc"}``, ``doc`` a JSON
        string); yield ``(index, parsed doc)`` as rows finish, the first answer per index only (a restarted
        actor's redone row is never counted twice)."""
        import logging
        import warnings
        from importlib import import_module

        if not payloads:
            return
        self.start()
        rdata = import_module("ray.data")  # deferred: ray.data (heavy; imported only on this path)

        logging.getLogger("ray.data").setLevel(logging.WARNING)
        ctx = rdata.DataContext.get_current()
        ctx.enable_progress_bars = False
        records = [{"index": k, "payload": p} for k, p in enumerate(payloads)]
        ds = rdata.from_items(records, override_num_blocks=len(records))
        with warnings.catch_warnings():
            # Ray 2.60 has no named parameter for max_restarts/max_task_retries yet and warns about passing them
            # as remote args; they are still honoured (tests/scale kill an actor mid-run)
            warnings.simplefilter("ignore", DeprecationWarning)
            res = ds.map_batches(
                actor, fn_constructor_kwargs=kwargs, batch_size=1, batch_format="numpy", num_cpus=self.cpus,
                num_gpus=self.gpus or None, compute=rdata.ActorPoolStrategy(size=self.num_actors),
                max_restarts=self.retries, max_task_retries=self.retries)
        seen: set[int] = set()
        for b in res.iter_batches(batch_size=None, batch_format="numpy"):
            for k, doc in zip(b["index"], b["doc"]):
                if int(k) not in seen:
                    seen.add(int(k))
                    yield int(k), json.loads(str(doc))
