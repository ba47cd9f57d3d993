"""Tables from a bench run's ``results.jsonl``: per-cell summaries, ``summary.csv``, paper-style tables.

``load_results`` keeps the last row per cell key (a resumed run's retries replace its errors);
``summarize`` groups ok rows and takes mean/std over images of every per-image metric and the set metrics
over each group (:func:`latentguard.evaluate.scoring.set_metric`); ``build_tables`` lays them out one
table per (surrogate, target, edit family, purification), method rows in the config's order, metric
columns with the arrow giving the direction of *stronger protection*.
"""

from __future__ import annotations

import csv
import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from latentguard.ops.metrics import REGISTRY as METRICS
from latentguard.evaluate.scoring import set_metric

FAMILY_ORDER = ("recon-mean", "recon-sample", "img2img", "inpaint")
_FMT = {"psnr": "{:.2f}", "ssim": "{:.4f}", "embed-dist": "{:.4f}", "embed-fid": "{:.3f}",
        "embed-clip-score": "{:.4f}", "lpips": "{:.4f}", "fid": "{:.2f}", "clip-score": "{:.4f}"}


def format_value(metric: str, v: float | None) -> str:
    """A table cell: the metric's precision, "–" for a missing or non-finite value."""
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


def method_order(cfg: dict, rows: list[dict]) -> list[tuple[str, str]]:
    """``(method, budget label)`` rows in the config's order (``none`` once, label ``0``), then any others."""
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


def ordered(values: Iterable[str], preferred: Iterable[str]) -> list[str]:
    """The distinct ``values``, those in ``preferred`` first (in its order), then the rest as they come."""
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
                s[m] = set_metric(m, rs, out_dir)
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
    order = method_order(cfg, rows)
    surrogates = ordered((s["surrogate"] for s in fam), cfg.get("surrogates", []))
    targets = ordered((s["target"] for s in fam), cfg.get("targets", []))
    families = ordered((s["edit_family"] for s in fam), FAMILY_ORDER)
    purifs = ordered((s["purification"] for s in fam), ["none"])
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
            lines.append("| " + " | ".join([r["label"], eps] + [format_value(m, r["values"][m]) for m in t["metrics"]]) + " |")
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
