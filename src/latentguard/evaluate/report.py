"""Tables, plots, image grids and one self-contained HTML page from a bench run's ``results.jsonl``.

``latentguard report DIR`` (and the end of every ``latentguard bench``) reads ``DIR/run.json`` and
``DIR/results.jsonl`` (the last row per cell key wins, so a resumed run's retries replace its errors) and
writes:

* ``summary.csv``: one line per (method, budget, surrogate, target, edit, purification): mean and std over
  images of every metric of edit(protected) vs edit(clean), of edit(protected) vs the input, and of the
  protected image vs the input (``input_psnr``, ``input_linf``), the set metric ``embed-fid`` and ``n``;
* ``table.md`` and ``tables.json``: paper-style tables (:mod:`latentguard.evaluate.tables`), one per
  (surrogate, target, edit family, purification): method rows, metric columns, the arrow giving the
  direction of *stronger protection*, means over images and prompts;
* ``plots/*.png`` and ``grids/*.png`` (:mod:`latentguard.evaluate.plots`);
* ``preview/*.png``: per image and protection, the preview grid (:func:`latentguard.evaluate.preview.bench_previews`:
  clean | protected | difference | equal-budget noise, and the edits of each), shown first in the report;
* ``report.html``: all of it, images inlined as base64, from the jinja2 template
  ``latentguard/evaluate/templates/report.html``.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import jinja2

from latentguard.ops.metrics import REGISTRY as METRICS
from latentguard.evaluate.plots import write_grids, write_plots
from latentguard.evaluate.preview import bench_previews
from latentguard.evaluate.tables import (
    EDIT_KEYS,
    OBJECTIVES_NOTE,
    budget_table,
    build_tables,
    format_value,
    load_results,
    method_label,
    row_cells,
    summarize,
    tables_markdown,
    write_summary_csv,
)

_CSS = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "font-size:13px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "img{image-rendering:pixelated;margin:4px}.grid img{width:min(100%,520px)}code{background:#f4f4f4}"
        ".note{background:#fff8e1;padding:8px;border-left:4px solid #f0b400}"
        ".preview img{image-rendering:auto;max-width:100%;margin:4px 0}.preview p{text-align:left;font-size:13px}"
        ".wide{max-width:100%;overflow-x:auto}")

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("latentguard.evaluate", "templates"),
                          autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                          keep_trailing_newline=False)


def _b64(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def write_html(out: Path, cfg: dict, manifest: dict, rows: list[dict], tables: list[dict], plots: list[Path],
               grids: list[dict], max_grids: int = 80, previews: list[dict] | None = None) -> Path:
    """``out/report.html``: the run's tables, budget check, unavailable and failed cells, plots and grids."""
    several = len(cfg.get("budgets", [])) > 1
    shown: list[dict] = []
    if grids:
        # inline the first edit of each family (recon-mean, recon-sample, the first img2img prompt, ...);
        # every grid is in grids/
        first: dict[str, str] = {}
        for g in grids:
            first.setdefault(g["edit"].split("[")[0], g["edit"])
        shown = [g for g in grids if g["edit"] in first.values()][:max_grids]
    unavailable: "OrderedDict[tuple, str]" = OrderedDict()
    for r in rows:
        if r.get("status") == "unavailable":
            unavailable.setdefault((r["target"], r["edit"], r["purification"]), r.get("reason", ""))
    errs = [r for r in rows if r.get("status") == "error"]
    context = {
        "name": cfg.get("name", "bench"),
        "css": _CSS,
        "created": str(manifest.get("created", "?")),
        "git_revision": str(manifest.get("git_revision")),
        "seed": manifest.get("seed"),
        "n_ok": sum(r.get("status") == "ok" for r in rows),
        "n_error": len(errs),
        "n_unavailable": sum(r.get("status") == "unavailable" for r in rows),
        "metric_notes": [(m, METRICS[m].description) for m in cfg.get("metrics", []) if METRICS[m].stands_in_for],
        "standard_notes": [(k.upper(), v) for k, v in manifest.get("standard_metrics", {}).items()],
        "objectives_note": OBJECTIVES_NOTE,
        "tables": [{"title": t["title"], "columns": t["columns"], "body": [row_cells(t, r) for r in t["rows"]]}
                   for t in tables],
        "budget_rows": [[b["method"], b["eps_label"], b["surrogate"], b["n_images"], f"{b['linf_max'] * 255:.2f}",
                         format_value("psnr", b["psnr"]), format_value("ssim", b["ssim"])]
                        for b in budget_table(rows, cfg)],
        "unavailable": [[a, b, c, d] for (a, b, c), d in list(unavailable.items())[:100]],
        "n_error_rows": len(errs),
        "errors": [[r["method"], r["eps_label"], r.get("target"), r.get("edit"), r.get("purification"), r.get("image"),
                    r.get("error", "")[:300]] for r in errs[:100]],
        "plots": [{"name": p.name, "src": _b64(p)} for p in plots],
        "grids": [{"caption": f"{method_label(g['method'], g['eps_label'], several)} · {g['edit']} on {g['target']} "
                              f"(surrogate {g['surrogate']}, purification {g['purification']}) — columns: "
                              + " | ".join(g["columns"]),
                   "src": _b64(g["path"])} for g in shown],
        "more_grids": len(grids) - len(shown) if grids else 0,
        "config_json": json.dumps(cfg, indent=2, default=str),
        "previews": [{"caption": p["caption"], "line": p["line"], "src": _b64(p["path"])} for p in (previews or [])],
    }
    path = out / "report.html"
    path.write_text(_ENV.get_template("report.html").render(**context))
    return path


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
    previews = bench_previews(out, cfg, rows)
    write_html(out, cfg, manifest, rows, tables, plots, grids, previews=previews)
    return {"rows": len(rows), "tables": len(tables), "plots": len(plots), "grids": len(grids),
            "previews": [p["line"] for p in previews]}
