"""The ``--engine`` options of ``latentguard protect`` and ``latentguard audit alignment``.

Those commands are registered by their capabilities (``protect/cli.py``, ``poison/cli.py``), which sit below
this layer and cannot import Ray code; the ``latentguard`` entry point calls :func:`extend` after registering
them, which adds the options and wraps their command functions:

* ``protect ... --engine ray [--address ADDR] [--num-actors N] [--batch-size B] [--cpus-per-actor C]
  [--gpus-per-actor G] [--max-restarts R]``: the command runs as before (same checks, outputs, ``--resume``),
  with :func:`latentguard.scale.protect.ray_engine` in place of the local loop.
* ``survival ... --engine ray [...]`` (and ``protect ... --survival --engine ray``): the survival batches scored by
  :mod:`latentguard.scale.survival`'s actors; the same files as the local run.
* ``bench CONFIG.toml --engine ray [...]``: the runner's units (a protection cell on a batch) run by
  :mod:`latentguard.scale.bench`'s actors; the driver writes results.jsonl in the local order.
* ``audit alignment SHARDS`` (a folder, glob or file of Parquet embedding shards) ``[--engine local|ray]``:
  AD over the shards (:mod:`latentguard.scale.ad`), written like the dataset audit.

Building the parser imports nothing heavy: no torch, numpy, pyarrow or ray.
"""

from __future__ import annotations

import argparse
import glob as _glob
import json
import shlex
import sys
import time
from importlib import import_module
from pathlib import Path

from latentguard.core.cli_args import get_audit_subparsers
from latentguard.core.errors import UserError

ENGINES = ("local", "ray")


def _add_ray_connection(g) -> None:
    g.add_argument("--address", default=None, metavar="ADDR",
                   help="Ray cluster to join (auto, HOST:6379 or ray://HOST:10001; default: start a local instance)")


def is_shard_spec(spec: str) -> bool:
    """Whether ``spec`` names Parquet embedding shards: a ``.parquet`` file or glob, or a folder holding
    ``*.parquet`` and no captions file."""
    if spec.endswith(".parquet"):
        return True
    p = Path(spec)
    if p.is_dir():
        return not any((p / n).exists() for n in ("captions.csv", "captions.jsonl")) and any(p.glob("*.parquet"))
    return any(ch in spec for ch in "*?[") and any(q.endswith(".parquet") for q in _glob.glob(spec))


# ----------------------------------------------------------------------------------------------------
# protect --engine ray
# ----------------------------------------------------------------------------------------------------
def _add_actor_options(p: argparse.ArgumentParser, what: str, batch: bool = True) -> None:
    g = p.add_argument_group("engine (latentguard[scale])")
    g.add_argument("--engine", choices=ENGINES, default="local",
                   help=f"local: this process (default); ray: Ray Data actors {what}, on this machine or --address")
    _add_ray_connection(g)
    g.add_argument("--num-actors", type=int, default=1, help="ray: actors, each holding the model (default 1)")
    if batch:
        g.add_argument("--batch-size", type=int, default=8, help="ray: inputs per batch sent to an actor (default 8)")
    g.add_argument("--cpus-per-actor", type=float, default=1.0, help="ray: CPUs reserved per actor (default 1)")
    g.add_argument("--gpus-per-actor", type=float, default=0.0, help="ray: GPUs per actor (default 0; 1 on GPU nodes)")
    g.add_argument("--max-restarts", type=int, default=3,
                   help="ray: restarts of a dead actor and retries of its batch (default 3)")


def _extend_protect(p: argparse.ArgumentParser) -> None:
    _add_actor_options(p, "protect the images (and score --survival)")
    local = p.get_default("func")

    def run(args: argparse.Namespace) -> int:
        if args.engine == "ray":
            from latentguard.scale.protect import ray_engine  # deferred: torch and ray (scale.protect imports them)

            args.protect_engine = ray_engine
        return local(args)

    p.set_defaults(func=run)


# ----------------------------------------------------------------------------------------------------
# survival --engine ray
# ----------------------------------------------------------------------------------------------------
def _extend_with_engine(p: argparse.ArgumentParser, what: str, module: str, factory: str, attr: str) -> None:
    """``--engine ray`` for a command whose function takes an engine from ``args.<attr>``: with ray, the engine
    built by ``latentguard.scale.<module>.<factory>(args)`` (options checked before anything starts)."""
    _add_actor_options(p, what, batch=False)
    local = p.get_default("func")

    def run(args: argparse.Namespace) -> int:
        if args.engine == "ray":
            # deferred: torch and ray (the scale engines import them)
            setattr(args, attr, getattr(import_module(f"latentguard.scale.{module}"), factory)(args))
        return local(args)

    p.set_defaults(func=run)


# ----------------------------------------------------------------------------------------------------
# audit alignment SHARDS
# ----------------------------------------------------------------------------------------------------
def _cmd_audit_shards(args: argparse.Namespace) -> int:
    import torch  # deferred: torch

    from latentguard.io import write_manifest
    from latentguard.poison.audit import write_audit
    from latentguard.poison.dataset import CaptionDataset, PairRecord
    from latentguard.poison.embed import SimilarityCalibration, similarity_calibration
    from latentguard.scale.ad import alignment_difficulty_sharded, list_shards, read_records

    dtypes = {"float32": torch.float32, "fp32": torch.float32, "float64": torch.float64, "fp64": torch.float64}
    if args.dtype not in dtypes:
        raise UserError(f"--dtype for AD over shards: float32 or float64, got {args.dtype!r}")
    t0 = time.time()
    ss = list_shards(args.dataset)
    cal = similarity_calibration(args.embedder)
    if args.sim_offset is not None or args.sim_scale is not None:
        cal = SimilarityCalibration(cal.offset if args.sim_offset is None else args.sim_offset,
                                    cal.scale if args.sim_scale is None else args.sim_scale,
                                    f"command line (embedder's: {cal.source})")
    res, run = alignment_difficulty_sharded(
        ss, args.alpha, method=args.method, block_size=args.block_size, task_rows=args.task_rows,
        num_samples=args.num_samples, confidence=args.confidence, seed=args.seed, dtype=dtypes[args.dtype],
        sim_offset=cal.offset, sim_scale=cal.scale, engine=args.engine, address=args.address,
        num_cpus=args.num_cpus, progress=True)
    cols = read_records(ss)
    records = []
    k = 0
    for shard in ss.shards:
        for row in range(shard.rows):
            extra = {c: str(cols[c][k]) for c in ("poisoned", "source_concept") if c in cols and cols[c][k] is not None}
            name = str(cols["file"][k]) if "file" in cols and cols["file"][k] else f"{Path(shard.path).name}#{row}"
            caption = str(cols["caption"][k]) if "caption" in cols and cols["caption"][k] is not None else ""
            concept = str(cols["concept"][k]) if "concept" in cols and cols["concept"][k] is not None else None
            try:
                records.append(PairRecord(name, caption, concept, extra))
            except ValueError:  # an absolute path or URL in `file`: keep it as an extra, name the row
                records.append(PairRecord(f"{Path(shard.path).name}#{row}", caption, concept, {**extra, "source": name}))
            k += 1
    ds = CaptionDataset(Path(args.dataset), tuple(records), None)
    out = Path(args.out)
    summary = write_audit(out, res, ds, top=args.top, extra_summary={
        "embedder": args.embedder, "similarity_calibration": cal.to_dict(), "dataset": args.dataset,
        "shards": len(ss.shards), "dim": ss.dim, "dtype": args.dtype, "scale": run.summary(),
        "seconds_total": round(time.time() - t0, 2)})
    cfg = {k: v for k, v in vars(args).items() if k != "func"}
    write_manifest(out, "latentguard " + " ".join(shlex.quote(a) for a in sys.argv[1:]), cfg, args.seed)
    line = {k: summary[k] for k in ("ad", "feature", "structure", "method", "n")}
    line["engine"] = args.engine
    print(json.dumps(line))
    return 0


def _extend_audit_alignment(a: argparse.ArgumentParser) -> None:
    a.description = (a.description or "") + (" DATASET may also be Parquet embedding shards (a folder, glob or "
                                             "file; columns image_emb, text_emb): AD without embedding, on Ray "
                                             "with --engine ray (docs/scale.md).")
    g = a.add_argument_group("embedding shards and engine (latentguard[scale])")
    g.add_argument("--engine", choices=ENGINES, default="local",
                   help="with Parquet shards as DATASET: local (this process) or ray (one task per block)")
    _add_ray_connection(g)
    g.add_argument("--num-cpus", type=int, default=None, help="ray, local instance: CPUs (default: all)")
    g.add_argument("--task-rows", type=int, default=8192,
                   help="exact over shards: rows per block of the task grid (sets each task's memory)")
    dataset_audit = a.get_default("func")

    def run(args: argparse.Namespace) -> int:
        if is_shard_spec(args.dataset):
            return _cmd_audit_shards(args)
        if args.engine == "ray":
            raise UserError("--engine ray audits embeddings in Parquet shards (columns image_emb, text_emb); "
                            f"{args.dataset!r} is a caption dataset: write its embeddings with "
                            "latentguard.scale.ad.write_embedding_shards, or drop --engine ray")
        return dataset_audit(args)

    a.set_defaults(func=run)


def extend(subparsers: argparse._SubParsersAction) -> None:
    """Add the engine options to ``protect``, ``survival``, ``bench`` and ``audit alignment`` (registered before this is
    called)."""
    if "protect" in subparsers.choices:
        _extend_protect(subparsers.choices["protect"])
    if "survival" in subparsers.choices:
        _extend_with_engine(subparsers.choices["survival"], "score the batches", "survival", "ray_survival_engine",
                            "survival_engine")
    if "bench" in subparsers.choices:
        _extend_with_engine(subparsers.choices["bench"], "run the units (a protection cell on a batch)", "bench",
                            "ray_bench_engine", "bench_engine")
    audit = get_audit_subparsers(subparsers)
    if "alignment" in audit.choices:
        _extend_audit_alignment(audit.choices["alignment"])
