"""The benchmark runner: ``latentguard bench CONFIG.toml --out DIR [--resume]``.

A config (:mod:`latentguard.evaluate.config`) declares a matrix

    protection methods x budgets x surrogate models -> target models x edits x purifications x images

and the runner streams one row per cell to ``DIR/results.jsonl``: the protected image of one photo
(made with the surrogate), purified, edited by the target model; its metrics
(:mod:`latentguard.evaluate.scoring`) against the edit of the *clean* photo (same seed, same noise) and
against the clean input, plus the protected image's own distance to the input. Then
:mod:`latentguard.evaluate.report` writes ``summary.csv``, ``table.md``, plots, image grids and ``report.html``.

Every protection, ``none`` and ``random-noise`` included, comes from
``latentguard.protect.get(name, vae=surrogate, eps=, steps=, **params)``. Mistakes in the config fail when it
is read. What can still fail only while the matrix runs is recorded per cell (``status: "error"``, with
``error_type`` and ``error``: the exception's type, message and where it was raised) and the run goes on:

* loading a target model or a surrogate (a spec that resolves to no loadable model);
* running a protection (e.g. a non-finite gradient), a purification or an edit (e.g. out of memory).

An edit or purification a model cannot run is recorded once as ``status: "unavailable"`` with the reason.
``--resume`` skips cells whose ``status`` is ``ok``; protected images and clean edits are cached as PNG
under ``DIR/images``.
"""

from __future__ import annotations

import re
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from latentguard.ops.grid import quantize_8bit
from latentguard.ops.runtime import resolve_device, seed_everything
from latentguard.samples import sample_paths
from latentguard.ops import metrics as _metrics  # looked up at call time (tests swap the standard metrics)
from latentguard.evaluate.config import BenchConfig
from latentguard.evaluate.edits import (PCA_PROMPTS, EditUnavailable, ModelCache, Unavailable, build_edits, caption_for,
                                        image_seed)
from latentguard.ops.metrics import REGISTRY as METRICS
from latentguard.ops.metrics import STANDARD_METRICS
from latentguard.evaluate.purify import _SWEEP, PURIFY_KINDS, build_purifications
from latentguard.evaluate.report import build_report
from latentguard.evaluate.scoring import Scorers, pair_metrics, score_cell
from latentguard.io import JsonlWriter, collect_inputs, load_image, prepare_out_dir, save_image, write_manifest
from latentguard.models import load_embedder
from latentguard.protect import get as get_protection
from latentguard.protect.engine import Protection


def _run_protection(fn: Callable, images: torch.Tensor, generator: torch.Generator | None,
                    on_step: Callable | None = None) -> torch.Tensor:
    if on_step is not None and isinstance(fn, Protection) and type(fn).__call__ is Protection.__call__:
        out = fn.protect(images, generator=generator, callback=on_step)  # the same images as fn(images)
    else:
        out = fn(images, generator=generator)
    if isinstance(out, tuple):  # (protected, record)
        out = out[0]
    if hasattr(out, "images") and not isinstance(out, torch.Tensor):
        out = out.images
    if not isinstance(out, torch.Tensor) or out.shape != images.shape:
        raise ValueError(f"protection returned {type(out).__name__} {getattr(out, 'shape', '')}, expected {tuple(images.shape)}")
    return out.detach()


# -------------------------------------------------------------------------------------------- images
@dataclass(frozen=True)
class BenchImage:
    id: str
    path: str
    caption: str
    image: torch.Tensor = field(repr=False, compare=False)


def _square(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top:top + size, left:left + size]


def load_bench_images(cfg: BenchConfig) -> list[BenchImage]:
    """The config's images: resized (shorter side) and centre-cropped to ``image_size`` (or native size)."""
    if cfg.images == "samples":
        paths = sample_paths()
    else:
        paths = collect_inputs(list(cfg.images))
    if not paths:
        raise ValueError(f"no images found for run.images = {cfg.images!r}")
    paths = paths[: cfg.max_images] if cfg.max_images else paths
    out, seen = [], set()
    for p in paths:
        x = load_image(p)
        if cfg.image_size:
            x = _square(x, cfg.image_size)
        x = _quantize(x)  # what the saved input PNG holds: "no protection" is then exactly the input
        ident = Path(p).stem
        k = 2
        while ident in seen:
            ident = f"{Path(p).stem}-{k}"
            k += 1
        seen.add(ident)
        out.append(BenchImage(ident, str(p), caption_for(p), x[0].contiguous()))
    return out


def _batches(images: list[BenchImage], batch_size: int) -> list[list[BenchImage]]:
    """Batches of one size, at most ``batch_size`` each, in input order."""
    by_size: dict[tuple, list[BenchImage]] = {}
    for im in images:
        by_size.setdefault(tuple(im.image.shape), []).append(im)
    out = []
    for group in by_size.values():
        out.extend(group[i:i + batch_size] for i in range(0, len(group), batch_size))
    return out


# ------------------------------------------------------------------------------------------ the run
def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+_\-]+", "-", str(s)) or "x"


# What an 8-bit PNG holds (every image is saved, and reused on --resume, as PNG).
_quantize = quantize_8bit


@dataclass
class _Ctx:
    cfg: BenchConfig
    out: Path
    models: ModelCache
    scorers: Scorers
    writer: Any
    done: set
    std_status: dict
    n_ok: int = 0
    n_err: int = 0
    n_skip: int = 0
    n_unavailable: int = 0


def cell_key(method: str, eps_label: str, surrogate: str, target: str, edit: str, purif: str, image: str) -> str:
    return "|".join((method, eps_label, surrogate, target, edit, purif, image))


def purification_kind(name: str) -> str:
    """``jpeg-q50`` -> ``jpeg``, ``noisy-upscale-0.05`` -> ``noisy-upscale``, ``none`` -> ``none``."""
    for k in sorted(PURIFY_KINDS, key=len, reverse=True):
        if name == k or name.startswith(k + "-"):
            return k
    return name


def _text_for(edit: Any, caption: str) -> str:
    p = getattr(edit, "prompt", None)
    if not p:
        return caption
    return p.replace("{caption}", caption)


def check_metrics(cfg: BenchConfig) -> dict:
    """The standard metrics' status; a metric of ``cfg`` that is unavailable here fails at once, naming its
    labelled stand-in (in the driver, whichever engine runs the units)."""
    std = _metrics.standard_metric_status()
    for m in cfg.metrics:
        if m in STANDARD_METRICS and not std[m]["available"]:
            raise ValueError(f"metric {m!r} is unavailable here: {std[m]['reason']}; "
                             f"use its labelled stand-in {std[m]['stand_in']!r}")
    return std


def build_scorers(cfg: BenchConfig, device: Any) -> tuple[Scorers, dict]:
    """The scorers ``cfg``'s metrics need (embedder, standard metrics) and the standard metrics' status."""
    std = check_metrics(cfg)
    standard = None
    if any(m in STANDARD_METRICS for m in cfg.metrics):
        standard = _metrics.StandardMetrics(device)
    embedder = None
    if any(METRICS[m].stands_in_for for m in cfg.metrics):
        embedder = load_embedder(cfg.embedder, device=device)
    return Scorers(embedder, standard), std


@dataclass(frozen=True)
class BenchUnit:
    """One unit of work: a protection cell (method, budget, surrogate) on one batch of images (its index in
    :func:`_batches` of the config's images), through every target, edit and purification."""

    method: str
    eps: float
    eps_label: str
    surrogate: str
    batch: int

    def cells(self, cfg: BenchConfig, batch_len: int) -> int:
        return len(cfg.targets) * cells_per_image(cfg) * batch_len


def bench_units(cfg: BenchConfig, images: list[BenchImage]) -> list[BenchUnit]:
    """The run's units in the local loop's order: protection cells, then batches."""
    prot_cells = [(m, e, s) for m in cfg.methods for e in (cfg.budgets if m != "none" else [(0.0, "0")])
                  for s in cfg.surrogates]
    nb = len(_batches(images, cfg.batch_size))
    return [BenchUnit(m, float(eps), lab, s, b) for m, (eps, lab), s in prot_cells for b in range(nb)]


class RowBuffer:
    """A writer stand-in for the actors: keeps the rows a unit writes, for the driver to write."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def write(self, row: dict) -> None:
        self.rows.append(row)


class UnitRunner:
    """Runs :class:`BenchUnit` s with one model cache and scorers (the one per-unit function, called by the
    local loop and by the Ray actors of :mod:`latentguard.scale.bench`); keeps each protection it builds."""

    def __init__(self, ctx: _Ctx, images: list[BenchImage]) -> None:
        self.ctx = ctx
        self.batches = _batches(images, ctx.cfg.batch_size)
        self.protections: dict[tuple, list] = {}

    @classmethod
    def for_config(cls, cfg: BenchConfig, out: str | Path, writer: Any, done: set | Sequence[str] = (),
                   images: list[BenchImage] | None = None) -> "UnitRunner":
        """A runner for ``cfg`` with its own models and scorers, writing rows to ``writer`` (the results file,
        or a :class:`RowBuffer` in an actor) and skipping the cells in ``done``."""
        device = resolve_device(cfg.device)
        scorers, std = build_scorers(cfg, device)
        ctx = _Ctx(cfg, Path(out), ModelCache(device, cfg.dtype), scorers, writer, set(done), std)
        return cls(ctx, load_bench_images(cfg) if images is None else images)

    def run(self, unit: BenchUnit, bar: Any) -> dict[str, int]:
        """Run ``unit`` (rows go to the context's writer); returns the counts it added."""
        c = self.ctx
        before = (c.n_ok, c.n_err, c.n_skip, c.n_unavailable)
        state = self.protections.setdefault((unit.method, unit.eps_label, unit.surrogate), [None, None])
        _run_batch(c, self.batches[unit.batch], unit.method, unit.eps, unit.eps_label, unit.surrogate, bar, state)
        after = (c.n_ok, c.n_err, c.n_skip, c.n_unavailable)
        return dict(zip(("ok", "error", "skipped", "unavailable"), (a - b for a, b in zip(after, before))))


#: An engine runs the units somewhere and yields ``(unit index, rows, counts)`` as each finishes, in any order;
#: :func:`run_bench` writes the rows in the units' order. The local engine is the in-process loop.
BenchEngine = Callable[..., Any]


def run_bench(cfg: BenchConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
              command: str = "latentguard bench", overwrite: bool = False, engine: BenchEngine | None = None) -> dict:
    """Run the matrix of ``cfg`` into ``out_dir``; then write the report files. Returns counts.

    A folder that holds ``results.jsonl`` is refused unless ``resume`` (continue it) or ``overwrite`` (start
    again: the results and the runner's image cache ``images/`` are dropped). ``engine``: where the units run
    (default: this process; ``latentguard.scale.bench.ray_bench_engine`` runs them on Ray actors, which write
    the image cache into ``out_dir`` too, so it must be a folder every node sees); the rows are the same but for
    the timing fields.
    """
    fresh_start = overwrite and (Path(out_dir) / "results.jsonl").exists()
    out = prepare_out_dir(out_dir, resume=resume, overwrite=overwrite)
    if fresh_start and (out / "images").is_dir():
        shutil.rmtree(out / "images")  # the cached protected images and edits of the earlier run
    seed_everything(cfg.seed)
    images = load_bench_images(cfg)
    std = check_metrics(cfg)
    writer = JsonlWriter(out / "results.jsonl", resume=resume)
    done = writer.done_keys() if resume else set()
    # the local runner loads its models and scorers before run.json is written, as a failing load should
    runner = UnitRunner.for_config(cfg, out, writer, done, images) if engine is None else None
    write_manifest(out, command, cfg.to_dict(), cfg.seed, extra={
        "standard_metrics": std, "engine": getattr(engine, "engine_name", "custom") if engine else "local",
        "images": [{"id": im.id, "path": im.path, "caption": im.caption} for im in images],
    })
    units = bench_units(cfg, images)
    batch_lens = [len(b) for b in _batches(images, cfg.batch_size)]
    # The bar counts what the summary line counts: cells, one per image x edit x purification of every
    # (method, budget, surrogate, target); it moves a batch of cells at a time.
    total = sum(u.cells(cfg, batch_lens[u.batch]) for u in units)
    bar = tqdm(total=total, desc="bench", unit="cell", disable=not progress, dynamic_ncols=True)
    counts = {"ok": 0, "error": 0, "skipped": 0, "unavailable": 0}
    try:
        if runner is not None:
            for u in units:
                for name, v in runner.run(u, bar).items():
                    counts[name] += v
        else:
            pending: dict[int, tuple[list[dict], dict]] = {}
            nxt = 0
            for k, rows, cnt in engine(cfg, out, units, done):
                pending[k] = (rows, cnt)
                bar.set_postfix_str(f"{units[k].method} {units[k].eps_label}", refresh=False)
                bar.update(units[k].cells(cfg, batch_lens[units[k].batch]))
                while nxt in pending:  # rows in the local loop's order, written as soon as they can be
                    rows_n, cnt_n = pending.pop(nxt)
                    for r in rows_n:
                        writer.write(r)
                    for name, v in cnt_n.items():
                        counts[name] += v
                    nxt += 1
            if nxt != len(units):
                raise RuntimeError(f"the engine returned {nxt} of {len(units)} units")
    finally:
        bar.close()
    build_report(out)
    return {**counts, "total": total}


def cells_per_image(cfg: BenchConfig) -> int:
    """Edits x purifications one image gets per (method, budget, surrogate, target), counted from the config as
    ``build_edits`` / ``build_purifications`` expand it (a list-valued swept parameter gives one per value)."""
    def n_edits(spec: dict) -> int:
        if spec.get("kind") == "recon":
            s = spec.get("sample", False)
            return len(s) if isinstance(s, list) else 1
        p = spec.get("prompts", "pca")
        return len(PCA_PROMPTS) if p == "pca" else (1 if isinstance(p, str) else len(p))

    def n_purifs(spec: dict) -> int:
        v = spec.get(_SWEEP.get(spec.get("kind"), ""), None)
        return len(v) if isinstance(v, list) else 1

    return sum(n_edits(e) for e in cfg.edits) * sum(n_purifs(p) for p in cfg.purifications)


@dataclass(frozen=True)
class CellError:
    """Why a cell failed while the matrix ran: the exception's type, and ``Type: message (at file:line)``."""

    type: str
    text: str

    @classmethod
    def of(cls, exc: BaseException, prefix: str = "") -> "CellError":
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
        return cls(type(exc).__name__, f"{prefix}{type(exc).__name__}: {exc}{where}")

    def prefixed(self, prefix: str) -> "CellError":
        return CellError(self.type, prefix + self.text)


def _run_batch(ctx: _Ctx, batch: list[BenchImage], method: str, eps: float, eps_label: str, surrogate: str,
               bar: Any, state: list) -> None:
    """One protection cell on one batch, through every target. ``state``: ``[protection, error]`` of the cell,
    kept between its batches (built once; a protection that failed fails the cell's later batches too)."""
    cfg = ctx.cfg
    per_image = cells_per_image(cfg)
    pslug = slug(f"{method}_{eps_label}_{surrogate}")
    base = {"method": method, "eps": eps, "eps_label": eps_label, "surrogate": surrogate}
    prot_fn, prot_err = state
    try:
        ids = [im.id for im in batch]
        clean = torch.stack([im.image for im in batch])
        protected: torch.Tensor | None = None
        t_prot = 0.0
        for target in cfg.targets:
            bar.set_postfix_str(f"{method} {eps_label} -> {target}", refresh=False)
            try:
                edits = [e for spec in cfg.edits for e in build_edits(spec, target, ctx.models)]
                purifs = [p for spec in cfg.purifications for p in build_purifications(spec, target, ctx.models)]
            except Exception as exc:  # noqa: BLE001 - a target that does not load is recorded, the run goes on
                _record_errors(ctx, base, target, "*", "*", batch, CellError.of(exc))
                ctx.n_err += (per_image - 1) * len(batch)  # every cell of the target failed
                bar.update(per_image * len(batch))
                continue
            todo = [(e, p) for p in purifs for e in edits
                    if any(cell_key(method, eps_label, surrogate, target, e.name, p.name, i) not in ctx.done for i in ids)]
            n_cells = len(edits) * len(purifs) * len(batch)
            if not todo:
                ctx.n_skip += n_cells
                bar.update(n_cells)
                continue
            if protected is None and prot_err is None:
                try:
                    if prot_fn is None:
                        vae = ctx.models.vae(surrogate)
                        params = dict(cfg.method_params.get(method, {}))
                        if isinstance(params.get("pipe"), str):  # share one loaded pipeline across budgets
                            params["pipe"] = ctx.models.pipeline(params["pipe"], "img2img")
                        prot_fn = get_protection(method, vae=vae, eps=eps, steps=cfg.steps, **params)
                    t0 = time.perf_counter()
                    gen = torch.Generator().manual_seed(image_seed(cfg.seed, pslug + "|" + ",".join(ids)))
                    fn = prot_fn

                    def _on_step(info: Any, _m: str = method, _t: str = target) -> None:
                        bar.set_postfix_str(f"{_m} {eps_label} step {info.step}/{info.steps} -> {_t}")

                    def _compute() -> torch.Tensor:
                        return _run_protection(fn, clean.to(ctx.models.device), gen,
                                               None if bar.disable else _on_step).cpu()

                    protected = _cached_batch(ctx.out / "images" / "protected" / pslug, ids, _compute,
                                              {"method": method, "eps": eps_label, "surrogate": surrogate})
                    t_prot = time.perf_counter() - t0
                except Exception as exc:  # noqa: BLE001 - a surrogate that does not load, a protection that fails
                    prot_err = CellError.of(exc)
            if prot_err is not None:
                for e, p in todo:
                    _record_errors(ctx, base, target, e.name, p.name, batch, prot_err.prefixed("protection failed: "))
                n_done = n_cells - len(todo) * len(batch)
                ctx.n_skip += n_done
                bar.update(n_cells)
                continue
            assert protected is not None
            for im in batch:
                _save_input(ctx, im)
            emb = ctx.scorers.embedder
            input_metrics = pair_metrics(("psnr", "ssim") + (("embed-dist",) if emb else ()), protected, clean,
                                         Scorers(emb))
            input_metrics["linf"] = (protected - clean).abs().flatten(1).amax(1).tolist()
            ctx.n_skip += n_cells - len(todo) * len(batch)  # (edit, purification) pairs already done for the batch
            _run_target(ctx, base, pslug, target, batch, clean, protected, edits, purifs, todo, input_metrics, t_prot)
            bar.update(n_cells)
    finally:
        state[0], state[1] = prot_fn, prot_err


def failed_cells(out_dir: str | Path) -> list[tuple[str, str]]:
    """``(key, reason)`` of every cell of ``out_dir/results.jsonl`` whose latest row is an error."""
    last: dict[str, dict] = {}
    for r in JsonlWriter(Path(out_dir) / "results.jsonl").rows():
        if "key" in r:
            last[r["key"]] = r
    return [(k, str(r.get("error_type") or r.get("error") or "")) for k, r in last.items() if r.get("status") == "error"]


def _cached_batch(folder: Path, ids: list[str], compute: Callable[[], torch.Tensor], meta: dict) -> torch.Tensor:
    paths = [folder / f"{i}.png" for i in ids]
    if all(p.exists() for p in paths):
        try:
            return torch.cat([load_image(p) for p in paths])
        except Exception:  # noqa: BLE001 - an unreadable cached PNG is recomputed
            pass
    x = _quantize(compute())
    for p, xi in zip(paths, x):
        save_image(xi, p, metadata=meta)
    return x


def _save_input(ctx: _Ctx, im: BenchImage) -> None:
    p = ctx.out / "images" / "input" / f"{im.id}.png"
    if not p.exists():
        save_image(im.image, p)


def _record_errors(ctx: _Ctx, base: dict, target: str, edit: str, purif: str, batch: list[BenchImage],
                   err: CellError) -> None:
    for im in batch:
        key = cell_key(base["method"], base["eps_label"], base["surrogate"], target, edit, purif, im.id)
        ctx.writer.write({"key": key, "status": "error", **base, "target": target, "edit": edit,
                          "purification": purif, "image": im.id, "error_type": err.type, "error": err.text})
        ctx.n_err += 1


def _run_target(ctx: _Ctx, base: dict, pslug: str, target: str, batch: list[BenchImage], clean: torch.Tensor,
                protected: torch.Tensor, edits: list, purifs: list, todo: list, input_metrics: dict,
                t_prot: float) -> None:
    cfg = ctx.cfg
    ids = [im.id for im in batch]
    caps = [im.caption for im in batch]
    seeds = [image_seed(cfg.seed, i) for i in ids]
    tslug = slug(target)
    todo_set = {(e.name, p.name) for e, p in todo}
    purified: dict[str, torch.Tensor | CellError] = {}
    for p in purifs:
        if isinstance(p, Unavailable):
            continue
        if not any((e.name, p.name) in todo_set for e in edits):
            continue
        try:
            g = torch.Generator().manual_seed(image_seed(cfg.seed, f"purify|{p.name}|{','.join(ids)}"))
            purified[p.name] = _quantize(p(protected.clone(), generator=g).cpu())
        except Exception as exc:  # noqa: BLE001 - a purification that fails at run time fails its cells only
            purified[p.name] = CellError.of(exc)
    for e in edits:
        for p in purifs:
            if (e.name, p.name) not in todo_set:
                continue
            common = {**base, "target": target, "edit": e.name, "edit_family": e.name.split("[")[0],
                      "edit_params": getattr(e, "params", {}), "purification": p.name,
                      "purification_kind": purification_kind(p.name),
                      "purification_param": getattr(p, "param", ""),
                      "purification_strength": getattr(p, "strength", None)}
            if isinstance(e, Unavailable) or isinstance(p, Unavailable):
                u = e if isinstance(e, Unavailable) else p
                key = cell_key(base["method"], base["eps_label"], base["surrogate"], target, e.name, p.name, "*")
                ctx.writer.write({"key": key, "status": "unavailable", **common, "image": "*", "reason": u.reason})
                ctx.n_unavailable += len(batch)
                continue
            pur = purified[p.name]
            if isinstance(pur, CellError):
                _record_errors(ctx, base, target, e.name, p.name, batch, pur.prefixed("purification failed: "))
                continue
            try:
                t0 = time.perf_counter()
                ref_dir = ctx.out / "images" / "edit-clean" / tslug / slug(e.name)
                ref = _cached_batch(ref_dir, ids, lambda: e(clean, captions=caps, seeds=seeds),
                                    {"target": target, "edit": e.name})
                edited = _quantize(e(pur, captions=caps, seeds=seeds))
                t_edit = time.perf_counter() - t0
                rows = score_cell(cfg.metrics, ctx.scorers, clean, ref, edited, [_text_for(e, c) for c in caps])
            except EditUnavailable as exc:
                key = cell_key(base["method"], base["eps_label"], base["surrogate"], target, e.name, p.name, "*")
                ctx.writer.write({"key": key, "status": "unavailable", **common, "image": "*", "reason": str(exc)})
                ctx.n_unavailable += len(batch)
                continue
            except Exception as exc:  # noqa: BLE001 - an edit that fails at run time is recorded, the run goes on
                _record_errors(ctx, base, target, e.name, p.name, batch, CellError.of(exc))
                continue
            edir = ctx.out / "images" / "edited" / pslug / tslug / slug(p.name) / slug(e.name)
            pdir = ctx.out / "images" / "purified" / pslug / slug(p.name)
            for k, im in enumerate(batch):
                key = cell_key(base["method"], base["eps_label"], base["surrogate"], target, e.name, p.name, im.id)
                if key in ctx.done:
                    ctx.n_skip += 1
                    continue
                save_image(edited[k], edir / f"{im.id}.png")
                files = {
                    "input": f"images/input/{im.id}.png",
                    "protected": f"images/protected/{pslug}/{im.id}.png",
                    "edit_clean": str((ref_dir / f"{im.id}.png").relative_to(ctx.out)),
                    "edit_protected": str((edir / f"{im.id}.png").relative_to(ctx.out)),
                }
                if p.name != "none":
                    pp = pdir / f"{im.id}.png"
                    if not pp.exists():
                        save_image(pur[k], pp)
                    files["purified"] = str(pp.relative_to(ctx.out))
                row = {"key": key, "status": "ok", **common, "image": im.id, "caption": im.caption,
                       "prompt": _text_for(e, im.caption) if getattr(e, "prompt", None) is not None else None,
                       "seed": seeds[k], **rows[k],
                       "input": {m: v[k] for m, v in input_metrics.items()},
                       "seconds": {"protect_batch": round(t_prot, 3), "edit_batch": round(t_edit, 3)},
                       "files": files}
                ctx.writer.write(row)
                ctx.done.add(key)
                ctx.n_ok += 1
