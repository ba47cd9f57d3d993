"""Tables, plots, image grids and one self-contained HTML page from a bench run's ``results.jsonl``.

``latentguard report DIR`` (and the end of every ``latentguard bench``) reads ``DIR/run.json`` and
``DIR/results.jsonl`` (the last row per cell key wins, so a resumed run's retries replace its errors) and
writes:

* ``summary.csv``: one line per (method, budget, surrogate, target, edit, purification): mean and std over
  images of every metric of edit(protected) vs edit(clean), of edit(protected) vs the input, and of the
  protected image vs the input (``input_psnr``, ``input_linf``), the set metric ``embed-fid`` and ``n``;
* ``table.md``: paper-style tables, one per (surrogate, target, edit family, purification): method rows,
  metric columns, the arrow giving the direction of *stronger protection*, means over images and prompts;
* ``plots/*.png``: each metric per method (bars), vs the budget (when several), vs purification strength;
* ``grids/*.png``: input | protected | [purified] | edit(clean) | edit(protected), one row per image;
* ``report.html``: all of it, images inlined as base64.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from latentguard.ops.metrics import REGISTRY as METRICS
from latentguard.ops.metrics import frechet_distance

FAMILY_ORDER = ("recon-mean", "recon-sample", "img2img", "inpaint")
_FMT = {"psnr": "{:.2f}", "ssim": "{:.4f}", "embed-dist": "{:.4f}", "embed-fid": "{:.3f}",
        "embed-clip-score": "{:.4f}", "lpips": "{:.4f}", "fid": "{:.2f}", "clip-score": "{:.4f}"}


def _fmt(metric: str, v: float | None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    out = _FMT.get(metric, "{:.4g}").format(v)
    return out[1:] if out.startswith("-") and not out.strip("-0.") else out  # "-0.0000" -> "0.0000"


# ------------------------------------------------------------------------------------------ loading
def load_results(out_dir: str | Path) -> tuple[dict, list[dict]]:
    """``(run.json, rows)`` with one row per cell key (the last one written wins)."""
    out = Path(out_dir)
    if not (out / "results.jsonl").exists():
        raise FileNotFoundError(f"{out} has no results.jsonl (is it a `latentguard bench` output folder?)")
    manifest = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    latest: "OrderedDict[str, dict]" = OrderedDict()
    with open(out / "results.jsonl") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            key = row.get("key")
            if key is None:
                continue
            latest.pop(key, None)
            latest[key] = row
    return manifest, list(latest.values())


def _method_order(cfg: dict, rows: list[dict]) -> list[tuple[str, str]]:
    order: list[tuple[str, str]] = []
    labels = [b["label"] for b in cfg.get("budgets", [])]
    for m in cfg.get("methods", []):
        for lab in (labels if m != "none" else ["0"]):
            order.append((m, lab))
    for r in rows:
        k = (r["method"], r["eps_label"])
        if k not in order:
            order.append(k)
    return order


def _ordered(values: Iterable[str], preferred: Iterable[str]) -> list[str]:
    vals = list(dict.fromkeys(values))
    pref = [p for p in preferred if p in vals]
    return pref + [v for v in vals if v not in pref]


# ---------------------------------------------------------------------------------------- summaries
def _stats(vals: list[float]) -> tuple[float, float]:
    v = [x for x in vals if x is not None and math.isfinite(x)]
    if not v:
        return float("nan"), float("nan")
    a = np.asarray(v, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _fid(rows: list[dict]) -> float:
    fp = [r["features"]["edit_protected"] for r in rows if r.get("features")]
    fc = [r["features"]["edit_clean"] for r in rows if r.get("features")]
    if len(fp) < 2:
        return float("nan")
    return frechet_distance(np.asarray(fc), np.asarray(fp))


_SET_CACHE: dict[tuple, float] = {}


def _set_metric(metric: str, rows: list[dict], out_dir: Path | None) -> float:
    """A set metric over a group: ``embed-fid`` from the stored features; ``fid`` (standard weights, when
    available) from the stored PNGs of edit(clean) and edit(protected)."""
    key = (metric, str(out_dir), tuple(sorted(r["key"] for r in rows)))
    if key in _SET_CACHE:
        return _SET_CACHE[key]
    val = float("nan")
    if metric == "embed-fid":
        val = _fid(rows)
    elif metric == "fid" and out_dir is not None and len(rows) >= 2:
        import torch

        from latentguard.ops.metrics import StandardMetrics
        from latentguard.io import load_image

        try:
            real = torch.cat([load_image(out_dir / r["files"]["edit_clean"]) for r in rows])
            fake = torch.cat([load_image(out_dir / r["files"]["edit_protected"]) for r in rows])
            val = StandardMetrics().fid(real, fake)
        except Exception:  # noqa: BLE001 - no weights / missing files: the cell shows "–"
            val = float("nan")
    _SET_CACHE[key] = val
    return val


def summarize(rows: list[dict], metrics: list[str], by: tuple[str, ...], out_dir: Path | None = None) -> list[dict]:
    """Group ok rows by the fields ``by``; mean/std of every per-image metric; set metrics (``embed-fid``,
    ``fid``) over the whole group."""
    groups: "OrderedDict[tuple, list[dict]]" = OrderedDict()
    for r in rows:
        if r.get("status") == "ok":
            groups.setdefault(tuple(r.get(k) for k in by), []).append(r)
    out = []
    for key, rs in groups.items():
        s: dict[str, Any] = dict(zip(by, key))
        s["n"] = len(rs)
        for m in metrics:
            if METRICS[m].kind == "set":
                s[m] = _set_metric(m, rs, out_dir)
                continue
            s[m], s[f"{m}_std"] = _stats([r["metrics"].get(m) for r in rs])
        for m in ("psnr", "ssim", "embed-dist"):
            if any(m in r.get("vs_input", {}) for r in rs):
                s[f"vs_input_{m}"] = _stats([r["vs_input"].get(m) for r in rs])[0]
        for m in ("psnr", "ssim", "linf"):
            s[f"input_{m}"] = _stats([r.get("input", {}).get(m) for r in rs])[0]
        out.append(s)
    return out


EDIT_KEYS = ("method", "eps_label", "surrogate", "target", "edit", "purification")
FAMILY_KEYS = ("method", "eps_label", "surrogate", "target", "edit_family", "purification")


def write_summary_csv(path: Path, summary: list[dict]) -> None:
    cols: list[str] = []
    for s in summary:
        for k in s:
            if k not in cols:
                cols.append(k)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for s in summary:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in s.items()})


# -------------------------------------------------------------------------------------------- tables
def method_label(method: str, eps_label: str, several_budgets: bool) -> str:
    if method == "none":
        return "no protection"
    if method == "random-noise":
        return f"random noise (ε={eps_label})" if several_budgets else "random noise"
    return f"{method} (ε={eps_label})" if several_budgets else method


def build_tables(cfg: dict, rows: list[dict], out_dir: Path | None = None) -> list[dict]:
    """Paper-style tables: ``[{"title", "surrogate", "target", "family", "purification", "columns", "rows"}]``.

    ``columns`` are ``["Method", "ε"] + [f"{metric} {arrow}" ...]`` in the config's metric order; ``rows``
    follow the config's method order (x budgets).
    """
    metrics = list(cfg.get("metrics", []))
    fam = summarize(rows, metrics, FAMILY_KEYS, out_dir)
    several = len(cfg.get("budgets", [])) > 1
    order = _method_order(cfg, rows)
    surrogates = _ordered((s["surrogate"] for s in fam), cfg.get("surrogates", []))
    targets = _ordered((s["target"] for s in fam), cfg.get("targets", []))
    families = _ordered((s["edit_family"] for s in fam), FAMILY_ORDER)
    purifs = _ordered((s["purification"] for s in fam), ["none"])
    tables = []
    for pu in purifs:
        for sg in surrogates:
            for tg in targets:
                for fa in families:
                    sel = {(s["method"], s["eps_label"]): s for s in fam
                           if (s["surrogate"], s["target"], s["edit_family"], s["purification"]) == (sg, tg, fa, pu)}
                    if not sel:
                        continue
                    trows = []
                    for m, lab in order:
                        s = sel.get((m, lab))
                        if s is None:
                            continue
                        trows.append({"method": m, "eps_label": lab, "label": method_label(m, lab, several),
                                      "values": {k: s.get(k) for k in metrics}, "n": s["n"],
                                      "input_psnr": s.get("input_psnr"), "input_linf": s.get("input_linf")})
                    title = f"{fa} on {tg} (surrogate {sg}, purification {pu})"
                    tables.append({"title": title, "surrogate": sg, "target": tg, "family": fa, "purification": pu,
                                   "metrics": metrics,
                                   "columns": ["Method", "ε"] + [f"{m} {METRICS[m].protection_arrow}" for m in metrics],
                                   "rows": trows})
    return tables


def tables_markdown(tables: list[dict], cfg: dict, manifest: dict) -> str:
    lines = [f"# {cfg.get('name', 'bench')}: results", ""]
    lines.append("Each cell: mean over images (and prompts) of edit(protected) vs edit(clean) — the same edit, "
                 "seed and noise applied to the clean photo. Arrows give the direction of *stronger protection* "
                 "(the edit of the protected image is further from the clean edit).")
    lines.append("")
    stand = [m for m in cfg.get("metrics", []) if METRICS[m].stands_in_for]
    if stand:
        lines.append("Stand-ins (computed with the bundled zoo:embed, NOT the standard metrics): " + "; ".join(
            f"`{m}` for {METRICS[m].stands_in_for.upper()} — {METRICS[m].description}" for m in stand) + ".")
        lines.append("")
    std = manifest.get("standard_metrics", {})
    if std:
        lines.append("Standard metrics on this machine: " + "; ".join(
            f"{k.upper()}: {'available' if v['available'] else 'unavailable — ' + v['reason']}" for k, v in std.items()) + ".")
        lines.append("")
    for t in tables:
        lines.append(f"## {t['title']}")
        lines.append("")
        lines.append("| " + " | ".join(t["columns"]) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(t["columns"]) - 1)) + "|")
        for r in t["rows"]:
            eps = "–" if r["method"] == "none" else r["eps_label"]
            lines.append("| " + " | ".join([r["label"], eps] + [_fmt(m, r["values"][m]) for m in t["metrics"]]) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def budget_table(rows: list[dict], cfg: dict) -> list[dict]:
    """Per (method, budget, surrogate): the protected image vs the input (imperceptibility, budget check)."""
    seen: "OrderedDict[tuple, dict]" = OrderedDict()
    for r in rows:
        if r.get("status") != "ok":
            continue
        k = (r["method"], r["eps_label"], r["surrogate"], r["image"])
        seen.setdefault(k, r.get("input", {}))
    groups: "OrderedDict[tuple, list[dict]]" = OrderedDict()
    for (m, lab, sg, _), inp in seen.items():
        groups.setdefault((m, lab, sg), []).append(inp)
    out = []
    for (m, lab, sg), inps in groups.items():
        out.append({"method": m, "eps_label": lab, "surrogate": sg, "n_images": len(inps),
                    "linf_max": max((i.get("linf", float("nan")) for i in inps), default=float("nan")),
                    "psnr": _stats([i.get("psnr") for i in inps])[0], "ssim": _stats([i.get("ssim") for i in inps])[0]})
    return out


# --------------------------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(out: Path, cfg: dict, rows: list[dict]) -> list[Path]:
    """Bars per method, metric vs budget (several budgets), metric vs purification strength."""
    plt = _plt()
    pdir = out / "plots"
    pdir.mkdir(exist_ok=True)
    metrics = list(cfg.get("metrics", []))
    fam = summarize(rows, metrics, FAMILY_KEYS, out)
    if not fam:
        return []
    sg0 = _ordered((s["surrogate"] for s in fam), cfg.get("surrogates", []))[0]
    tg0 = _ordered((s["target"] for s in fam), cfg.get("targets", []))[0]
    families = _ordered((s["edit_family"] for s in fam), FAMILY_ORDER)
    order = _method_order(cfg, rows)
    several = len(cfg.get("budgets", [])) > 1
    written = []
    base = [s for s in fam if s["surrogate"] == sg0 and s["target"] == tg0]
    for m in metrics:
        arrow = METRICS[m].protection_arrow
        # 1. bars: metric per method, grouped by edit family (no purification); "no protection" is left out
        # (its edit is the clean edit: PSNR at the 100 dB cap would flatten every other bar)
        order = [o for o in _method_order(cfg, rows) if o[0] != "none"] or _method_order(cfg, rows)
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(order)), 3.6))
        width = 0.8 / max(1, len(families))
        for j, fa in enumerate(families):
            vals = []
            for mm, lab in order:
                s = next((s for s in base if (s["method"], s["eps_label"], s["edit_family"], s["purification"]) ==
                          (mm, lab, fa, "none")), None)
                vals.append(s[m] if s else float("nan"))
            ax.bar(np.arange(len(order)) + j * width, vals, width, label=fa)
        ax.set_xticks(np.arange(len(order)) + width * (len(families) - 1) / 2)
        ax.set_xticklabels([method_label(mm, lab, several) for mm, lab in order], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"{m} {arrow}")
        ax.set_title(f"{m} of edit(protected) vs edit(clean) — {tg0}, surrogate {sg0}", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = pdir / f"bars_{m}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
        # 2. metric vs eps
        budgets = cfg.get("budgets", [])
        if len(budgets) > 1:
            eps_of = {b["label"]: b["eps"] for b in budgets}
            fig, axes = plt.subplots(1, len(families), figsize=(4 * len(families), 3.4), squeeze=False)
            for ax, fa in zip(axes[0], families):
                for meth in dict.fromkeys(mm for mm, _ in order):
                    pts = sorted((eps_of.get(s["eps_label"], 0.0) * 255, s[m]) for s in base
                                 if s["method"] == meth and s["edit_family"] == fa and s["purification"] == "none")
                    if not pts:
                        continue
                    if meth == "none":
                        ax.axhline(pts[0][1], color="k", ls="--", lw=1, label="no protection")
                    else:
                        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=meth)
                ax.set_xlabel("ε (x/255)")
                ax.set_ylabel(f"{m} {arrow}")
                ax.set_title(fa, fontsize=9)
            axes[0][0].legend(fontsize=7)
            fig.tight_layout()
            p = pdir / f"vs_eps_{m}.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            written.append(p)
        # 3. metric vs purification strength
        kinds = _ordered((r.get("purification_kind") for r in rows if r.get("status") == "ok"
                          and r.get("purification_kind") not in (None, "none")), [])
        if kinds:
            strength = {}
            for r in rows:
                if r.get("status") == "ok":
                    strength[r["purification"]] = (r.get("purification_kind"), r.get("purification_strength"),
                                                   r.get("purification_param"))
            fig, axes = plt.subplots(len(families), len(kinds), figsize=(3.8 * len(kinds), 3.2 * len(families)),
                                     squeeze=False)
            for i, fa in enumerate(families):
                for j, kd in enumerate(kinds):
                    ax = axes[i][j]
                    param = ""
                    for mm, lab in _method_order(cfg, rows):  # with "no protection": the purification alone
                        pts = []
                        for s in base:
                            if (s["method"], s["eps_label"], s["edit_family"]) != (mm, lab, fa):
                                continue
                            info = strength.get(s["purification"])
                            if info and info[0] == kd and info[1] is not None:
                                pts.append((info[1], s[m]))
                                param = info[2]
                        if pts:
                            pts.sort()
                            style = dict(color="k", ls="--") if mm == "none" else {}
                            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                                    label=method_label(mm, lab, several), **style)
                    ax.set_xlabel(f"{kd} {param}")
                    ax.set_ylabel(f"{m} {arrow}")
                    ax.set_title(fa, fontsize=9)
            axes[0][0].legend(fontsize=6)
            fig.tight_layout()
            p = pdir / f"vs_purification_{m}.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            written.append(p)
    return written


# --------------------------------------------------------------------------------------------- grids
def write_grids(out: Path, cfg: dict, rows: list[dict]) -> list[dict]:
    """One grid per (method, budget, surrogate, target, edit) at the first purification ('none' if run)."""
    import torch

    from latentguard.ops.grid import make_grid
    from latentguard.io import load_image, save_image

    gdir = out / "grids"
    gdir.mkdir(exist_ok=True)
    n_img = int(cfg.get("grid_images", 4))
    if n_img <= 0:
        return []
    ok = [r for r in rows if r.get("status") == "ok" and r.get("files")]
    pur0 = _ordered((r["purification"] for r in ok), ["none"])
    if not ok:
        return []
    pur0 = pur0[0]
    groups: "OrderedDict[tuple, list[dict]]" = OrderedDict()
    for r in ok:
        if r["purification"] == pur0:
            groups.setdefault((r["method"], r["eps_label"], r["surrogate"], r["target"], r["edit"]), []).append(r)
    written = []
    for (m, lab, sg, tg, ed), rs in groups.items():
        cols = ["input", "protected"] + (["purified"] if pur0 != "none" else []) + ["edit_clean", "edit_protected"]
        tiles = []
        for r in rs[:n_img]:
            try:
                tiles.extend(load_image(out / r["files"][c])[0] for c in cols)
            except Exception:  # noqa: BLE001 - a missing file leaves the grid out, not the report
                tiles = []
                break
        if not tiles or len({tuple(t.shape) for t in tiles}) != 1:
            continue
        grid = make_grid(torch.stack(tiles), nrow=len(cols), pad=2)
        name = "__".join(_slug(v) for v in (m, lab, sg, tg, ed)) + ".png"
        save_image(grid, gdir / name)
        written.append({"path": gdir / name, "method": m, "eps_label": lab, "surrogate": sg, "target": tg,
                        "edit": ed, "purification": pur0, "columns": cols})
    return written


def _slug(s: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9.+_\-]+", "-", str(s)) or "x"


# ---------------------------------------------------------------------------------------------- html
def _b64(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _html_table(columns: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def write_html(out: Path, cfg: dict, manifest: dict, rows: list[dict], tables: list[dict], plots: list[Path],
               grids: list[dict], max_grids: int = 80) -> Path:
    css = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
           "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
           "font-size:13px;text-align:right}td:first-child,th:first-child{text-align:left}"
           "img{image-rendering:pixelated;margin:4px}.grid img{width:min(100%,520px)}code{background:#f4f4f4}"
           ".note{background:#fff8e1;padding:8px;border-left:4px solid #f0b400}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(cfg.get('name', 'bench'))}"
             f"</title><style>{css}</style></head><body>"]
    parts.append(f"<h1>{html.escape(cfg.get('name', 'bench'))}</h1>")
    parts.append(f"<p>created {html.escape(str(manifest.get('created', '?')))}, git "
                 f"<code>{html.escape(str(manifest.get('git_revision')))}</code>, seed {manifest.get('seed')}, "
                 f"{sum(r.get('status') == 'ok' for r in rows)} ok cells, "
                 f"{sum(r.get('status') == 'error' for r in rows)} errors, "
                 f"{sum(r.get('status') == 'unavailable' for r in rows)} unavailable.</p>")
    parts.append("<p>Each table cell is the mean over images (and prompts) of a metric of edit(protected) against "
                 "edit(clean): the same edit, seed and noise applied to the clean photo. Arrows give the direction of "
                 "<b>stronger protection</b>.</p>")
    notes = []
    for m in cfg.get("metrics", []):
        info = METRICS[m]
        if info.stands_in_for:
            notes.append(f"<li><code>{m}</code>: {html.escape(info.description)}.</li>")
    for k, v in manifest.get("standard_metrics", {}).items():
        notes.append(f"<li>{k.upper()}: {'available' if v['available'] else 'unavailable — ' + html.escape(v['reason'])}"
                     f" (stand-in: <code>{v['stand_in']}</code>).</li>")
    if notes:
        parts.append("<div class='note'><b>Metrics.</b><ul>" + "".join(notes) + "</ul></div>")
    parts.append("<h2>Tables</h2>")
    for t in tables:
        body = [[r["label"], "–" if r["method"] == "none" else r["eps_label"]] +
                [_fmt(m, r["values"][m]) for m in t["metrics"]] for r in t["rows"]]
        parts.append(f"<h3>{html.escape(t['title'])}</h3>" + _html_table(t["columns"], body))
    bt = budget_table(rows, cfg)
    if bt:
        parts.append("<h2>Protected image vs input (budget check)</h2>")
        parts.append(_html_table(["Method", "ε", "surrogate", "images", "max L∞ (x255)", "PSNR", "SSIM"],
                                 [[b["method"], b["eps_label"], b["surrogate"], b["n_images"],
                                   f"{b['linf_max'] * 255:.2f}", _fmt("psnr", b["psnr"]), _fmt("ssim", b["ssim"])]
                                  for b in bt]))
    unav = [r for r in rows if r.get("status") == "unavailable"]
    if unav:
        seen = OrderedDict()
        for r in unav:
            seen.setdefault((r["target"], r["edit"], r["purification"]), r.get("reason", ""))
        parts.append("<h2>Unavailable</h2>" + _html_table(["target", "edit", "purification", "reason"],
                                                          [[a, b, c, d] for (a, b, c), d in list(seen.items())[:100]]))
    errs = [r for r in rows if r.get("status") == "error"]
    if errs:
        parts.append(f"<h2>Errors ({len(errs)} cells)</h2>" + _html_table(
            ["method", "ε", "target", "edit", "purification", "image", "error"],
            [[r["method"], r["eps_label"], r.get("target"), r.get("edit"), r.get("purification"), r.get("image"),
              r.get("error", "")[:300]] for r in errs[:100]]))
    if plots:
        parts.append("<h2>Plots</h2>")
        parts.extend(f"<div><img alt='{html.escape(p.name)}' src='{_b64(p)}'></div>" for p in plots)
    if grids:
        # inline the first edit of each family (recon-mean, recon-sample, the first img2img prompt, ...);
        # every grid is in grids/
        first: dict[str, str] = {}
        for g in grids:
            first.setdefault(g["edit"].split("[")[0], g["edit"])
        shown = [g for g in grids if g["edit"] in first.values()][:max_grids]
        parts.append("<h2>Image grids</h2>")
        for g in shown:
            cap = (f"{method_label(g['method'], g['eps_label'], len(cfg.get('budgets', [])) > 1)} · {g['edit']} on "
                   f"{g['target']} (surrogate {g['surrogate']}, purification {g['purification']}) — columns: "
                   + " | ".join(g["columns"]))
            parts.append(f"<div class='grid'><p>{html.escape(cap)}</p><img src='{_b64(g['path'])}'></div>")
        if len(grids) > len(shown):
            parts.append(f"<p>{len(grids) - len(shown)} more grids (the other prompts) in grids/.</p>")
    parts.append("<h2>Config</h2><pre>" + html.escape(json.dumps(cfg, indent=2, default=str)) + "</pre>")
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path


# ---------------------------------------------------------------------------------------------- main
def build_report(out_dir: str | Path) -> dict[str, Any]:
    """Write summary.csv, table.md, plots/, grids/ and report.html from ``out_dir``'s results."""
    out = Path(out_dir)
    manifest, rows = load_results(out)
    cfg = manifest.get("config")
    if not cfg:
        raise ValueError(f"{out}/run.json has no config; it was not written by `latentguard bench`")
    metrics = list(cfg.get("metrics", []))
    summary = summarize(rows, metrics, EDIT_KEYS, out)
    write_summary_csv(out / "summary.csv", summary)
    tables = build_tables(cfg, rows, out)
    (out / "table.md").write_text(tables_markdown(tables, cfg, manifest))
    (out / "tables.json").write_text(json.dumps(tables, indent=1, default=str))
    plots = write_plots(out, cfg, rows)
    grids = write_grids(out, cfg, rows)
    write_html(out, cfg, manifest, rows, tables, plots, grids)
    return {"rows": len(rows), "tables": len(tables), "plots": len(plots), "grids": len(grids)}
