"""The preview: what an editor makes of a protected photo, beside the clean one and equal-budget noise.

``latentguard preview PROTECTED... --clean CLEAN... --out DIR`` and ``latentguard protect ... --preview``
write, per image, a side-by-side PNG (``DIR/<id>.png``) and a line of figures (``preview.csv``,
``preview.json``, and one line on stdout). The grid:

=====================  =========  ===========  ===================  ====================================
row                    clean      protected    difference           random noise (same budget)
=====================  =========  ===========  ===================  ====================================
image                  x          x + delta    x + delta - x        clip(x + eps * s), s random signs
VAE reconstruction     f(x)       f(x + delta) f(x + delta) - f(x)  f(noise)
img2img                f(x)       f(x + delta) f(x + delta) - f(x)  f(noise)
=====================  =========  ===========  ===================  ====================================

The differences are amplified so that ``-eps`` / ``+eps`` are black / white (gray: unchanged). The edits are
the evaluation harness's own (:mod:`latentguard.evaluate.edits`: ``recon-mean`` and diffusers img2img, by default
with the bundled photo editor ``zoo:ldm-photo``, strength 0.5, 20 steps, prompt ``""``, no guidance), with one
seed per image shared by the clean, the protected and the noisy photo (a paired comparison); the figures are the
harness's metrics (:func:`latentguard.evaluate.scoring.pair_metrics`: PSNR, SSIM).

Each method is scored on its own objective (``edit_objective`` of the protection; docs/evaluate.md): Objective 1
(PCA+), ``min d(f(x+delta), x)``: the protected photo's edit should stay *closer to the input* than the noisy
photo's (margin = PSNR(f(x+delta), x) - PSNR(f(noise), x)); Objective 2 (PCA- and the baselines),
``max d(f(x+delta), f(x))``: it should land *further from the clean edit* than the noisy photo's edit
(margin = PSNR(f(noise), f(x)) - PSNR(f(x+delta), f(x))). A positive margin (dB) beats noise. Both
objectives' figures are always written.

Large photos are previewed on their central ``size`` crop (a crop, never a resize: the perturbation stays
intact); small ones are shown enlarged by an integer factor (nearest neighbour) so the grid is readable.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from latentguard.evaluate.edits import EditUnavailable, Img2Img, ModelCache, Unavailable, VAEReconstruction, image_seed
from latentguard.evaluate.scoring import Scorers, pair_metrics
from latentguard.evaluate.tables import FAMILY_ORDER, objective_of, ordered
from latentguard.io import atomic_write_text, load_image, read_provenance, save_image
from latentguard.ops.grid import amplified_difference, center_crop, quantize_8bit
from latentguard.protect import get as get_protection

COLUMNS = ("clean", "protected", "difference (amplified)", "random noise, same eps")
METRICS = ("psnr", "ssim")
DEFAULT_EDITOR = "zoo:ldm-photo"
# Grid geometry (pixels): padding between panels, the header (column names) and each row's title strip.
PAD, HEADER, ROW_TITLE = 4, 22, 20
MIN_PANEL = 192  # smaller images are enlarged by an integer factor to at least this (shorter side)


# ------------------------------------------------------------------------------------------ the editor
@dataclass(frozen=True)
class PreviewEditor:
    """The edits a preview applies: the editor's VAE reconstruction and (if it has one) its img2img."""

    spec: str
    edits: tuple[Any, ...]
    vae: Any = field(repr=False)

    @property
    def rows(self) -> list[str]:
        return ["image"] + [edit_title(e) for e in self.edits]


def edit_title(edit: Any) -> str:
    if isinstance(edit, VAEReconstruction):
        return "VAE reconstruction" + (" (sampled latent)" if edit.sample else "")
    if isinstance(edit, Img2Img):
        p = f"prompt {edit.prompt!r}" if edit.prompt else "no prompt"
        return f"img2img, strength {edit.strength:g}, {edit.steps} steps, {p}"
    return edit.name


def load_editor(spec: str = DEFAULT_EDITOR, *, device: str = "auto", dtype: str | None = None,
                strength: float = 0.5, steps: int = 20, prompt: str = "", guidance: float = 1.0,
                models: ModelCache | None = None) -> PreviewEditor:
    """The editor ``spec`` (a pipeline: its VAE and its img2img; a bare VAE: its reconstruction only)."""
    models = models or ModelCache(device, dtype)
    vae = models.vae(spec)
    edits: list[Any] = [VAEReconstruction(vae, sample=False)]
    try:
        pipe = models.pipeline(spec, "img2img")
    except EditUnavailable as exc:
        edits.append(Unavailable("img2img", str(exc)))
    else:
        edits.append(Img2Img(pipe, prompt=prompt, strength=strength, steps=steps, guidance=guidance))
    return PreviewEditor(spec, tuple(edits), vae)


# ------------------------------------------------------------------------------------------ one image
def objective_margin(objective: int | None, fig: dict) -> float | None:
    """dB by which the protected photo beats the noisy one on ``objective`` (positive: it beats noise)."""
    if objective == 1:
        return fig["protected_vs_input"]["psnr"] - fig["noise_vs_input"]["psnr"]
    if objective == 2:
        return fig["noise_vs_clean_edit"]["psnr"] - fig["protected_vs_clean_edit"]["psnr"]
    return None


def _pair(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    m = pair_metrics(METRICS, a, b, Scorers())
    return {k: float(v[0]) for k, v in m.items()}


def _zoom(x: torch.Tensor, k: int) -> torch.Tensor:
    return x if k == 1 else x.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)


def zoom_for(h: int, w: int) -> int:
    """The integer enlargement of an ``h x w`` panel (1 when its shorter side is at least MIN_PANEL)."""
    return max(1, math.ceil(MIN_PANEL / max(1, min(h, w))))


def panel_box(row: int, col: int, h: int, w: int) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of panel ``(row, col)`` in a grid of ``h x w`` panels (already zoomed)."""
    top = HEADER + row * (ROW_TITLE + h + PAD) + ROW_TITLE
    left = PAD + col * (w + PAD)
    return top, left, top + h, left + w


def grid_size(rows: int, h: int, w: int) -> tuple[int, int]:
    """``(height, width)`` of a grid of ``rows`` rows of ``len(COLUMNS)`` panels of ``h x w``."""
    return HEADER + rows * (ROW_TITLE + h + PAD), PAD + len(COLUMNS) * (w + PAD)


def compose_grid(panels: Sequence[Sequence[torch.Tensor]], row_titles: Sequence[str]) -> torch.Tensor:
    """``[3, H, W]`` grid (8-bit values): ``panels[r][c]`` (``[3,h,w]``, one size) under a header with the column
    names, each row under its title strip; text (PIL's default font) never covers a panel."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont  # PIL is the image library of io; text drawing only here

    h, w = panels[0][0].shape[-2:]
    gh, gw = grid_size(len(panels), h, w)
    canvas = torch.ones(3, gh, gw)
    for r, row in enumerate(panels):
        for c, p in enumerate(row):
            t, le, b, ri = panel_box(r, c, h, w)
            canvas[:, t:b, le:ri] = p.detach().float().cpu().clamp(0, 1)
    im = Image.fromarray((canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=13)
    for c, name in enumerate(COLUMNS):
        draw.text((panel_box(0, c, h, w)[1], 4), name, fill=(0, 0, 0), font=font)
    for r, name in enumerate(row_titles):
        draw.text((PAD, panel_box(r, 0, h, w)[0] - ROW_TITLE + 3), name, fill=(60, 60, 60), font=font)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


@dataclass
class PreviewResult:
    """One image's preview: the grid ``[3,H,W]``, the panels ``[rows][4]`` (unzoomed) and the figures."""

    grid: torch.Tensor
    panels: list[list[torch.Tensor]]
    figures: dict[str, Any]


def preview_pair(clean: torch.Tensor, protected: torch.Tensor, editor: PreviewEditor, *, image_id: str = "image",
                 method: str | None = None, eps: float | None = None, seed: int = 0, size: int = 512) -> PreviewResult:
    """The preview of one photo: ``clean`` and ``protected`` are ``[1,3,H,W]`` (or ``[3,H,W]``) in [0,1].

    ``eps`` (the budget of the equal-budget noise; default: the measured L-inf distance on the 8-bit grid),
    ``method`` (whose ``edit_objective`` is scored; ``None``: both objectives reported, no verdict).
    """
    clean = clean[None] if clean.ndim == 3 else clean
    protected = protected[None] if protected.ndim == 3 else protected
    if clean.shape != protected.shape:
        raise ValueError(f"{image_id}: the protected image is {tuple(protected.shape[-2:])}, the clean one "
                         f"{tuple(clean.shape[-2:])}: they must be the same photo at the same size")
    full_hw = tuple(clean.shape[-2:])
    x = center_crop(clean.float().cpu(), size)
    y = center_crop(protected.float().cpu(), size)
    linf = float((y - x).abs().max()) if full_hw == tuple(x.shape[-2:]) else float((protected - clean).abs().max())
    if eps is None:
        eps = max(1.0, math.ceil(linf * 255 - 1e-6)) / 255
    noise_fn = get_protection("random-noise", vae=editor.vae, eps=float(eps))
    gen = torch.Generator().manual_seed(image_seed(seed, "noise|" + image_id))
    z = quantize_8bit(noise_fn(x, generator=gen))
    seeds = [image_seed(seed, image_id)]
    objective = objective_of(method)
    panels = [[x[0], y[0], amplified_difference(y[0] - x[0], eps), z[0]]]
    fig: dict[str, Any] = {
        "image": image_id, "method": method, "objective": objective, "eps": float(eps),
        "eps_255": round(float(eps) * 255, 3), "linf_255": round(linf * 255, 3),
        "width": int(full_hw[1]), "height": int(full_hw[0]),
        "crop": [int(x.shape[-1]), int(x.shape[-2])] if tuple(x.shape[-2:]) != full_hw else None,
        "editor": editor.spec, "protected_vs_input": _pair(y, x), "noise_vs_input": _pair(z, x), "edits": {},
    }
    rows_done = ["image"]
    for e in editor.edits:
        if isinstance(e, Unavailable):
            fig["edits"][e.name] = {"unavailable": e.reason}
            continue
        fx, fy, fz = (quantize_8bit(e(t, seeds=seeds)) for t in (x, y, z))
        f = {
            "edit": e.name, "params": e.params,
            "clean_vs_input": _pair(fx, x), "protected_vs_input": _pair(fy, x), "noise_vs_input": _pair(fz, x),
            "protected_vs_clean_edit": _pair(fy, fx), "noise_vs_clean_edit": _pair(fz, fx),
        }
        margin = objective_margin(objective, f)
        f["objective"] = objective
        f["margin_db"] = None if margin is None else round(margin, 3)
        f["beats_noise"] = None if margin is None else bool(margin > 0)
        fig["edits"][e.name] = f
        panels.append([fx[0], fy[0], amplified_difference(fy[0] - fx[0], eps), fz[0]])
        rows_done.append(edit_title(e))
    k = zoom_for(*x.shape[-2:])
    titles = [rows_done[0] + (f" (central {x.shape[-1]}x{x.shape[-2]} crop)" if fig["crop"] else "")] + rows_done[1:]
    grid = compose_grid([[_zoom(p, k) for p in row] for row in panels], titles)
    fig["zoom"] = k
    return PreviewResult(grid, panels, fig)


# ------------------------------------------------------------------------------------------ text and files
def _obj_text(objective: int | None) -> str:
    if objective == 1:
        return "Objective 1: the edit stays close to the input"
    if objective == 2:
        return "Objective 2: the edit moves away from the clean edit"
    return "no objective (a control)"


def summary_line(fig: dict) -> str:
    """One line of figures per image (printed by the CLI)."""
    obj = fig["objective"]
    parts = [f"{fig['image']}: {fig['method'] or 'unknown method'} ({_obj_text(obj)}), "
             f"eps {fig['eps_255']:g}/255, protected vs input {fig['protected_vs_input']['psnr']:.2f} dB"]
    for name, f in fig["edits"].items():
        if "unavailable" in f:
            parts.append(f"{name}: unavailable")
            continue
        if obj == 1:
            a, b, what = f["protected_vs_input"]["psnr"], f["noise_vs_input"]["psnr"], "from the input"
        else:
            a, b, what = f["protected_vs_clean_edit"]["psnr"], f["noise_vs_clean_edit"]["psnr"], "from the clean edit"
        verdict = ("" if f["beats_noise"] is None else
                   f" -> {'beats' if f['beats_noise'] else 'does not beat'} noise ({f['margin_db']:+.2f} dB)")
        parts.append(f"{name}: protected {a:.2f} dB vs noise {b:.2f} dB {what}{verdict}")
    return " | ".join(parts)


CSV_COLUMNS = ("image", "method", "objective", "eps_255", "linf_255", "width", "height", "editor", "edit",
               "protected_vs_input_psnr", "noise_vs_input_psnr",
               "edit_clean_vs_input_psnr", "edit_protected_vs_input_psnr", "edit_noise_vs_input_psnr",
               "edit_protected_vs_clean_edit_psnr", "edit_noise_vs_clean_edit_psnr",
               "edit_clean_vs_input_ssim", "edit_protected_vs_input_ssim", "edit_noise_vs_input_ssim",
               "edit_protected_vs_clean_edit_ssim", "edit_noise_vs_clean_edit_ssim",
               "margin_db", "beats_noise", "grid")


def csv_rows(fig: dict) -> list[dict]:
    """``preview.csv``'s rows of one image: one per edit."""
    out = []
    for name, f in fig["edits"].items():
        if "unavailable" in f:
            continue
        r = {k: fig.get(k) for k in ("image", "method", "objective", "eps_255", "linf_255", "width", "height", "editor")}
        r.update(edit=name, protected_vs_input_psnr=fig["protected_vs_input"]["psnr"],
                 noise_vs_input_psnr=fig["noise_vs_input"]["psnr"], margin_db=f["margin_db"],
                 beats_noise=f["beats_noise"], grid=fig.get("grid"))
        for m in METRICS:
            for src, dst in (("clean_vs_input", "edit_clean_vs_input"), ("protected_vs_input", "edit_protected_vs_input"),
                             ("noise_vs_input", "edit_noise_vs_input"),
                             ("protected_vs_clean_edit", "edit_protected_vs_clean_edit"),
                             ("noise_vs_clean_edit", "edit_noise_vs_clean_edit")):
                r[f"{dst}_{m}"] = round(f[src][m], 4)
        out.append(r)
    return out


def pair_inputs(protected: Sequence[Path], clean: Sequence[Path]) -> list[tuple[Path, Path]]:
    """``(protected, clean)`` pairs: by file stem when every protected file's stem (or, for ``latentguard protect``'s
    ``<folder>_<stem>`` names, its tail) names one clean file; else by position when the counts agree."""
    by_stem: dict[str, list[Path]] = {}
    for c in clean:
        by_stem.setdefault(c.stem, []).append(c)
    pairs = []
    for p in protected:
        hit = by_stem.get(p.stem)
        if hit is None:
            cands = [s for s in by_stem if p.stem.endswith("_" + s)]
            hit = by_stem[max(cands, key=len)] if cands else None
        if hit is None or len(hit) != 1:
            break
        pairs.append((p, hit[0]))
    else:
        return pairs
    if len(protected) == len(clean):
        return list(zip(protected, clean))
    raise ValueError(f"cannot pair {len(protected)} protected image(s) with {len(clean)} clean one(s): give them "
                     "in the same order, or with the same file names")


def run_preview(pairs: Sequence[tuple[Path, Path]], out: str | Path, *, editor: PreviewEditor,
                method: str | None = None, eps: float | None = None, seed: int = 0, size: int = 512,
                progress: bool = True, echo: Any = print) -> dict:
    """Preview every ``(protected, clean)`` pair into ``out``: ``<id>.png``, ``preview.csv``, ``preview.json``.

    ``method`` / ``eps`` default to each protected PNG's provenance (``latentguard protect`` writes them).
    Returns ``{"ok": n, "error": n, "figures": [...]}``; an unreadable pair is reported and skipped.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures, errors, used = [], [], set()
    for prot_path, clean_path in tqdm(pairs, desc="preview", unit="img", disable=not progress, leave=False):
        ident = Path(prot_path).stem
        k = 2
        while ident in used:
            ident, k = f"{Path(prot_path).stem}-{k}", k + 1
        used.add(ident)
        try:
            prov = read_provenance(prot_path) if str(prot_path).lower().endswith(".png") else {}
            m = method or prov.get("method")
            e = eps if eps is not None else prov.get("eps")
            res = preview_pair(load_image(clean_path), load_image(prot_path), editor, image_id=ident, method=m,
                               eps=None if e is None else float(e), seed=seed, size=size)
        except (ValueError, OSError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            echo(f"latentguard: preview failed for {prot_path}: {msg}")
            errors.append({"protected": str(prot_path), "clean": str(clean_path), "error": msg})
            continue
        grid_path = out / f"{ident}.png"
        save_image(res.grid, grid_path, metadata={"preview_of": str(prot_path), "clean": str(clean_path)})
        res.figures.update(protected_file=str(prot_path), clean_file=str(clean_path), grid=grid_path.name)
        figures.append(res.figures)
        echo(summary_line(res.figures))
    with open(out / "preview.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for f in figures:
            w.writerows(csv_rows(f))
    atomic_write_text(out / "preview.json", json.dumps({"images": figures, "errors": errors}, indent=1) + "\n")
    return {"ok": len(figures), "error": len(errors), "figures": figures, "errors": errors}


def preview_protect_folder(out: str | Path, *, editor: PreviewEditor, seed: int = 0, size: int = 512,
                           progress: bool = True, echo: Any = print) -> dict:
    """Preview what ``latentguard protect`` wrote into ``out`` (its ``results.jsonl`` ok rows) into ``out/preview``;
    the method and budget come from its ``run.json``."""
    out = Path(out)
    manifest = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    cfg = manifest.get("config", {})
    resolved = cfg.get("resolved", {})
    rows: dict[str, dict] = {}
    with open(out / "results.jsonl") as fh:
        for line in fh:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if r.get("status") == "ok" and r.get("output"):
                rows[r.get("key", r["output"])] = r
    pairs = [(Path(r["output"]), Path(r["input"])) for r in rows.values()]
    return run_preview(pairs, out / "preview", editor=editor, method=cfg.get("method"), eps=resolved.get("eps"),
                       seed=seed, size=size, progress=progress, echo=echo)


# ------------------------------------------------------------------------------------------ from a bench run
_CONTROLS = ("none", "random-noise")


def _bench_edit_title(row: dict) -> str:
    p = row.get("edit_params") or {}
    if row["edit"].startswith("recon"):
        return "VAE reconstruction" + (" (sampled latent)" if p.get("sample") else "")
    fam = row["edit"].split("[")[0]
    prompt = p.get("prompt")
    what = f"prompt {prompt!r}" if prompt else "no prompt"
    return f"{fam}, strength {p.get('strength', '?')}, {p.get('steps', '?')} steps, {what}"


def bench_previews(out: str | Path, cfg: dict, rows: list[dict]) -> list[dict]:
    """Preview grids of a ``latentguard bench`` run, from the images it saved (nothing is recomputed).

    For every protection method with a ``random-noise`` row of the same budget, surrogate and target (and
    purification ``none``): per image (the first ``grid_images``) the grid of :func:`preview_pair` (image row, then
    the first edit of each family the run made) into ``out/preview/``, and its figures from the rows (``vs_input``:
    Objective 1, ``metrics``: Objective 2). Returns ``[{"path", "caption", "line", "figures"}]``.
    """
    out = Path(out)
    ok = [r for r in rows if r.get("status") == "ok" and r.get("purification") == "none"]
    idx = {(r["method"], r["eps_label"], r["surrogate"], r["target"], r["edit"], r["image"]): r for r in ok}
    families: dict[str, str] = {}
    for e in ordered([r["edit"] for r in ok], []):
        families.setdefault(e.split("[")[0], e)
    edits = [families[f] for f in ordered(list(families), FAMILY_ORDER)]
    images = ordered([r["image"] for r in ok], [])[: int(cfg.get("grid_images", 4) or 4)]
    cells = ordered([(r["method"], r["eps_label"], r["surrogate"], r["target"]) for r in ok
                     if r["method"] not in _CONTROLS], [])
    done = []
    for method, eps_label, surrogate, target in cells:
        objective = objective_of(method)
        for image in images:
            mine = [idx.get((method, eps_label, surrogate, target, e, image)) for e in edits]
            noise = [idx.get(("random-noise", eps_label, surrogate, target, e, image)) for e in edits]
            pairs = [(e, a, b) for e, a, b in zip(edits, mine, noise) if a is not None and b is not None]
            if not pairs:
                continue
            first, nfirst = pairs[0][1], pairs[0][2]
            eps = float(first["eps"])
            x, y, z = (load_image(out / f)[0] for f in (first["files"]["input"], first["files"]["protected"],
                                                        nfirst["files"]["protected"]))
            panels = [[x, y, amplified_difference(y - x, eps), z]]
            titles = ["image"]
            fig: dict[str, Any] = {
                "image": image, "method": method, "objective": objective, "eps": eps, "eps_255": round(eps * 255, 3),
                "linf_255": round(float(first["input"]["linf"]) * 255, 3), "editor": target, "surrogate": surrogate,
                "protected_vs_input": {m: first["input"][m] for m in METRICS if m in first["input"]},
                "noise_vs_input": {m: nfirst["input"][m] for m in METRICS if m in nfirst["input"]}, "edits": {},
            }
            for e, a, b in pairs:
                fx, fy, fz = (load_image(out / f)[0] for f in (a["files"]["edit_clean"], a["files"]["edit_protected"],
                                                               b["files"]["edit_protected"]))
                panels.append([fx, fy, amplified_difference(fy - fx, eps), fz])
                titles.append(_bench_edit_title(a))
                f = {"edit": e, "clean_vs_input": a["clean_edit_vs_input"], "protected_vs_input": a["vs_input"],
                     "noise_vs_input": b["vs_input"], "protected_vs_clean_edit": a["metrics"],
                     "noise_vs_clean_edit": b["metrics"], "objective": objective}
                margin = objective_margin(objective, f)
                f["margin_db"] = None if margin is None else round(margin, 3)
                f["beats_noise"] = None if margin is None else bool(margin > 0)
                fig["edits"][e] = f
            k = zoom_for(*x.shape[-2:])
            grid = compose_grid([[_zoom(p, k) for p in row] for row in panels], titles)
            name = "_".join(s.replace("/", "-").replace(":", "-") for s in (method, eps_label, surrogate, target, image))
            path = out / "preview" / f"{name}.png"
            save_image(grid, path)
            fig["grid"] = str(path.relative_to(out))
            done.append({"path": path, "figures": fig, "line": summary_line(fig),
                         "caption": f"{image}: {method} at {eps_label} (surrogate {surrogate}) against random noise "
                                    f"of the same budget; editor {target}"})
    if done:
        atomic_write_text(out / "preview" / "preview.json", json.dumps([d["figures"] for d in done], indent=1) + "\n")
    return done
