"""Plots and image grids of a bench run (``plots/*.png``, ``grids/*.png``).

* ``plots/bars_<metric>.png``: each metric per method, grouped by edit family (no purification);
* ``plots/vs_eps_<metric>.png``: each metric vs the budget (when several);
* ``plots/vs_purification_<metric>.png``: each metric vs purification strength;
* ``grids/*.png``: input | protected | [purified] | edit(clean) | edit(protected), one row per image.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from latentguard.ops.grid import make_grid
from latentguard.ops.metrics import REGISTRY as METRICS
from latentguard.evaluate.tables import FAMILY_KEYS, FAMILY_ORDER, method_label, method_order, ordered, summarize
from latentguard.io import load_image, save_image


def _plt():
    import matplotlib  # deferred: matplotlib is slow to import and needs its backend chosen first

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
    sg0 = ordered((s["surrogate"] for s in fam), cfg.get("surrogates", []))[0]
    tg0 = ordered((s["target"] for s in fam), cfg.get("targets", []))[0]
    families = ordered((s["edit_family"] for s in fam), FAMILY_ORDER)
    order = method_order(cfg, rows)
    several = len(cfg.get("budgets", [])) > 1
    written = []
    base = [s for s in fam if s["surrogate"] == sg0 and s["target"] == tg0]
    for m in metrics:
        arrow = METRICS[m].protection_arrow
        # 1. bars: metric per method, grouped by edit family (no purification); "no protection" is left out
        # (its edit is the clean edit: PSNR at the 100 dB cap would flatten every other bar)
        order = [o for o in method_order(cfg, rows) if o[0] != "none"] or method_order(cfg, rows)
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
        kinds = ordered((r.get("purification_kind") for r in rows if r.get("status") == "ok"
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
                    for mm, lab in method_order(cfg, rows):  # with "no protection": the purification alone
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


def write_grids(out: Path, cfg: dict, rows: list[dict]) -> list[dict]:
    """One grid per (method, budget, surrogate, target, edit) at the first purification ('none' if run)."""
    gdir = out / "grids"
    gdir.mkdir(exist_ok=True)
    n_img = int(cfg.get("grid_images", 4))
    if n_img <= 0:
        return []
    ok = [r for r in rows if r.get("status") == "ok" and r.get("files")]
    pur0 = ordered((r["purification"] for r in ok), ["none"])
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
    return re.sub(r"[^A-Za-z0-9.+_\-]+", "-", str(s)) or "x"
