"""Alignment Difficulty over embeddings stored in Parquet shards, on Ray or in one process.

The shards (``*.parquet``, read in sorted path order) hold one row per text-image pair: columns ``image_emb``
and ``text_emb`` (fixed-size or variable lists of floats, one length ``d``) and optionally ``file``,
``caption``, ``concept``, ``poisoned``, ``source_concept`` (carried into ``pairs.csv`` by the audit).
:func:`write_embedding_shards` writes them.

The work is split into tasks, each given only row ranges and the shard list (it reads its own rows):

* **cosines** (feature term): one task per shard, ``u_i . v_i`` after L2 normalisation; validates the rows.
* **exact structure term**: the upper triangle of the ``n x n`` matrix ``|u_i.u_j - v_i.v_j|`` is cut into
  ``task_rows x task_rows`` blocks ``(I, J >= I)``; one task per block reads rows ``I`` and ``J``, runs the
  single-process tile kernel :func:`latentguard.poison.alignment.structure_tile_sums` over ``block_size``
  tiles, and returns the float64 row sums of ``I`` and column sums of ``J``; the driver adds them into one
  float64 vector ``r`` (``D_stru = sum(r) / n^2``). Dot products run in ``dtype`` (float32 by default, float64
  on request); every sum is float64. Memory per task: ``4 * task_rows * d`` values for the two blocks of
  ``u`` and ``v`` plus one ``block_size^2`` tile (``task_rows=8192, d=512, block_size=2048``, float32: 80 MiB),
  whatever ``n``. The driver holds ``n`` float64 row sums and cosines.
* **sampled structure term** (stratified design): the driver draws every chunk's partners with the same
  generator, in the same order, as :func:`latentguard.poison.alignment.structure_sampled`, and one task per
  group of chunks evaluates them with :func:`~latentguard.poison.alignment.sampled_chunk_sums`; the driver adds
  the chunks' half sums in chunk order, so the estimate, its standard error and its interval are the same
  numbers as one process. The partners are random rows of all ``n``, so the normalised ``u`` and ``v`` go into
  Ray's object store once (``2 n d`` values; tasks on a node share them without copies).

Exact results equal the single-process ones to float tolerance (sums in another order); sampled ones are
bit-identical. ``engine="local"`` runs the same tasks in this process, without Ray.
"""

from __future__ import annotations

import glob as _glob
import math
import os
import resource
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from latentguard.core.errors import UserError
from latentguard.poison.alignment import (
    AlignmentResult,
    SampledStructure,
    default_num_samples,
    exact_result,
    normalize_pairs,
    pair_cosines,
    sampled_chunk_sums,
    sampled_result,
    scaled_similarity,
    stratified_plan,
    stratified_result,
    structure_sampled,
    structure_tile_sums,
    SIM_OFFSET,
    SIM_SCALE,
)
from latentguard.scale.runtime import cluster_summary, init_ray

EMBEDDING_COLUMNS = ("image_emb", "text_emb")
RECORD_COLUMNS = ("file", "caption", "concept", "poisoned", "source_concept")


# ----------------------------------------------------------------------------------------------------
# shards
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    """One Parquet file: its path, its first global row and its row count."""

    path: str
    offset: int
    rows: int


@dataclass(frozen=True)
class ShardSet:
    """The shards of one embedding set, in order, with the embedding width ``dim``."""

    shards: tuple[Shard, ...]
    dim: int

    @property
    def n(self) -> int:
        return sum(s.rows for s in self.shards)


def list_shards(spec: str | Sequence[str]) -> ShardSet:
    """The shards named by a folder, a glob, a file or a list of them (sorted by path, de-duplicated).

    Raises:
        UserError: nothing matches, a column is missing, or the embedding widths differ.
    """
    import pyarrow.parquet as pq  # deferred: pyarrow (the latentguard[scale] extra)

    specs = [spec] if isinstance(spec, str) else list(spec)
    paths: list[str] = []
    for s in specs:
        p = Path(s)
        if p.is_dir():
            found = sorted(str(q) for q in p.glob("*.parquet"))
        elif p.is_file():
            found = [str(p)]
        else:
            found = sorted(q for q in _glob.glob(s) if q.endswith(".parquet"))
        if not found:
            raise UserError(f"no Parquet shards found at {s!r}")
        paths.extend(found)
    paths = sorted(dict.fromkeys(paths))
    shards, offset, dim = [], 0, None
    for path in paths:
        f = pq.ParquetFile(path)
        names = set(f.schema_arrow.names)
        missing = [c for c in EMBEDDING_COLUMNS if c not in names]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)} (need image_emb and text_emb)")
        rows = f.metadata.num_rows
        if rows:
            d = _read_block(path, EMBEDDING_COLUMNS[0], 0, 1).shape[1]
            if dim is None:
                dim = d
            elif d != dim:
                raise UserError(f"{path}: embeddings have width {d}, earlier shards {dim}")
        shards.append(Shard(path, offset, rows))
        offset += rows
    if offset < 2:
        raise UserError(f"need at least 2 pairs in the shards, got {offset}")
    return ShardSet(tuple(shards), int(dim))


def _read_block(path: str, column: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of one embedding column of one shard, as a 2-D numpy array (row groups read lazily)."""
    import pyarrow.parquet as pq  # deferred: pyarrow

    f = pq.ParquetFile(path)
    md = f.metadata
    groups, first, pos = [], None, 0
    for g in range(md.num_row_groups):
        n = md.row_group(g).num_rows
        if pos + n > start and pos < stop:
            groups.append(g)
            first = pos if first is None else first
        pos += n
    if not groups:
        return np.zeros((0, 0), dtype=np.float32)
    col = f.read_row_groups(groups, columns=[column]).column(0).slice(start - first, stop - start).combine_chunks()
    flat = col.flatten().to_numpy(zero_copy_only=False)
    rows = stop - start
    if rows and flat.size % rows:
        raise UserError(f"{path}: column {column} has rows of different lengths")
    return flat.reshape(rows, -1) if rows else flat.reshape(0, 0)


def read_rows(shards: ShardSet, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Global rows ``start:stop`` of both embedding columns (raw, not normalised)."""
    us, vs = [], []
    for s in shards.shards:
        a, b = max(start, s.offset), min(stop, s.offset + s.rows)
        if a < b:
            us.append(_read_block(s.path, "image_emb", a - s.offset, b - s.offset))
            vs.append(_read_block(s.path, "text_emb", a - s.offset, b - s.offset))
    return np.concatenate(us), np.concatenate(vs)


def read_records(shards: ShardSet) -> dict[str, list]:
    """The optional record columns present in every shard (``file``, ``caption``, ``concept``, ...)."""
    import pyarrow.parquet as pq  # deferred: pyarrow

    cols = set(RECORD_COLUMNS)
    for s in shards.shards:
        cols &= set(pq.ParquetFile(s.path).schema_arrow.names)
    out: dict[str, list] = {c: [] for c in RECORD_COLUMNS if c in cols}
    for s in shards.shards:
        if out:
            t = pq.read_table(s.path, columns=list(out))
            for c in out:
                out[c].extend(t.column(c).to_pylist())
    return out


def write_embedding_shards(folder: str | Path, image_emb: np.ndarray, text_emb: np.ndarray, *,
                           rows_per_shard: int = 100_000, row_group_rows: int = 8192,
                           columns: dict[str, Sequence] | None = None) -> list[Path]:
    """Write ``image_emb``/``text_emb`` ``[n, d]`` (and optional per-pair ``columns``) as Parquet shards
    ``shard-00000.parquet``, ... (fixed-size float lists; the dtype is kept). Returns the paths."""
    import pyarrow as pa  # deferred: pyarrow
    import pyarrow.parquet as pq

    u, v = np.asarray(image_emb), np.asarray(text_emb)
    if u.shape != v.shape or u.ndim != 2:
        raise ValueError(f"image_emb and text_emb must be [n, d] of one shape, got {u.shape} and {v.shape}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k, i0 in enumerate(range(0, len(u), rows_per_shard)):
        i1 = min(i0 + rows_per_shard, len(u))
        data = {name: pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(x[i0:i1]).ravel()), u.shape[1])
                for name, x in (("image_emb", u), ("text_emb", v))}
        for name, vals in (columns or {}).items():
            data[name] = pa.array(list(vals[i0:i1]))
        path = folder / f"shard-{k:05d}.parquet"
        pq.write_table(pa.table(data), path, row_group_size=row_group_rows)
        out.append(path)
    return out


# ----------------------------------------------------------------------------------------------------
# tasks (plain functions: run in this process or wrapped as Ray tasks)
# ----------------------------------------------------------------------------------------------------
def _normalise(x: np.ndarray, dtype: torch.dtype, name: str, offset: int) -> torch.Tensor:
    """L2-normalise rows as :func:`latentguard.poison.alignment.normalize_pairs` does (row by row)."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    work = torch.float64 if (dtype == torch.float64 or t.dtype == torch.float64) else torch.float32
    t = t.to(work)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} has non-finite values (rows {offset}..{offset + len(t) - 1})")
    norms = t.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        raise ValueError(f"{name} has an all-zero row (index {offset + int((norms[:, 0] == 0).nonzero()[0])}): cannot normalise")
    return (t / norms).to(dtype)


def _load(shards: ShardSet, start: int, stop: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    u, v = read_rows(shards, start, stop)
    return _normalise(u, dtype, "image_emb", start), _normalise(v, dtype, "text_emb", start)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _rss_mib() -> float | None:
    """Current resident memory (Linux ``/proc``; None elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def cosine_task(shards: ShardSet, shard_index: int, dtype: torch.dtype) -> np.ndarray:
    """``u_i . v_i`` (float64) for the rows of one shard; validates them."""
    s = shards.shards[shard_index]
    if s.rows == 0:
        return np.zeros(0)
    u, v = _load(shards, s.offset, s.offset + s.rows, dtype)
    return pair_cosines(u, v)


def exact_block_task(shards: ShardSet, i0: int, i1: int, j0: int, j1: int, block_size: int,
                     dtype: torch.dtype, threads: int | None = None) -> dict:
    """Row sums of rows ``i0:i1`` and column sums of rows ``j0:j1`` over the upper-triangle block ``(I, J)``.

    A diagonal block (``i0 == j0``) is the single-process loop over its own tiles on or above the diagonal.
    Returns ``{"rows", "cols" (None on the diagonal), "seconds", "rss_start_mib", "peak_rss_mib" (the worker
    process's high-water mark), "block_bytes" (the blocks and tile buffers this task allocated)}``.
    """
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    rss0 = _rss_mib()
    ui, vi = _load(shards, i0, i1, dtype)
    diag = i0 == j0
    uj, vj = (ui, vi) if diag else _load(shards, j0, j1, dtype)
    rows = torch.zeros(i1 - i0, dtype=torch.float64)
    cols = None if diag else torch.zeros(j1 - j0, dtype=torch.float64)
    bufs: dict = {}
    a_starts = list(range(0, i1 - i0, block_size))
    b_starts = list(range(0, j1 - j0, block_size))
    for ai, a0 in enumerate(a_starts):
        a1 = min(a0 + block_size, i1 - i0)
        for b0 in (b_starts[ai:] if diag else b_starts):
            b1 = min(b0 + block_size, j1 - j0)
            on_diag = diag and a0 == b0
            r, c = structure_tile_sums(ui[a0:a1], vi[a0:a1], uj[b0:b1], vj[b0:b1], diagonal=on_diag, bufs=bufs)
            rows[a0:a1] += r
            if on_diag:
                continue
            if diag:
                rows[b0:b1] += c
            else:
                cols[b0:b1] += c
    item = ui.element_size()
    block_bytes = item * ((ui.numel() + vi.numel()) * (1 if diag else 2)) + sum(b.numel() * item for b in bufs.values())
    return {"rows": rows.numpy(), "cols": None if cols is None else cols.numpy(),
            "seconds": time.perf_counter() - t0, "rss_start_mib": rss0, "peak_rss_mib": _peak_rss_mib(),
            "block_bytes": int(block_bytes)}


def sampled_chunks_task(u: np.ndarray, v: np.ndarray, chunks: Sequence[tuple[int, int]],
                        js: Sequence[tuple[np.ndarray, np.ndarray]], threads: int | None = None) -> list:
    """:func:`sampled_chunk_sums` for several chunks ``(i0, i1)`` with their pre-drawn partners."""
    if threads:
        torch.set_num_threads(threads)
    with warnings.catch_warnings():  # arrays from Ray's object store are read-only; they are never written
        warnings.simplefilter("ignore", UserWarning)
        ut, vt = torch.from_numpy(u), torch.from_numpy(v)
    out = []
    for (i0, i1), (j0, j1) in zip(chunks, js):
        m, s0, s1 = sampled_chunk_sums(ut, vt, i0, i1, (torch.from_numpy(j0), torch.from_numpy(j1)))
        out.append((m.numpy(), s0, s1))
    return out


# ----------------------------------------------------------------------------------------------------
# the driver
# ----------------------------------------------------------------------------------------------------
@dataclass
class ShardedRun:
    """What a sharded AD run did, besides its result: tasks, their times and memory."""

    engine: str
    n_tasks: int = 0
    task_seconds: list[float] = field(default_factory=list)
    task_peak_rss_mib: list[float] = field(default_factory=list)
    task_block_bytes: list[int] = field(default_factory=list)
    seconds: float = 0.0
    cluster: dict | None = None

    def summary(self) -> dict:
        ts = self.task_seconds
        return {"engine": self.engine, "n_tasks": self.n_tasks, "seconds": round(self.seconds, 3),
                "task_seconds_mean": float(np.mean(ts)) if ts else None,
                "task_seconds_max": float(np.max(ts)) if ts else None,
                "task_peak_rss_mib_max": float(np.max(self.task_peak_rss_mib)) if self.task_peak_rss_mib else None,
                "task_block_mib_max": float(np.max(self.task_block_bytes)) / 2**20 if self.task_block_bytes else None,
                "cluster": self.cluster}


class _Runner:
    """Runs task functions locally or as Ray tasks, a bounded number in flight, results in submission order."""

    def __init__(self, engine: str, ray: Any = None, max_in_flight: int = 8):
        self.engine, self.ray, self.max_in_flight = engine, ray, max_in_flight
        self._remote: dict = {}

    def map(self, fn, arg_list: list[tuple], *, progress: str | None = None, shared: dict | None = None) -> list:
        bar = None
        if progress:
            from tqdm.auto import tqdm  # deferred: tqdm's auto backend probes for notebooks

            bar = tqdm(total=len(arg_list), desc=progress, unit="task", leave=False)
        results: list = [None] * len(arg_list)
        if self.engine == "local":
            for k, args in enumerate(arg_list):
                results[k] = fn(*args, **(shared or {}))
                if bar is not None:
                    bar.update(1)
        else:
            ray = self.ray
            remote = self._remote.setdefault(fn, ray.remote(num_cpus=1, max_retries=3)(fn))
            pending: dict = {}
            it = iter(enumerate(arg_list))
            exhausted = False
            while pending or not exhausted:
                while not exhausted and len(pending) < self.max_in_flight:
                    try:
                        k, args = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    pending[remote.remote(*args, **(shared or {}))] = k
                if not pending:
                    break
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    results[pending.pop(ref)] = ray.get(ref)
                    if bar is not None:
                        bar.update(1)
        if bar is not None:
            bar.close()
        return results


def alignment_difficulty_sharded(
    shards: ShardSet | str | Sequence[str],
    alpha: float = 0.8,
    *,
    method: str = "exact",
    block_size: int = 2048,
    task_rows: int = 8192,
    num_samples: int | None = None,
    confidence: float = 0.95,
    seed: int | None = 0,
    dtype: torch.dtype = torch.float32,
    sim_offset: float = SIM_OFFSET,
    sim_scale: float = SIM_SCALE,
    engine: str = "ray",
    address: str | None = None,
    num_cpus: int | None = None,
    threads_per_task: int | None = 1,
    progress: bool = False,
) -> tuple[AlignmentResult, ShardedRun]:
    """AD of the pairs in Parquet shards (the module docstring says how the work is split).

    Arguments as :func:`latentguard.poison.alignment.alignment_difficulty`, plus:

    Args:
        shards: a :class:`ShardSet` or what :func:`list_shards` takes.
        task_rows: rows per block of the exact method's task grid (memory per task is set by it, not by ``n``).
        engine: ``"ray"`` (tasks on the Ray cluster) or ``"local"`` (the same tasks in this process).
        address: Ray cluster address (None: a local instance with ``num_cpus``).
        threads_per_task: torch threads inside each task (one task per CPU).

    Returns:
        ``(AlignmentResult, ShardedRun)``.
    """
    if engine not in ("ray", "local"):
        raise ValueError(f"engine must be ray|local, got {engine!r}")
    if method not in ("exact", "sampled", "auto"):
        raise ValueError(f"method must be exact|sampled|auto, got {method!r}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if block_size < 1 or task_rows < 1:
        raise ValueError(f"block_size and task_rows must be >= 1, got {block_size} and {task_rows}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    ss = shards if isinstance(shards, ShardSet) else list_shards(shards)
    n = ss.n
    if method == "auto":
        method = "exact" if n <= 20_000 else "sampled"
    t0 = time.perf_counter()
    run = ShardedRun(engine)
    ray = None
    if engine == "ray":
        ray = init_ray(address, num_cpus=num_cpus)
        run.cluster = cluster_summary(ray)
    slots = int(run.cluster["cpus"]) if run.cluster else 1
    runner = _Runner(engine, ray, max_in_flight=max(2, 2 * slots))
    shared_ss = ray.put(ss) if ray is not None else ss
    cos_parts = runner.map(cosine_task, [(shared_ss, k, dtype) for k in range(len(ss.shards))],
                           progress="AD cosines" if progress else None)
    run.n_tasks += len(cos_parts)
    cos = np.concatenate(cos_parts)
    sim = scaled_similarity(cos, sim_offset, sim_scale)
    if method == "exact":
        starts = list(range(0, n, task_rows))
        blocks = [(a, min(a + task_rows, n)) for a in starts]
        args = [(shared_ss, i0, i1, j0, j1, block_size, dtype, threads_per_task)
                for bi, (i0, i1) in enumerate(blocks) for (j0, j1) in blocks[bi:]]
        rows = np.zeros(n, dtype=np.float64)
        for (_, i0, i1, j0, j1, *_), r in zip(args, runner.map(exact_block_task, args,
                                                               progress="AD structure" if progress else None)):
            rows[i0:i1] += r["rows"]
            if r["cols"] is not None:
                rows[j0:j1] += r["cols"]
            run.task_seconds.append(r["seconds"])
            run.task_peak_rss_mib.append(r["peak_rss_mib"])
            run.task_block_bytes.append(r["block_bytes"])
        run.n_tasks += len(args)
        result = exact_result(cos, sim, torch.from_numpy(rows), float(alpha), confidence)
    else:
        result = _sampled(ss, cos, sim, runner, ray, run, alpha=float(alpha), num_samples=num_samples,
                          confidence=confidence, seed=seed, dtype=dtype, threads=threads_per_task, progress=progress)
    run.seconds = time.perf_counter() - t0
    return result, run


def _sampled(ss: ShardSet, cos, sim, runner: _Runner, ray, run: ShardedRun, *, alpha, num_samples, confidence, seed,
             dtype, threads, progress) -> AlignmentResult:
    n = ss.n
    u_raw, v_raw = read_rows(ss, 0, n)
    u, v = normalize_pairs(u_raw, v_raw, dtype=dtype)  # exactly the single-process normalisation
    del u_raw, v_raw
    if num_samples is None:
        num_samples = default_num_samples(n)
    if num_samples < 2:
        raise ValueError(f"num_samples must be >= 2, got {num_samples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    if num_samples < 2 * n:  # i.i.d. pairs: no per-row structure to split; one process (cheap: m dot products)
        s = structure_sampled(u, v, num_samples=int(num_samples), confidence=confidence, generator=gen)
        return sampled_result(cos, sim, s, alpha, confidence)
    r_half, rows_per_chunk = stratified_plan(n, int(num_samples))
    chunks, js = [], []
    for i0 in range(0, n, rows_per_chunk):  # the single-process sampler's draws, in its order
        chunks.append((i0, min(i0 + rows_per_chunk, n)))
        js.append(tuple(torch.randint(0, n, (r_half,), generator=gen, device="cpu").numpy() for _ in range(2)))
    per_task = max(1, math.ceil(len(chunks) / (8 * max(1, int(run.cluster["cpus"]) if run.cluster else 1))))
    groups = [(chunks[k:k + per_task], js[k:k + per_task]) for k in range(0, len(chunks), per_task)]
    un, vn = u.numpy(), v.numpy()
    shared = {"u": ray.put(un), "v": ray.put(vn)} if ray is not None else {"u": un, "v": vn}
    outs = runner.map(_sampled_group, [(g[0], g[1], threads) for g in groups], shared=shared,
                      progress="AD sampled" if progress else None)
    run.n_tasks += len(groups)
    row_mean = np.empty(n, dtype=np.float64)
    chunk_sums = []
    for (cs, _), out in zip(groups, outs):
        for (i0, i1), (m, s0, s1) in zip(cs, out):
            row_mean[i0:i1] = m
            chunk_sums.append((s0, s1))
    s: SampledStructure = stratified_result(n, r_half, chunk_sums, torch.from_numpy(row_mean), confidence)
    return sampled_result(cos, sim, s, alpha, confidence)


def _sampled_group(chunks, js, threads, *, u, v):
    return sampled_chunks_task(u, v, chunks, js, threads)
