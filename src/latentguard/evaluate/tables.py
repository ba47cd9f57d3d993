"""Tables from a bench run's ``results.jsonl``: per-cell summaries, ``summary.csv``, paper-style tables.

``load_results`` keeps the last row per cell key (a resumed run's retries replace its errors);
``summarize`` groups ok rows and takes mean/std over images of every per-image metric and the set metrics
over each group (:func:`latentguard.evaluate.scoring.set_metric`); ``build_tables`` lays them out one
table per (surrogate, target, edit family, purification), method rows in the config's order, metric
columns with the arrow giving the direction of *stronger protection*.

Every table shows both of PCA's edit objectives (docs/evaluate.md): **Objective 2**, d(f(x+delta), f(x)) (the
edit of the protected image against the clean edit: "vs clean edit" columns, stronger = further), and
**Objective 1**, d(f(x+delta), x) (against the input: "vs input" columns, stronger = closer). Each method is
scored on the objective its class declares (``edit_objective``: PCA+ 1, PCA- and the baselines 2); its own
columns are marked, and ``beats noise`` compares them with the equal-budget random-noise row.
"""

from __future__ import annotations

import csv
import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from latentguard.evaluate.scoring import set_metric
from latentguard.ops.metrics import REGISTRY as METRICS
from latentguard.protect.registry import get_class

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
        for m in metrics:
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


# ------------------------------------------------------------------------------------------ objectives
def objective_of(method: str | None) -> int | None:
    """The edit objective ``method`` targets (1 or 2, its class's ``edit_objective``); None for the controls
    (``none``, ``random-noise``), for no method and for names that are not registered protections (the strict
    form, which refuses an unknown name, is :func:`latentguard.evaluate.survival.method_objective`)."""
    if not method:
        return None
    try:
        return get_class(method).edit_objective
    except ValueError:
        return None


def input_arrow(metric: str) -> str:
    """The direction of stronger protection on Objective 1 (closer to the input): the reverse of Objective 2's."""
    return "↑" if METRICS[metric].higher_is_better else "↓"


def beats(metric: str, objective: int, value: float | None, noise: float | None) -> bool | None:
    """Whether ``value`` is a stronger protection than the noise row's ``noise`` on ``objective`` (None: missing)."""
    if value is None or noise is None or not (math.isfinite(value) and math.isfinite(noise)):
        return None
    further = value < noise if METRICS[metric].higher_is_better else value > noise  # from the reference
    return further if objective == 2 else (not further and value != noise)


# -------------------------------------------------------------------------------------------- tables
def method_label(method: str, eps_label: str, several_budgets: bool) -> str:
    if method == "none":
        return "no protection"
    if method == "random-noise":
        return f"random noise (ε={eps_label})" if several_budgets else "random noise"
    return f"{method} (ε={eps_label})" if several_budgets else method


def build_tables(cfg: dict, rows: list[dict], out_dir: Path | None = None) -> list[dict]:
    """Paper-style tables: ``[{"title", "surrogate", "target", "family", "purification", "columns", "rows"}]``.

    ``columns``: ``["Method", "ε"]``, then ``f"{metric} vs clean edit {arrow}"`` per metric (Objective 2), then
    ``f"{metric} vs input {arrow}"`` per metric measured against the input (Objective 1; absent when no row has
    it), then ``"objective"`` and ``"beats noise"``. ``rows`` follow the config's method order (x budgets); each
    has ``values`` (Objective 2), ``values_input`` (Objective 1), ``objective`` and ``beats_noise``
    (metric -> bool, on the row's own objective against the random-noise row of the same budget).
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
                    input_metrics = [k for k in metrics if any(f"vs_input_{k}" in s for s in sel.values())]
                    for m, lab in order:
                        s = sel.get((m, lab))
                        if s is None:
                            continue
                        trows.append({"method": m, "eps_label": lab, "label": method_label(m, lab, several),
                                      "values": {k: s.get(k) for k in metrics},
                                      "values_input": {k: s.get(f"vs_input_{k}") for k in input_metrics},
                                      "objective": objective_of(m), "n": s["n"],
                                      "input_psnr": s.get("input_psnr"), "input_linf": s.get("input_linf")})
                    for r in trows:
                        noise = sel.get(("random-noise", r["eps_label"]))
                        obj = r["objective"]
                        r["beats_noise"] = {} if obj is None or noise is None else {
                            k: beats(k, obj, (r["values"] if obj == 2 else r["values_input"]).get(k),
                                     noise.get(k) if obj == 2 else noise.get(f"vs_input_{k}"))
                            for k in (metrics if obj == 2 else input_metrics)}
                    title = f"{fa} on {tg} (surrogate {sg}, purification {pu})"
                    tables.append({"title": title, "surrogate": sg, "target": tg, "family": fa, "purification": pu,
                                   "metrics": metrics, "input_metrics": input_metrics,
                                   "columns": ["Method", "ε"]
                                   + [f"{m} vs clean edit {METRICS[m].protection_arrow}" for m in metrics]
                                   + [f"{m} vs input {input_arrow(m)}" for m in input_metrics]
                                   + ["objective", "beats noise"],
                                   "rows": trows})
    return tables


def row_cells(t: dict, r: dict) -> list[tuple[str, bool]]:
    """A table row as ``(text, own objective)`` cells: the columns of the row's own objective are marked."""
    eps = "–" if r["method"] == "none" else r["eps_label"]
    obj = r.get("objective")
    cells = [(r["label"], False), (eps, False)]
    cells += [(format_value(m, r["values"][m]), obj == 2) for m in t["metrics"]]
    cells += [(format_value(m, r["values_input"].get(m)), obj == 1) for m in t.get("input_metrics", [])]
    cells.append(("–" if obj is None else str(obj), False))
    verdict = r.get("beats_noise") or {}
    known = [v for v in verdict.values() if v is not None]
    cells.append(("–" if not known else ("yes" if all(known) else
                  "no" if not any(known) else "on " + ", ".join(k for k, v in verdict.items() if v)), False))
    return cells


OBJECTIVES_NOTE = ("Two objectives (PCA's official README; docs/evaluate.md): **Objective 2**, d(f(x+δ), f(x)), "
                   "the edit of the protected image against the same edit of the clean image (same seed and noise): "
                   "*vs clean edit* columns, stronger protection = further; **Objective 1**, d(f(x+δ), x), the edit "
                   "against the input: *vs input* columns, stronger protection = closer (the editor is neutralised). "
                   "Each method is scored on the objective it targets (`objective`: PCA+ 1, PCA- and the baselines "
                   "2), its own columns in bold; *beats noise* compares them with the equal-budget random-noise row. "
                   "Arrows give the direction of stronger protection. Cells are means over images (and prompts).")


def tables_markdown(tables: list[dict], cfg: dict, manifest: dict) -> str:
    lines = [f"# {cfg.get('name', 'bench')}: results", ""]
    lines.append(OBJECTIVES_NOTE)
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
            lines.append("| " + " | ".join(f"**{c}**" if own and c != "–" else c for c, own in row_cells(t, r)) + " |")
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
