"""Survival: how much of an image's protection is left after the purifications an adversary would use.

``latentguard survival PROTECTED... --clean CLEAN... --model SPEC --out DIR`` (and ``latentguard protect ...
--survival``). For each protected image ``x_p`` of a clean image ``x``, each purification ``P`` (JPEG, WebP,
resize, blur, noise, noisy upscaling, DiffPure, IMPRESS, GrIDPure; :mod:`latentguard.evaluate.purify`) and
each edit ``f`` of the target model (its VAE reconstruction and its img2img):

.. math::

    \\text{retained}(P) = \\frac{\\text{effect}(P)}{\\text{effect}(\\text{none})}

where the effect is measured on the protection's own objective (PCA's two, docs/evaluate.md), net of what
``P`` does to the clean image, with squared distances (mean over pixels, ``[0,1]`` units, MSE):

* **Objective 2** (the edit moves away from the clean edit; pca-, pca-adaptive, photoguard, advdm, mist, sds):
  ``effect(P) = mse(f(P(x_p)), f(P(x)))``: the edit of the purified protected image against the same edit of
  the *equally purified* clean image. The purifier's own change to the edit cancels: what is left is the part
  the protection still causes.
* **Objective 1** (the edit of the protected image stays close to the input; pca+):
  ``effect(P) = mse(f(P(x)), x) - mse(f(P(x_p)), x)``: how much closer to the input the edit stays when the
  image was protected, both images purified alike.

``P = none`` is the identity, so ``retained(none) = 1``; a purifier that gives back the clean image (``P(x_p) =
P(x) = x``) gives ``retained = 0``. The clean and the protected image get the *same* purifier noise (one seed per
image and purifier) and the *same* edit noise (one seed per image), as the bench runner does. ``retained`` can
exceed 1 (a purifier that amplifies the protection) or fall below 0 (it reverses it). It is undefined (NaN, with
the reason) when the unpurified effect is not positive: a protection with no effect on an objective has none to
retain (``min_effect``: Objective 1's effect must also be at least 1% of ``mse(f(x), x)``, so that the ratio is
not a ratio of rounding). Every row also holds both objectives' figures, whatever the method's own.

Visibility: PSNR, SSIM and the perceptual stand-in ``embed-dist`` (zoo:embed; LPIPS when its weights are here)
of the protected image against the clean one.

Outputs in ``DIR``: ``survival.csv`` (a row per image x edit x purification: ``image``, ``purification``,
``retained`` and the raw distances), ``survival.json`` (everything, with the formula), ``summary.md`` (the
table), ``heatmap.png`` (images x purifications, per edit), ``report.html`` (its "Survival" section) and
``run.json``; one verdict line per image on the terminal.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from latentguard.core.errors import UserError
from latentguard.evaluate.edits import EditUnavailable, Img2Img, ModelCache, Unavailable, VAEReconstruction, image_seed
from latentguard.evaluate.purify import (
    JPEG,
    DiffPure,
    GaussianBlur,
    GaussianNoise,
    GrIDPure,
    Impress,
    NoPurification,
    NoisyUpscale,
    NoisyUpscaleStandIn,
    Resize,
    WebP,
    _upscaler,
)
from latentguard.evaluate.report import _CSS, _ENV, _b64
from latentguard.evaluate.scoring import Scorers, pair_metrics
from latentguard.io import collect_inputs, load_image, read_provenance, write_manifest
from latentguard.ops.grid import quantize_8bit
from latentguard.models import load_embedder
from latentguard.protect import get_class

#: The purifications scored by default, at the strengths people use (docs/survival.md says why each).
DEFAULT_PURIFICATIONS: tuple[str, ...] = (
    "jpeg-q95", "jpeg-q75", "jpeg-q50", "webp-q75", "resize-0.75", "resize-0.5", "blur-1", "noise-0.05",
    "noisy-upscale", "diffpure-0.1", "impress", "gridpure",
)
#: Verdict bands on ``retained`` (img2img when the model has it, else the reconstruction).
SURVIVES, BROKEN = 0.5, 0.2
#: Objective 1's unpurified effect must be at least this fraction of mse(f(x), x) for a ratio to be reported.
MIN_EFFECT_1 = 0.01

FORMULA = (
    "retained(P) = effect(P) / effect(none); objective 2: effect(P) = mse(f(P(x_p)), f(P(x))); "
    "objective 1: effect(P) = mse(f(P(x)), x) - mse(f(P(x_p)), x); f = the edit (VAE reconstruction or img2img), "
    "x = clean, x_p = protected, P = the purification (the same noise for x and x_p), mse over pixels in [0,1]"
)


# ------------------------------------------------------------------------------------ purifications
_NAME = re.compile(r"^(?P<kind>[a-z][a-z-]*?)(?:-(?P<arg>q?\d+(?:\.\d+)?))?$")


def parse_purification(name: str, models: ModelCache, target: str, *, upscaler: str | None = None) -> Any:
    """One purifier from its reported name: ``jpeg-q75``, ``webp-q75``, ``resize-0.5``, ``blur-1``,
    ``noise-0.05``, ``diffpure-0.1``, ``impress`` / ``impress-50`` (Adam steps), ``gridpure`` /
    ``gridpure-5`` (iterations), ``noisy-upscale`` / ``noisy-upscale-0.05`` (noise std; the x4 diffusion
    upscaler ``upscaler`` when given, else the labelled CPU stand-in), ``none``.

    A purifier the model cannot run (DiffPure needs a diffusion pipeline) comes back as :class:`Unavailable`.
    """
    m = _NAME.match(name.strip().lower()) if isinstance(name, str) else None
    if not m:
        raise UserError(f"unknown purification {name!r}; e.g. {', '.join(DEFAULT_PURIFICATIONS)}")
    kind, arg = m["kind"], m["arg"]

    def num(default: float, *, q: bool = False) -> float:
        if arg is None:
            return default
        if q != arg.startswith("q"):
            raise UserError(f"purification {name!r}: write {kind}-q<quality>" if q else f"purification {name!r}: "
                            f"{kind} takes a number, e.g. {kind}-{default:g}")
        return float(arg.lstrip("q"))

    try:
        if kind == "none" and arg is None:
            return NoPurification()
        if kind == "jpeg":
            return JPEG(int(num(75, q=True)))
        if kind == "webp":
            return WebP(int(num(75, q=True)))
        if kind == "resize":
            return Resize(num(0.5))
        if kind == "blur":
            return GaussianBlur(num(1.0))
        if kind == "noise":
            return GaussianNoise(num(0.05))
        if kind == "impress":
            return Impress(models.vae(target), steps=int(num(50)))
        if kind in ("diffpure", "gridpure", "noisy-upscale"):
            if kind == "noisy-upscale" and upscaler:
                try:
                    return NoisyUpscale(_upscaler(models, upscaler), std=num(0.05))
                except Exception as exc:  # noqa: BLE001 - reported as unavailable, the run goes on
                    return Unavailable(f"noisy-upscale-{num(0.05):g}", str(exc))
            try:
                pipe = models.pipeline(target, "img2img")
            except EditUnavailable as exc:
                return Unavailable(name, str(exc))
            if kind == "diffpure":
                return DiffPure(pipe, t_star=num(0.1))
            if kind == "gridpure":
                return GrIDPure(pipe, iterations=int(num(20)))
            return NoisyUpscaleStandIn(pipe, std=num(0.05))
    except ValueError as exc:
        raise UserError(f"purification {name!r}: {exc}") from None
    raise UserError(f"unknown purification {name!r}; e.g. {', '.join(DEFAULT_PURIFICATIONS)}")


def describe(p: Any) -> str:
    """A short description of a purifier for the tables."""
    table: dict[type, Callable[[Any], str]] = {
        NoPurification: lambda p: "identity",
        JPEG: lambda p: f"JPEG q{p.quality} (PIL, 4:2:0)",
        WebP: lambda p: f"WebP q{p.quality} (PIL/libwebp)",
        Resize: lambda p: f"bicubic down x{p.scale:g} and back",
        GaussianBlur: lambda p: f"Gaussian blur sigma {p.sigma:g} px",
        GaussianNoise: lambda p: f"Gaussian noise std {p.std:g}",
        DiffPure: lambda p: f"DiffPure t*={p.t_star:g} (the target's diffusion model)",
        Impress: lambda p: f"IMPRESS {p.steps} Adam steps, L-inf {p.eps * 255:.0f}/255 (1-SSIM for LPIPS)",
        GrIDPure: lambda p: f"GrIDPure: DiffPure t*={p.t_star:g} on overlapping grids, {p.iterations} rounds, "
                            f"gamma {p.gamma:g}",
        NoisyUpscale: lambda p: f"noisy upscaling: noise {p.std:g}, x4 diffusion upscaler",
        NoisyUpscaleStandIn: lambda p: f"noisy upscaling STAND-IN: noise {p.std:g}, x{p.factor} down, bicubic up, "
                                       f"DiffPure t*={p.t_star:g} (no diffusion upscaler here)",
    }
    fn = table.get(type(p))
    return fn(p) if fn else getattr(p, "reason", type(p).__name__)


# ------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class SurvivalItem:
    """One protected image with its clean image, the method that made it and the method's objective."""

    id: str
    protected: torch.Tensor = field(repr=False, compare=False)  # [1,3,H,W]
    clean: torch.Tensor = field(repr=False, compare=False)
    method: str
    objective: int | None
    protected_path: str = ""
    clean_path: str = ""


def method_objective(method: str) -> int | None:
    """The objective a protection targets (its ``edit_objective``), ``None`` for the controls."""
    try:
        return get_class(method).edit_objective
    except ValueError as exc:
        raise UserError(str(exc)) from None


def pair_inputs(protected: Sequence[Path], clean: Sequence[Path], *, method: str | None = None) -> list[SurvivalItem]:
    """Match each protected image to its clean image and read its method.

    A protected image's clean image is the clean file named in its PNG provenance (``source``, written by
    ``latentguard protect``), else the clean file with the same stem. The method is ``method`` when given,
    else the provenance's ``method``. Every mismatch is a one-line :class:`UserError`.
    """
    protected, clean = list(protected), list(clean)
    if not clean:
        raise UserError("no clean images found (--clean)")
    stems = {c.stem for c in clean}
    # a folder of `latentguard protect` outputs also holds summary.png: a file with no protection metadata
    # and no clean counterpart is not a protected image (said on stderr, not silently)
    keep = []
    for p in protected:
        if p.stem not in stems and not (read_provenance(p) if p.suffix.lower() == ".png" else {}):
            print(f"latentguard: skipped {p} (no protection metadata and no clean image of that name)", file=sys.stderr)
            continue
        keep.append(p)
    protected = keep
    if not protected:
        raise UserError("no protected images found")
    if len(protected) != len(clean):
        raise UserError(f"{len(protected)} protected image(s) but {len(clean)} clean image(s); give one clean "
                        "image per protected image")
    by_name = {c.name: c for c in clean}
    by_stem: dict[str, list[Path]] = {}
    for c in clean:
        by_stem.setdefault(c.stem, []).append(c)
    items: list[SurvivalItem] = []
    used: dict[Path, Path] = {}
    ids: set[str] = set()
    for p in protected:
        prov = read_provenance(p) if p.suffix.lower() == ".png" else {}
        src = prov.get("source")
        c = by_name.get(str(src)) if src else None
        if c is None:
            cands = by_stem.get(p.stem, [])
            if len(cands) > 1:
                raise UserError(f"{p}: several clean images have the stem {p.stem!r} ({', '.join(map(str, cands))})")
            c = cands[0] if cands else None
        if c is None:
            raise UserError(f"{p}: no clean image matches it (looked for {src!r} from its metadata and the stem "
                            f"{p.stem!r} among --clean)")
        if c in used:
            raise UserError(f"{p} and {used[c]} both match the clean image {c}")
        used[c] = p
        m = method or prov.get("method")
        if not m:
            raise UserError(f"{p}: its metadata names no protection method; pass --method")
        xp, xc = load_image(p), load_image(c)
        if xp.shape != xc.shape:
            raise UserError(f"{p} is {xp.shape[-1]}x{xp.shape[-2]} but its clean image {c} is "
                            f"{xc.shape[-1]}x{xc.shape[-2]}; they must have the same size")
        ident, k = p.stem, 2
        while ident in ids:
            ident, k = f"{p.stem}-{k}", k + 1
        ids.add(ident)
        items.append(SurvivalItem(ident, xp, xc, str(m), method_objective(str(m)), str(p), str(c)))
    return items


# ------------------------------------------------------------------------------------------ scoring
def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).pow(2).mean())


def _psnr(mse: float) -> float:
    return 100.0 if mse <= 1e-10 else min(100.0, 10 * math.log10(1.0 / mse))


def effects(edit_p: torch.Tensor, edit_c: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """The raw distances of one (image, edit, purification) and the two objectives' effects."""
    d2 = _mse(edit_p, edit_c)
    d1p, d1c = _mse(edit_p, clean), _mse(edit_c, clean)
    return {"mse_edit_vs_clean_edit": d2, "mse_edit_vs_input": d1p, "mse_clean_edit_vs_input": d1c,
            "effect_obj1": d1c - d1p, "effect_obj2": d2}


def retained_ratio(effect: float, unpurified: float, objective: int, clean_edit_vs_input: float) -> tuple[float, str]:
    """``(effect / unpurified, "")``, or ``(nan, reason)`` when there is no unpurified effect to retain."""
    floor = MIN_EFFECT_1 * clean_edit_vs_input if objective == 1 else 0.0
    if not unpurified > max(floor, 1e-12):
        return float("nan"), (f"no effect on objective {objective} to retain (unpurified effect {unpurified:.3g}"
                              + (f" < {floor:.3g}" if objective == 1 else "") + ")")
    return effect / unpurified, ""


@dataclass
class SurvivalModel:
    """The target model's edits: its VAE reconstruction and (when it has a pipeline) img2img."""

    edits: dict[str, Any]
    vae: Any
    unavailable: dict[str, str]

    @classmethod
    def load(cls, models: ModelCache, target: str, *, strength: float = 0.5, steps: int = 20,
             guidance: float = 1.0, prompt: str = "") -> "SurvivalModel":
        vae = models.vae(target)
        edits: dict[str, Any] = {"recon": VAEReconstruction(vae)}
        unavailable: dict[str, str] = {}
        try:
            pipe = models.pipeline(target, "img2img")
            edits["img2img"] = Img2Img(pipe, prompt=prompt, strength=strength, steps=steps, guidance=guidance)
        except EditUnavailable as exc:
            unavailable["img2img"] = str(exc)
        return cls(edits, vae, unavailable)


def score_batch(items: Sequence[SurvivalItem], purifiers: Sequence[Any], model: SurvivalModel, *, seed: int = 0,
                cache: dict | None = None, on_purifier: Callable[[str], None] | None = None) -> list[dict]:
    """The survival rows of a batch of same-size images: one per (image, edit, purification), ``none`` first.

    The purifier runs on the whole batch with one generator, seeded from the purifier's name and the images'
    ids, for the clean and for the protected batch alike (the same noise for both); each image's edit noise
    comes from its own seed (:func:`~latentguard.evaluate.edits.image_seed`). ``cache`` (a dict, optional)
    keeps the clean side (``P(x)`` and its edits) between calls on the same clean images (e.g. several methods).
    """
    items = list(items)
    if not items:
        return []
    shapes = {tuple(it.clean.shape) for it in items} | {tuple(it.protected.shape) for it in items}
    if len(shapes) != 1:
        raise ValueError(f"a batch needs images of one size, got {sorted(shapes)}")
    ids = [it.id for it in items]
    xc = torch.cat([it.clean.float() for it in items])
    xp = torch.cat([it.protected.float() for it in items])
    seeds = [image_seed(seed, i) for i in ids]
    owns = [it.objective if it.objective in (1, 2) else 2 for it in items]
    cache = {} if cache is None else cache
    ckey = (tuple(ids), tuple(float(it.clean.sum()) for it in items), seed)
    base: dict[str, list[dict[str, float]]] = {}
    rows: list[dict] = []
    for p in [NoPurification(), *[q for q in purifiers if not isinstance(q, NoPurification)]]:
        if on_purifier:
            on_purifier(p.name)
        if isinstance(p, Unavailable):
            for k, it in enumerate(items):
                for e in model.edits:
                    rows.append({"image": it.id, "method": it.method, "objective": owns[k], "edit": e,
                                 "purification": p.name, "status": "unavailable", "reason": p.reason})
            continue
        t0 = time.perf_counter()
        # purified images are quantised to 8 bits: an adversary saves the purified image before editing it
        gseed = image_seed(seed, f"purify|{p.name}|{','.join(ids)}")
        key = (ckey, p.name)
        if key not in cache:
            pc = quantize_8bit(p(xc.clone(), generator=torch.Generator().manual_seed(gseed)).cpu())
            cache[key] = (pc, {e: ed(pc, seeds=seeds).float() for e, ed in model.edits.items()})
        pc, fcs = cache[key]
        pp = quantize_8bit(p(xp.clone(), generator=torch.Generator().manual_seed(gseed)).cpu())
        for ename, e in model.edits.items():
            fp = e(pp, seeds=seeds).float()
            fc = fcs[ename]
            effs = [effects(fp[k:k + 1], fc[k:k + 1], xc[k:k + 1]) for k in range(len(items))]
            if p.name == "none":
                base[ename] = effs
            secs = round((time.perf_counter() - t0) / len(items), 3)
            for k, it in enumerate(items):
                eff, b = effs[k], base[ename][k]
                r1, why1 = retained_ratio(eff["effect_obj1"], b["effect_obj1"], 1, b["mse_clean_edit_vs_input"])
                r2, why2 = retained_ratio(eff["effect_obj2"], b["effect_obj2"], 2, b["mse_clean_edit_vs_input"])
                own = owns[k]
                rows.append({"image": it.id, "method": it.method, "objective": own, "edit": ename,
                             "purification": p.name, "status": "ok",
                             "retained": r1 if own == 1 else r2, "retained_obj1": r1, "retained_obj2": r2,
                             "reason": why1 if own == 1 else why2,
                             **eff,
                             "psnr_edit_vs_clean_edit": _psnr(eff["mse_edit_vs_clean_edit"]),
                             "psnr_edit_vs_input": _psnr(eff["mse_edit_vs_input"]),
                             "psnr_clean_edit_vs_input": _psnr(eff["mse_clean_edit_vs_input"]),
                             "purified_psnr": _psnr(_mse(pp[k], xp[k])),
                             "seconds_per_image": secs})
    return rows


def score_item(item: SurvivalItem, purifiers: Sequence[Any], model: SurvivalModel, *, seed: int = 0,
               cache: dict | None = None, on_purifier: Callable[[str], None] | None = None) -> list[dict]:
    """:func:`score_batch` of one image."""
    return score_batch([item], purifiers, model, seed=seed, cache=cache, on_purifier=on_purifier)


def batches(items: Sequence[SurvivalItem], size: int = 8) -> list[list[SurvivalItem]]:
    """Same-size batches of at most ``size`` items, in input order within each size."""
    by: dict[tuple, list[SurvivalItem]] = {}
    for it in items:
        by.setdefault(tuple(it.clean.shape), []).append(it)
    return [g[i:i + size] for g in by.values() for i in range(0, len(g), size)]


def visibility(item: SurvivalItem, scorers: Scorers) -> dict[str, float]:
    """PSNR, SSIM and the perceptual stand-in (``embed-dist``; ``lpips`` when available) of protected vs clean."""
    names = ("psnr", "ssim") + (("embed-dist",) if scorers.embedder is not None else ()) + \
        (("lpips",) if scorers.standard is not None else ())
    vals = pair_metrics(names, item.protected.float(), item.clean.float(), scorers)
    out = {k: float(v[0]) for k, v in vals.items()}
    out["linf_255"] = float((item.protected - item.clean).abs().max()) * 255
    return out


# ------------------------------------------------------------------------------------------ verdicts
def _headline_edit(rows: list[dict]) -> str:
    edits = [r["edit"] for r in rows if r.get("status") == "ok"]
    return "img2img" if "img2img" in edits else (edits[0] if edits else "recon")


def verdict(item_id: str, rows: list[dict]) -> str:
    """One line: which purifications the protection survives (retained >= 50%), which weaken it and which
    break it (< 20%), on the img2img edit (the reconstruction when the model has no img2img)."""
    edit = _headline_edit(rows)
    mine = [r for r in rows if r["image"] == item_id and r["edit"] == edit and r["purification"] != "none"]
    ok = [r for r in mine if r.get("status") == "ok" and not math.isnan(r["retained"])]
    if not ok:
        reasons = {r.get("reason", "") for r in rows if r["image"] == item_id and r.get("reason")}
        return f"{item_id}: nothing to retain on {edit} ({'; '.join(sorted(reasons)) or 'no rows'})"
    obj = ok[0]["objective"]

    def fmt(r: dict) -> str:
        return f"{r['purification']} {100 * r['retained']:.0f}%"

    parts = []
    for label, sel in (("survives", [r for r in ok if r["retained"] >= SURVIVES]),
                       ("weakened by", [r for r in ok if BROKEN <= r["retained"] < SURVIVES]),
                       ("broken by", [r for r in ok if r["retained"] < BROKEN])):
        if sel:
            parts.append(f"{label} " + ", ".join(fmt(r) for r in sel))
    return f"{item_id} ({ok[0]['method']}, objective {obj}, {edit}): " + "; ".join(parts) + " retained"


# ------------------------------------------------------------------------------------------ outputs
CSV_COLUMNS = ("image", "method", "objective", "edit", "purification", "status", "retained", "retained_obj1",
               "retained_obj2", "effect_obj1", "effect_obj2", "mse_edit_vs_clean_edit", "psnr_edit_vs_clean_edit",
               "mse_edit_vs_input", "psnr_edit_vs_input", "mse_clean_edit_vs_input", "psnr_clean_edit_vs_input",
               "purified_psnr", "vis_psnr", "vis_ssim", "vis_embed_dist", "seconds_per_image", "reason")


def _num(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def summarize(rows: list[dict]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{edit: {purification: {mean, median, min, max, n}}}`` of ``retained`` over the images (NaN left out)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        out.setdefault(r["edit"], {}).setdefault(r["purification"], {"values": []})
        if not math.isnan(r["retained"]):
            out[r["edit"]][r["purification"]]["values"].append(r["retained"])
    for edit in out.values():
        for cell in edit.values():
            v = sorted(cell.pop("values"))
            n = len(v)
            cell.update(n=n, mean=sum(v) / n if n else None, median=(v[n // 2] if n % 2 else
                        (v[n // 2 - 1] + v[n // 2]) / 2) if n else None, min=v[0] if n else None,
                        max=v[-1] if n else None)
    return out


def _pct(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.0f}%"


def summary_markdown(doc: dict) -> str:
    """The summary table (mean retained per purification and edit) and the per-image table and verdicts."""
    lines = [f"# Survival ({doc['model']})", "", f"`{doc['formula']}`", ""]
    summ = doc["summary"]
    edits = list(summ)
    purifs = [p["name"] for p in doc["purifications"]]
    lines += ["| purification | what | " + " | ".join(f"{e}: mean retained (n)" for e in edits) + " |",
              "|---|---|" + "---:|" * len(edits)]
    for p in doc["purifications"]:
        cells = []
        for e in edits:
            c = summ[e].get(p["name"])
            cells.append(f"{_pct(c['mean'])} ({c['n']})" if c else ("unavailable" if p.get("unavailable") else "–"))
        lines.append(f"| {p['name']} | {p['description']} | " + " | ".join(cells) + " |")
    lines += ["", "Per image (" + ", ".join(edits) + "):", "",
              "| image | method | obj. | PSNR / SSIM vs clean | " + " | ".join(purifs) + " |",
              "|---|---|---|---|" + "---:|" * len(purifs)]
    for im in doc["images"]:
        vis = im["visibility"]
        cells = []
        for p in purifs:
            vals = [im["retained"].get(e, {}).get(p) for e in edits]
            cells.append(" / ".join(_pct(v) for v in vals))
        lines.append(f"| {im['id']} | {im['method']} | {im['objective']} | {vis['psnr']:.2f} dB / {vis['ssim']:.3f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Verdicts:", ""] + [f"- {im['verdict']}" for im in doc["images"]] + [""]
    return "\n".join(lines)


def write_heatmap(path: Path, doc: dict) -> Path:
    """``heatmap.png``: retained (%) per image (rows) and purification (columns), one panel per edit."""
    import matplotlib  # deferred: matplotlib is slow to import and needs its backend chosen first

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    edits = list(doc["summary"]) or ["recon"]
    purifs = [p["name"] for p in doc["purifications"]]
    ims = doc["images"]
    fig, axes = plt.subplots(1, len(edits), figsize=(1.0 + 0.62 * len(purifs) * len(edits), 1.2 + 0.38 * len(ims)),
                             squeeze=False)
    for ax, e in zip(axes[0], edits):
        m = np.array([[np.nan if (v := im["retained"].get(e, {}).get(p)) is None else v for p in purifs]
                      for im in ims], dtype=float)
        ax.imshow(np.clip(m, 0, 1), cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, "–" if np.isnan(m[i, j]) else f"{100 * m[i, j]:.0f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(purifs)), purifs, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(ims)), [f"{im['id']} ({im['method']})" for im in ims], fontsize=7)
        ax.set_title(f"retained % ({e})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_html(out: Path, doc: dict, heatmap: Path | None) -> Path:
    """``report.html`` with the "Survival" section (template ``templates/survival.html``)."""
    edits = list(doc["summary"])
    ctx = {
        "css": _CSS, "doc": doc, "edits": edits, "pct": _pct,
        "heatmap": _b64(heatmap) if heatmap is not None and heatmap.exists() else None,
        "summary_rows": [[p["name"], p["description"]] + [
            (f"{_pct(c['mean'])} (n={c['n']})" if (c := doc["summary"][e].get(p["name"])) else
             ("unavailable" if p.get("unavailable") else "–")) for e in edits] for p in doc["purifications"]],
    }
    path = out / "report.html"
    path.write_text(_ENV.get_template("survival.html").render(**ctx))
    return path


@dataclass
class SurvivalSetup:
    """What scores a batch: the target's edits, the purifiers and the visibility scorers, built once from
    :meth:`spec` (plain data, so that Ray actors can rebuild the same setup: :mod:`latentguard.scale.survival`)."""

    model: SurvivalModel
    purifiers: list
    scorers: Scorers
    seed: int

    @classmethod
    def build(cls, spec: dict, models: ModelCache | None = None) -> "SurvivalSetup":
        models = models or ModelCache(spec.get("device", "auto"), spec.get("dtype"))
        try:
            smodel = SurvivalModel.load(models, spec["model"], strength=spec["strength"], steps=spec["edit_steps"],
                                        guidance=spec["guidance"], prompt=spec["prompt"])
        except EditUnavailable as exc:
            raise UserError(str(exc)) from None
        purifiers = [parse_purification(n, models, spec["model"], upscaler=spec.get("upscaler"))
                     for n in spec["purifications"]]
        names = [p.name for p in purifiers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise UserError(f"purification(s) listed twice: {', '.join(sorted(dup))}")
        emb = None
        if spec.get("embedder"):
            try:
                emb = load_embedder(spec["embedder"], device=models.device)
            except Exception:  # noqa: BLE001 - the perceptual stand-in is left out, the rest is reported
                emb = None
        return cls(smodel, purifiers, Scorers(emb), int(spec["seed"]))

    def score(self, batch: Sequence[SurvivalItem],
              on_purifier: Callable[[str], None] | None = None) -> tuple[list[dict], list[dict]]:
        """The rows and the per-image records (visibility, retained, verdict) of one same-size batch: the one
        per-batch function, run by the local loop and by the Ray actors."""
        r = score_batch(batch, self.purifiers, self.model, seed=self.seed, on_purifier=on_purifier)
        rows: list[dict] = []
        images: list[dict] = []
        for it in batch:
            vis = visibility(it, self.scorers)
            mine = [row for row in r if row["image"] == it.id]
            for row in mine:
                row.update(vis_psnr=vis["psnr"], vis_ssim=vis["ssim"], vis_embed_dist=vis.get("embed-dist"))
            rows.extend(mine)
            ret: dict[str, dict[str, Any]] = {}
            for row in mine:
                if row.get("status") == "ok" and row["purification"] != "none":
                    ret.setdefault(row["edit"], {})[row["purification"]] = _num(row["retained"])
            images.append({"id": it.id, "protected": it.protected_path, "clean": it.clean_path,
                           "method": it.method, "objective": it.objective if it.objective in (1, 2) else 2,
                           "visibility": vis, "retained": ret, "verdict": verdict(it.id, mine)})
        return rows, images


#: An engine scores the batches somewhere and yields ``(batch index, rows, images)`` as each batch finishes, in
#: any order; :func:`run_survival` puts them back in input order. ``local_engine`` is the in-process loop.
SurvivalEngine = Callable[..., Iterator[tuple[int, list[dict], list[dict]]]]


def local_engine(jobs: Sequence[Sequence[SurvivalItem]], spec: dict, *, setup: SurvivalSetup | None = None,
                 on_purifier: Callable[[str], None] | None = None) -> Iterator[tuple[int, list[dict], list[dict]]]:
    setup = setup or SurvivalSetup.build(spec)
    for k, batch in enumerate(jobs):
        rows, images = setup.score(batch, on_purifier=on_purifier)
        yield k, rows, images


def run_survival(items: Sequence[SurvivalItem], out_dir: str | Path, *, model: str,
                 purifications: Sequence[str] = DEFAULT_PURIFICATIONS, seed: int = 0, strength: float = 0.5,
                 edit_steps: int = 20, guidance: float = 1.0, prompt: str = "", upscaler: str | None = None,
                 embedder: str | None = "zoo:embed", device: str = "auto", dtype: str | None = None,
                 models: ModelCache | None = None, batch_size: int = 8, progress: bool = True, command: str = "latentguard survival",
                 echo: Callable[[str], None] | None = print, engine: SurvivalEngine | None = None) -> dict:
    """Score every item against every purification and write the outputs into ``out_dir``; returns the JSON doc.

    ``engine``: where the batches are scored (default: this process; ``latentguard.scale.survival.ray_engine``
    runs them on Ray actors). The outputs are the same whichever engine ran, but for the timing columns."""
    if not items:
        raise UserError("no images to score")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = {"model": model, "purifications": list(purifications), "seed": seed, "strength": strength,
            "edit_steps": edit_steps, "guidance": guidance, "prompt": prompt, "upscaler": upscaler,
            "embedder": embedder, "device": device, "dtype": dtype}
    # built here whichever engine runs: bad purifications or models fail at once, in one line, and the doc
    # describes the purifiers and edits from it
    setup = SurvivalSetup.build(spec, models=models or ModelCache(device, dtype))
    config = {k: v for k, v in spec.items() if k not in ("device", "dtype")}
    config["engine"] = getattr(engine, "engine_name", "custom") if engine is not None else "local"
    config["images"] = [{"id": it.id, "protected": it.protected_path, "clean": it.clean_path, "method": it.method}
                        for it in items]
    write_manifest(out, command, config, seed)
    jobs = batches(items, batch_size)
    bar = tqdm(total=len(jobs) * (len(setup.purifiers) + 1), desc="survival", unit="purif", disable=not progress)
    done: dict[int, tuple[list[dict], list[dict]]] = {}
    try:
        if engine is None:
            stream = local_engine(jobs, spec, setup=setup,
                                  on_purifier=lambda n: (bar.set_postfix_str(n, refresh=False), bar.update(1)))
        else:
            stream = engine(jobs, spec)
        for k, rows_k, images_k in stream:
            done[k] = (rows_k, images_k)
            if engine is not None:
                bar.update(len(setup.purifiers) + 1)
            if echo:
                bar.clear()
                for im in images_k:
                    echo(im["verdict"])
    finally:
        bar.close()
    rows = [r for k in sorted(done) for r in done[k][0]]
    images = [im for k in sorted(done) for im in done[k][1]]
    doc = {
        "formula": FORMULA, "model": model, "seed": seed,
        "edits": {k: getattr(e, "params", {}) for k, e in setup.model.edits.items()},
        "edits_unavailable": setup.model.unavailable,
        "thresholds": {"survives": SURVIVES, "broken": BROKEN, "min_effect_obj1": MIN_EFFECT_1},
        "purifications": [{"name": p.name, "description": describe(p), "unavailable": getattr(p, "reason", None)}
                          for p in setup.purifiers if not isinstance(p, NoPurification)],
        "summary": summarize([r for r in rows if r["purification"] != "none"]),
        "images": images,
        "rows": [{k: _num(v) for k, v in r.items()} for r in rows],
    }
    (out / "survival.json").write_text(json.dumps(doc, indent=1))
    with open(out / "survival.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if _num(r.get(k)) is None else r.get(k)) for k in CSV_COLUMNS})
    (out / "summary.md").write_text(summary_markdown(doc))
    heat = write_heatmap(out / "heatmap.png", doc) if images else None
    write_html(out, doc, heat)
    return doc


def collect(paths: Sequence[str]) -> list[Path]:
    """Image files from files, folders and globs (one-line error when there are none)."""
    found = collect_inputs(list(paths))
    return [Path(p) for p in found]
