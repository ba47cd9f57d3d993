"""The benchmark runner: ``latentguard bench CONFIG.toml --out DIR [--resume]``.

A config declares a matrix

    protection methods x budgets x surrogate models -> target models x edits x purifications x images

and the runner streams one row per cell to ``DIR/results.jsonl``: the protected image of one photo
(made with the surrogate), purified, edited by the target model; its metrics against the edit of the
*clean* photo (same seed, same noise) and against the clean input, plus the protected image's own
distance to the input. Then :mod:`latentguard.evaluate.report` writes ``summary.csv``, ``table.md``,
plots, image grids and ``report.html``.

Config (TOML; see ``examples/pca_table.toml``)::

    [run]       targets (model specs the edits run on), seed, device, dtype,
                images ("samples" | [files, folders, globs]), image_size, max_images, batch_size, metrics,
                embedder, grid_images, name
    [protect]   methods, budgets ("16/255" or 0.0627), steps, surrogates, [protect.params.<method>]
    [[edits]]            kind = recon | img2img | inpaint (+ their parameters; see evaluate.edits)
    [[purifications]]    kind = none | jpeg | resize | blur | noise | diffpure | impress | noisy-upscale

Budgets are ``[0,1]`` pixel units (``"16/255"`` is parsed exactly). ``none`` and ``random-noise`` are built
in; every other method comes from ``latentguard.protect.get(name, vae=surrogate, eps=, steps=, **params)``.
A cell that fails is recorded (``status: "error"``) and the run goes on; an edit or purification a model
cannot run is recorded once as ``status: "unavailable"`` with the reason. ``--resume`` skips cells whose
``status`` is ``ok``; protected images and clean edits are cached as PNG under ``DIR/images``.
"""

from __future__ import annotations

import dataclasses
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from latentguard.evaluate.edits import (
    EditUnavailable,
    ModelCache,
    Unavailable,
    build_edits,
    caption_for,
    image_seed,
    target_spec,
)
from latentguard.ops.metrics import REGISTRY as METRICS
from latentguard.ops.metrics import STANDARD_METRICS, embed_dist, psnr, ssim, standard_metric_status
from latentguard.ops.transforms import resize_center_crop
from latentguard.evaluate.purify import PURIFY_KINDS, build_purifications
from latentguard.core.config import read_toml
from latentguard.core.units import parse_budget

BUILTIN_PROTECTIONS = ("none", "random-noise")
DEFAULT_METRICS = ("psnr", "ssim", "embed-dist", "embed-fid", "embed-clip-score")


# ------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class BenchConfig:
    """A validated benchmark matrix (built by :meth:`from_dict` / :meth:`from_toml`)."""

    methods: tuple[str, ...]
    budgets: tuple[tuple[float, str], ...]
    steps: int
    surrogates: tuple[str, ...]
    targets: tuple[str, ...]
    edits: tuple[dict, ...]
    purifications: tuple[dict, ...] = ({"kind": "none"},)
    method_params: dict = field(default_factory=dict, compare=False)
    images: tuple[str, ...] | str = "samples"
    image_size: int | None = 64
    max_images: int | None = None
    batch_size: int = 4
    metrics: tuple[str, ...] = DEFAULT_METRICS
    embedder: str = "zoo:embed"
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    grid_images: int = 4
    name: str = "bench"

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("protect.methods must list at least one method")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"protect.methods has duplicates: {list(self.methods)}")
        if not self.budgets:
            raise ValueError("protect.budgets must list at least one budget")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"protect.steps must be an int >= 1, got {self.steps!r}")
        if not self.surrogates:
            raise ValueError("protect.surrogates must list at least one model spec")
        if not self.targets:
            raise ValueError("targets must list at least one model spec")
        if not self.edits:
            raise ValueError("declare at least one [[edits]] table")
        if not self.purifications:
            raise ValueError("purifications must not be empty (use kind = 'none')")
        for e in self.edits:
            if not isinstance(e, dict) or "kind" not in e:
                raise ValueError(f"every [[edits]] table needs a kind, got {e!r}")
        for p in self.purifications:
            if not isinstance(p, dict) or "kind" not in p:
                raise ValueError(f"every [[purifications]] table needs a kind, got {p!r}")
        if self.image_size is not None and (not isinstance(self.image_size, int) or self.image_size < 8):
            raise ValueError(f"run.image_size must be an int >= 8 (or 0 for native size), got {self.image_size!r}")
        if self.max_images is not None and (not isinstance(self.max_images, int) or self.max_images < 1):
            raise ValueError(f"run.max_images must be an int >= 1, got {self.max_images!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"run.batch_size must be an int >= 1, got {self.batch_size!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"run.seed must be a non-negative int, got {self.seed!r}")
        if not isinstance(self.grid_images, int) or self.grid_images < 0:
            raise ValueError(f"run.grid_images must be an int >= 0, got {self.grid_images!r}")
        if not self.metrics:
            raise ValueError("run.metrics must list at least one metric")
        for m in self.metrics:
            if m not in METRICS:
                raise ValueError(f"unknown metric {m!r}; choose from {sorted(METRICS)}")
        unknown = set(self.method_params) - set(self.methods)
        if unknown:
            raise ValueError(f"[protect.params] names methods not in protect.methods: {sorted(unknown)}")

    @classmethod
    def from_dict(cls, doc: dict) -> "BenchConfig":
        doc = dict(doc)
        run = dict(doc.pop("run", {}))
        prot = dict(doc.pop("protect", {}))
        targets = doc.pop("targets", None)
        edits = doc.pop("edits", None)
        purifs = doc.pop("purifications", [{"kind": "none"}])
        if doc:
            raise ValueError(f"unknown top-level config keys {sorted(doc)}; expected run, protect, targets, edits, purifications")
        if "targets" in run:
            if targets is not None:
                raise ValueError("targets is given both at the top level and in [run]; keep one")
            targets = run.pop("targets")
        known_run = {"seed", "device", "dtype", "images", "image_size", "max_images", "batch_size", "metrics",
                     "embedder", "grid_images", "name"}
        extra = set(run) - known_run
        if extra:
            raise ValueError(f"unknown [run] keys {sorted(extra)}; allowed: {sorted(known_run)}")
        known_prot = {"methods", "budgets", "steps", "surrogates", "params"}
        extra = set(prot) - known_prot
        if extra:
            hint = (" (TOML puts a key written after [protect] inside that table: write `targets = [...]` in [run] "
                    "or above the first [table])") if "targets" in extra else ""
            raise ValueError(f"unknown [protect] keys {sorted(extra)}; allowed: {sorted(known_prot)}{hint}")
        if targets is None or edits is None:
            raise ValueError("config needs `targets = [...]` and at least one [[edits]] table")
        budgets = prot.get("budgets", ["16/255"])
        budgets = budgets if isinstance(budgets, list) else [budgets]
        images = run.get("images", "samples")
        size = run.get("image_size", 64)
        return cls(
            methods=tuple(_as_list(prot.get("methods"), "protect.methods")),
            budgets=tuple(parse_budget(b) for b in budgets),
            steps=prot.get("steps", 40),
            surrogates=tuple(_as_list(prot.get("surrogates"), "protect.surrogates")),
            targets=tuple(target_spec(t) for t in _as_list(targets, "targets")),
            edits=tuple(dict(e) for e in _as_list(edits, "edits")),
            purifications=tuple(dict(p) for p in _as_list(purifs, "purifications")),
            method_params={k: dict(v) for k, v in dict(prot.get("params", {})).items()},
            images=images if images == "samples" else tuple(_as_list(images, "run.images")),
            image_size=None if size in (0, None) else size,
            max_images=run.get("max_images"),
            batch_size=run.get("batch_size", 4),
            metrics=tuple(_as_list(run.get("metrics", list(DEFAULT_METRICS)), "run.metrics")),
            embedder=run.get("embedder", "zoo:embed"),
            seed=run.get("seed", 0),
            device=run.get("device", "auto"),
            dtype=run.get("dtype", "float32"),
            grid_images=run.get("grid_images", 4),
            name=run.get("name", "bench"),
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> "BenchConfig":
        return cls.from_dict(read_toml(path))

    def to_dict(self) -> dict:
        """The normalised config (written to run.json; ``latentguard report`` reads it back)."""
        d = dataclasses.asdict(self)
        d["budgets"] = [{"eps": e, "label": lab} for e, lab in self.budgets]
        d["images"] = self.images if isinstance(self.images, str) else list(self.images)
        return d


def _as_list(v: Any, what: str) -> list:
    if v is None:
        raise ValueError(f"{what} is required")
    if isinstance(v, (str, dict)):
        return [v]
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"{what} must be a list, got {type(v).__name__}")
    return list(v)


# --------------------------------------------------------------------------------------- protections
@dataclass(frozen=True)
class NoProtection:
    """The unprotected image (the table's 'no protection' row)."""

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return images.clone()


@dataclass(frozen=True)
class RandomSignNoise:
    """Uniform random sign noise of L-inf size ``eps``: ``clip(x + eps * s, 0, 1)``, ``s`` uniform in {-1, +1}.

    The baseline a protection must beat: the same L-inf budget, no optimisation.
    """

    eps: float

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.eps) <= 1.0:
            raise ValueError(f"eps must be in [0, 1], got {self.eps}")

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        s = torch.randint(0, 2, images.shape, generator=generator, device="cpu").to(images.device, images.dtype) * 2 - 1
        return (images + float(self.eps) * s).clamp(0, 1)


def make_protection(name: str, *, vae: Any, eps: float, steps: int, params: dict | None = None) -> Callable:
    """A protection callable ``(images, generator=None) -> protected``: built-in or from latentguard.protect."""
    params = dict(params or {})
    if name == "none":
        return NoProtection()
    if name == "random-noise":
        return RandomSignNoise(eps)
    try:
        import latentguard.protect as protect  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("latentguard.protect"):
            raise ValueError(f"protection {name!r} needs latentguard.protect, which this checkout lacks; "
                             f"built-in: {BUILTIN_PROTECTIONS}") from None
        raise
    return protect.get(name, vae=vae, eps=eps, steps=steps, **params)


def _run_protection(fn: Callable, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
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


def load_bench_images(cfg: BenchConfig) -> list[BenchImage]:
    """The config's images: resized (shorter side) and centre-cropped to ``image_size`` (or native size)."""
    from latentguard.io import collect_inputs, load_image

    if cfg.images == "samples":
        from latentguard.samples import sample_paths

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
            x = resize_center_crop(x, cfg.image_size, mode="bicubic")
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


def _quantize(x: torch.Tensor) -> torch.Tensor:
    """What an 8-bit PNG holds (every image is saved, and reused on --resume, as PNG)."""
    return (x.float().clamp(0, 1) * 255).round() / 255


@dataclass
class _Ctx:
    cfg: BenchConfig
    out: Path
    models: ModelCache
    embedder: Any
    writer: Any
    done: set
    std_status: dict
    standard: Any = None
    n_ok: int = 0
    n_err: int = 0
    n_skip: int = 0


def cell_key(method: str, eps_label: str, surrogate: str, target: str, edit: str, purif: str, image: str) -> str:
    return "|".join((method, eps_label, surrogate, target, edit, purif, image))


def _pair_metrics(names: Sequence[str], a: torch.Tensor, b: torch.Tensor, embedder: Any,
                  standard: Any = None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    if "psnr" in names:
        out["psnr"] = psnr(a, b).tolist()
    if "ssim" in names:
        win = min(11, a.shape[-1], a.shape[-2])
        out["ssim"] = ssim(a, b, kernel_size=win - (1 - win % 2)).tolist()
    if "embed-dist" in names and embedder is not None:
        out["embed-dist"] = embed_dist(embedder, a, b).tolist()
    if "lpips" in names and standard is not None:
        out["lpips"] = standard.lpips(a, b).tolist()
    return out


def _features(embedder: Any, x: torch.Tensor) -> list[list[float]]:
    with torch.no_grad():
        f = embedder.embed_images(x.to(embedder.device).float()).cpu()
    return [[round(float(v), 5) for v in row] for row in f]


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


def run_bench(cfg: BenchConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
              command: str = "latentguard bench") -> dict:
    """Run the matrix of ``cfg`` into ``out_dir``; then write the report files. Returns counts."""
    from latentguard.ops.runtime import resolve_device, seed_everything
    from latentguard.io import JsonlWriter, write_manifest

    out = Path(out_dir)
    if out.exists() and (out / "results.jsonl").exists() and not resume:
        raise ValueError(f"{out} already holds results.jsonl; pass --resume to continue it or choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    std = standard_metric_status()
    for m in cfg.metrics:
        if m in STANDARD_METRICS and not std[m]["available"]:
            raise ValueError(f"metric {m!r} is unavailable here: {std[m]['reason']}; "
                             f"use its labelled stand-in {std[m]['stand_in']!r}")
    standard = None
    if any(m in STANDARD_METRICS for m in cfg.metrics):
        from latentguard.ops.metrics import StandardMetrics

        standard = StandardMetrics(device)
    embedder = None
    if any(METRICS[m].stands_in_for for m in cfg.metrics):
        from latentguard.models import load_embedder

        embedder = load_embedder(cfg.embedder, device=device)
    images = load_bench_images(cfg)
    write_manifest(out, command, cfg.to_dict(), cfg.seed, extra={
        "standard_metrics": std,
        "images": [{"id": im.id, "path": im.path, "caption": im.caption} for im in images],
    })
    writer = JsonlWriter(out / "results.jsonl", resume=resume)
    ctx = _Ctx(cfg, out, ModelCache(device, cfg.dtype), embedder, writer,
               writer.done_keys() if resume else set(), std, standard)
    prot_cells = [(m, e, s) for m in cfg.methods for e in (cfg.budgets if m != "none" else [(0.0, "0")])
                  for s in cfg.surrogates]
    from tqdm.auto import tqdm

    total = len(prot_cells) * len(cfg.targets) * len(_batches(images, cfg.batch_size))
    bar = tqdm(total=total, desc="bench", unit="cell", disable=not progress, dynamic_ncols=True)
    try:
        for method, (eps, eps_label), surrogate in prot_cells:
            _run_protection_cell(ctx, images, method, eps, eps_label, surrogate, bar)
    finally:
        bar.close()
    from latentguard.evaluate.report import build_report

    build_report(out)
    return {"ok": ctx.n_ok, "error": ctx.n_err, "skipped": ctx.n_skip}


def _error_text(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _run_protection_cell(ctx: _Ctx, images: list[BenchImage], method: str, eps: float, eps_label: str,
                         surrogate: str, bar: Any) -> None:
    cfg = ctx.cfg
    pslug = slug(f"{method}_{eps_label}_{surrogate}")
    base = {"method": method, "eps": eps, "eps_label": eps_label, "surrogate": surrogate}
    prot_fn: Callable | None = None
    prot_err: str | None = None
    for batch in _batches(images, cfg.batch_size):
        ids = [im.id for im in batch]
        clean = torch.stack([im.image for im in batch])
        protected: torch.Tensor | None = None
        t_prot = 0.0
        for target in cfg.targets:
            bar.set_postfix_str(f"{method} {eps_label} -> {target}", refresh=False)
            try:
                edits = [e for spec in cfg.edits for e in build_edits(spec, target, ctx.models)]
                purifs = [p for spec in cfg.purifications for p in build_purifications(spec, target, ctx.models)]
            except Exception as exc:  # noqa: BLE001 - a broken target is recorded, the run goes on
                _record_errors(ctx, base, target, "*", "*", batch, _error_text(exc))
                bar.update(1)
                continue
            todo = [(e, p) for p in purifs for e in edits
                    if any(cell_key(method, eps_label, surrogate, target, e.name, p.name, i) not in ctx.done for i in ids)]
            if not todo:
                ctx.n_skip += len(edits) * len(purifs) * len(batch)
                bar.update(1)
                continue
            if protected is None and prot_err is None:
                try:
                    if prot_fn is None:
                        vae = ctx.models.vae(surrogate)
                        params = dict(cfg.method_params.get(method, {}))
                        if isinstance(params.get("pipe"), str):  # share one loaded pipeline across budgets
                            params["pipe"] = ctx.models.pipeline(params["pipe"], "img2img")
                        prot_fn = make_protection(method, vae=vae, eps=eps, steps=cfg.steps, params=params)
                    t0 = time.perf_counter()
                    gen = torch.Generator().manual_seed(image_seed(cfg.seed, pslug + "|" + ",".join(ids)))
                    fn = prot_fn

                    def _compute() -> torch.Tensor:
                        return _run_protection(fn, clean.to(ctx.models.device), gen).cpu()

                    protected = _cached_batch(ctx.out / "images" / "protected" / pslug, ids, _compute,
                                              {"method": method, "eps": eps_label, "surrogate": surrogate})
                    t_prot = time.perf_counter() - t0
                except Exception as exc:  # noqa: BLE001
                    prot_err = _error_text(exc)
            if prot_err is not None:
                for e, p in todo:
                    _record_errors(ctx, base, target, e.name, p.name, batch, "protection failed: " + prot_err)
                bar.update(1)
                continue
            assert protected is not None
            for im in batch:
                _save_input(ctx, im)
            input_metrics = _pair_metrics(("psnr", "ssim") + (("embed-dist",) if ctx.embedder else ()),
                                          protected, clean, ctx.embedder)
            input_metrics["linf"] = (protected - clean).abs().flatten(1).amax(1).tolist()
            _run_target(ctx, base, pslug, target, batch, clean, protected, edits, purifs, todo, input_metrics, t_prot)
            bar.update(1)


def _cached_batch(folder: Path, ids: list[str], compute: Callable[[], torch.Tensor], meta: dict) -> torch.Tensor:
    from latentguard.io import load_image, save_image

    paths = [folder / f"{i}.png" for i in ids]
    if all(p.exists() for p in paths):
        try:
            return torch.cat([load_image(p) for p in paths])
        except Exception:  # noqa: BLE001
            pass
    x = _quantize(compute())
    for p, xi in zip(paths, x):
        save_image(xi, p, metadata=meta)
    return x


def _save_input(ctx: _Ctx, im: BenchImage) -> None:
    from latentguard.io import save_image

    p = ctx.out / "images" / "input" / f"{im.id}.png"
    if not p.exists():
        save_image(im.image, p)


def _record_errors(ctx: _Ctx, base: dict, target: str, edit: str, purif: str, batch: list[BenchImage], msg: str) -> None:
    for im in batch:
        key = cell_key(base["method"], base["eps_label"], base["surrogate"], target, edit, purif, im.id)
        ctx.writer.write({"key": key, "status": "error", **base, "target": target, "edit": edit,
                          "purification": purif, "image": im.id, "error": msg})
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
    purified: dict[str, torch.Tensor | str] = {}
    for p in purifs:
        if isinstance(p, Unavailable):
            continue
        if not any((e.name, p.name) in todo_set for e in edits):
            continue
        try:
            g = torch.Generator().manual_seed(image_seed(cfg.seed, f"purify|{p.name}|{','.join(ids)}"))
            purified[p.name] = _quantize(p(protected.clone(), generator=g).cpu())
        except Exception as exc:  # noqa: BLE001
            purified[p.name] = _error_text(exc)
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
                continue
            pur = purified.get(p.name)
            if isinstance(pur, str) or pur is None:
                _record_errors(ctx, base, target, e.name, p.name, batch, f"purification failed: {pur}")
                continue
            try:
                t0 = time.perf_counter()
                ref_dir = ctx.out / "images" / "edit-clean" / tslug / slug(e.name)
                ref = _cached_batch(ref_dir, ids, lambda: e(clean, captions=caps, seeds=seeds),
                                    {"target": target, "edit": e.name})
                edited = _quantize(e(pur, captions=caps, seeds=seeds))
                t_edit = time.perf_counter() - t0
                rows = _score(ctx, e, batch, clean, ref, edited, caps)
            except EditUnavailable as exc:
                key = cell_key(base["method"], base["eps_label"], base["surrogate"], target, e.name, p.name, "*")
                ctx.writer.write({"key": key, "status": "unavailable", **common, "image": "*", "reason": str(exc)})
                continue
            except Exception as exc:  # noqa: BLE001 - one failing cell is recorded, the run goes on
                _record_errors(ctx, base, target, e.name, p.name, batch, _error_text(exc))
                continue
            from latentguard.io import save_image

            edir = ctx.out / "images" / "edited" / pslug / tslug / slug(p.name) / slug(e.name)
            pdir = ctx.out / "images" / "purified" / pslug / slug(p.name)
            for k, im in enumerate(batch):
                key = cell_key(base["method"], base["eps_label"], base["surrogate"], target, e.name, p.name, im.id)
                if key in ctx.done:
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


def _score(ctx: _Ctx, edit: Any, batch: list[BenchImage], clean: torch.Tensor, ref: torch.Tensor,
           edited: torch.Tensor, caps: list[str]) -> list[dict]:
    names = ctx.cfg.metrics
    vs_ref = _pair_metrics(names, edited, ref, ctx.embedder, ctx.standard)
    vs_input = _pair_metrics(names, edited, clean, ctx.embedder, ctx.standard)
    ref_vs_input = _pair_metrics(names, ref, clean, ctx.embedder, ctx.standard)
    texts = [_text_for(edit, c) for c in caps]
    clip_p = clip_r = None
    if "embed-clip-score" in names and ctx.embedder is not None:
        from latentguard.ops.metrics import embed_clip_score

        clip_p = embed_clip_score(ctx.embedder, edited, texts).tolist()
        clip_r = embed_clip_score(ctx.embedder, ref, texts).tolist()
    std_p = std_r = None
    if "clip-score" in names and ctx.standard is not None:
        std_p = ctx.standard.clip_score(edited, texts).tolist()
        std_r = ctx.standard.clip_score(ref, texts).tolist()
    feats_p = feats_r = None
    if "embed-fid" in names and ctx.embedder is not None:
        feats_p, feats_r = _features(ctx.embedder, edited), _features(ctx.embedder, ref)
    rows = []
    for k in range(len(batch)):
        r: dict[str, Any] = {
            "metrics": {m: v[k] for m, v in vs_ref.items()},
            "vs_input": {m: v[k] for m, v in vs_input.items()},
            "clean_edit_vs_input": {m: v[k] for m, v in ref_vs_input.items()},
            "text": texts[k],
        }
        if clip_p is not None:
            r["metrics"]["embed-clip-score"] = clip_p[k]
            r["clean_edit_clip"] = clip_r[k]
        if std_p is not None:
            r["metrics"]["clip-score"] = std_p[k]
            r["clean_edit_clip_score"] = std_r[k]
        if feats_p is not None:
            r["features"] = {"edit_protected": feats_p[k], "edit_clean": feats_r[k]}
        rows.append(r)
    return rows
