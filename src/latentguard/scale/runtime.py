"""Connecting to Ray: a local instance or a running cluster (``--address``), with a clear error without Ray."""

from __future__ import annotations

import os
from typing import Any

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
