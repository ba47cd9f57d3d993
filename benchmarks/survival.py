"""Survival of protections under purification: ``retained`` per purifier (docs/survival.md).

On the bundled held-out photos (``latentguard.samples``; none of them is in zoo:vae-a's or zoo:ldm-photo's training
data), protected on zoo:vae-a (eps 16/255, 40 steps) and edited by zoo:ldm-photo (VAE reconstruction with the
posterior mean; img2img strength 0.5, 20 steps, prompt "", guidance 1), with the survival formula of
:mod:`latentguard.evaluate.survival` (each method on its own objective, both objectives recorded).

Parts (each merges its section into ``benchmarks/results/survival.json``):

* ``select``: the robust preset's EOT budget, chosen by measurement: pca+ and photoguard-enc at 64 px, plain
  vs EOT over ``ROBUST_EOT`` with several (steps, samples), scored after JPEG q75 and resize x0.5, with the
  protection's time;
* ``main64``: every default purifier at 64 px for pca+, pca+ robust, photoguard-enc, photoguard-enc robust, mist,
  random noise (a control: its tiny effect is what a purifier should remove) and the fast protector when the
  registry has one (``fast``);
* ``main256``: fewer images and purifiers at 256 px (the CPU's budget), the same methods less the controls;
  ``--section main256_all`` holds a 256 px run with every default purifier (the methods it had time for).

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/survival.py --part select
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/survival.py --part main64
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/survival.py --part main256 --images 2
    PYTHONPATH=src python benchmarks/survival.py --table        # the docs table from the JSON
    PYTHONPATH=src python benchmarks/survival.py --write-docs   # ... written into docs/survival.md
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from latentguard import protect  # noqa: E402
from latentguard.evaluate.edits import ModelCache, image_seed  # noqa: E402
from latentguard.evaluate.survival import (  # noqa: E402
    DEFAULT_PURIFICATIONS,
    SurvivalItem,
    SurvivalModel,
    parse_purification,
    score_batch,
)
from latentguard.ops.transforms import ROBUST_EOT  # noqa: E402
from latentguard.samples import sample_images, sample_paths  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "survival.json"
SURROGATE, TARGET = "zoo:vae-a", "zoo:ldm-photo"
EPS = 16 / 255


def _q8(x: torch.Tensor) -> torch.Tensor:
    return (x.float().clamp(0, 1) * 255).round() / 255


def _protect(method: str, preset: str, x: torch.Tensor, models: ModelCache, **kw) -> tuple[torch.Tensor, float]:
    params = dict(kw)
    if method == "mist":
        params["pipe"] = models.pipeline(TARGET, "img2img")
    p = protect.get(method, preset=preset, vae=models.vae(SURROGATE), eps=EPS, **params)
    gen = torch.Generator().manual_seed(image_seed(0, f"{method}|{preset}|{kw}"))
    t0 = time.perf_counter()
    out = p(x, generator=gen)
    return _q8(out.detach()), time.perf_counter() - t0


def _items(x: torch.Tensor, xp: torch.Tensor, ids: list[str], method: str) -> list[SurvivalItem]:
    obj = protect.get_class(method).edit_objective
    return [SurvivalItem(i, xp[k:k + 1], x[k:k + 1], method, obj) for k, i in enumerate(ids)]


def _agg(rows: list[dict]) -> dict:
    """{edit: {purification: {objective: own, retained: mean, retained_obj1, retained_obj2, n, per_image}}}."""
    out: dict = {}
    for r in rows:
        if r.get("status") != "ok" or r["purification"] == "none":
            continue
        c = out.setdefault(r["edit"], {}).setdefault(r["purification"], {"objective": r["objective"], "own": [],
                                                                           "obj1": [], "obj2": [], "purified_psnr": []})
        c["own"].append(r["retained"])
        c["obj1"].append(r["retained_obj1"])
        c["obj2"].append(r["retained_obj2"])
        c["purified_psnr"].append(r["purified_psnr"])
    for e in out.values():
        for k, c in e.items():
            def mean(v):
                v = [a for a in v if not math.isnan(a)]
                return round(sum(v) / len(v), 4) if v else None
            e[k] = {"objective": c["objective"], "retained": mean(c["own"]), "retained_obj1": mean(c["obj1"]),
                    "retained_obj2": mean(c["obj2"]), "n_defined": sum(not math.isnan(a) for a in c["own"]),
                    "n": len(c["own"]), "per_image": [None if math.isnan(a) else round(a, 4) for a in c["own"]],
                    "purified_psnr": mean(c["purified_psnr"])}
    return out


def _unpurified(rows: list[dict]) -> dict:
    """The unpurified effect per edit: PSNR of the protected edit to the clean edit and to the input (means)."""
    out: dict = {}
    for r in rows:
        if r.get("status") == "ok" and r["purification"] == "none":
            c = out.setdefault(r["edit"], {"psnr_edit_vs_clean_edit": [], "psnr_edit_vs_input": [],
                                           "psnr_clean_edit_vs_input": []})
            for k in c:
                c[k].append(r[k])
    return {e: {k: round(sum(v) / len(v), 3) for k, v in c.items()} for e, c in out.items()}


def _merge(section: str, data: dict) -> None:
    doc = json.loads(OUT.read_text()) if OUT.exists() else {}
    doc[section] = data
    doc["machine"] = {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1))


def part_select(args) -> None:
    models = ModelCache("cpu")
    x = sample_images(64, args.images)
    ids = [p.stem for p in sample_paths()[: len(x)]]
    model = SurvivalModel.load(models, TARGET)
    purifs = [parse_purification(n, models, TARGET) for n in ("jpeg-q75", "resize-0.5")]
    cache: dict = {}
    cands = [("plain", {}), ("eot 40x1", {"transforms": ROBUST_EOT, "eot_samples": 1}),
             ("eot 40x2", {"transforms": ROBUST_EOT, "eot_samples": 2}),
             ("eot+identity 40x2", {"transforms": ROBUST_EOT + ",identity", "eot_samples": 2}),
             ("eot 80x1", {"transforms": ROBUST_EOT, "eot_samples": 1, "steps": 80})]
    res: dict = {"images": ids, "size": 64, "purifications": [p.name for p in purifs], "candidates": {}}
    only = set(args.candidates) if args.candidates else None
    for method in args.methods or ("pca+", "photoguard-enc"):
        for label, kw in cands:
            if only and label not in only:
                continue
            xp, secs = _protect(method, "default", x, models, **kw)
            rows = score_batch(_items(x, xp, ids, method), purifs, model, cache=cache)
            entry = {"params": kw, "protect_seconds": round(secs, 2), "retained": _agg(rows),
                     "unpurified": _unpurified(rows)}
            doc = json.loads(OUT.read_text()) if OUT.exists() else {}
            old = doc.get("select")  # other runs of this part (other candidates) are kept
            if old and old.get("images") == ids and old.get("purifications") == res["purifications"]:
                res["candidates"] = old["candidates"]
            res["candidates"].setdefault(method, {})[label] = entry
            print(method, label, f"{secs:.1f}s", json.dumps({e: {p: (v["retained_obj1"], v["retained_obj2"])
                                                                  for p, v in d.items()}
                                                              for e, d in _agg(rows).items()}), flush=True)
            _merge("select", res)


def part_main(args, size: int) -> None:
    models = ModelCache("cpu")
    x = sample_images(size, args.images)
    ids = [p.stem for p in sample_paths()[: len(x)]]
    model = SurvivalModel.load(models, TARGET)
    if args.edits:
        model.edits = {k: v for k, v in model.edits.items() if k in args.edits}
    names = args.purify.split(",") if args.purify else list(DEFAULT_PURIFICATIONS)
    names = [f"gridpure-{args.gridpure_iterations}" if n == "gridpure" and args.gridpure_iterations != 20 else n
             for n in names]
    purifs = [parse_purification(n, models, TARGET) for n in names]
    methods = args.methods or (["pca+:default", "pca+:robust", "photoguard-enc:default", "photoguard-enc:robust",
                                "mist:default"] + (["random-noise:default"] if size <= 64 else []))
    if not args.methods and "fast" in protect.available():  # the fast protector joins the default list
        methods.append("fast:default")
    section = args.section or f"main{size}"
    res: dict = {"images": ids, "size": size, "surrogate": SURROGATE, "target": TARGET, "eps": "16/255",
                 "edits": list(model.edits),
                 "steps": 40, "purifications": [{"name": p.name, "unavailable": getattr(p, "reason", None)}
                                                for p in purifs], "methods": {}}
    cache: dict = {}
    for spec in methods:
        method, _, preset = spec.partition(":")
        xp, secs = _protect(method, preset or "default", x, models)
        t0 = time.perf_counter()
        rows = score_batch(_items(x, xp, ids, method), purifs, model, cache=cache)
        vis = {"psnr": round(float((10 * torch.log10(1 / ((xp - x) ** 2).flatten(1).mean(1))).mean()), 2),
               "linf_255": round(float((xp - x).abs().max()) * 255, 2)}
        entry = {"protect_seconds": round(secs, 2), "score_seconds": round(time.perf_counter() - t0, 1),
                 "visibility": vis, "unpurified": _unpurified(rows), "retained": _agg(rows)}
        print(spec, f"protect {secs:.1f}s", json.dumps({e: {p: v["retained"] for p, v in d.items()}
                                                         for e, d in _agg(rows).items()}), flush=True)
        # re-read the file at each write: several runs of one section (other methods) may write beside this one
        doc = json.loads(OUT.read_text()) if OUT.exists() else {}
        old = doc.get(section)
        if old and old.get("images") == ids and old.get("purifications") == res["purifications"]:
            res["methods"] = {**old["methods"], spec: entry}
        else:
            res["methods"] = {spec: entry}
        _merge(section, res)


def table(doc: dict | None = None) -> str:
    """docs/survival.md's tables from ``survival.json`` (also rendered by ``benchmarks/render_docs.py``)."""
    doc = json.loads(OUT.read_text()) if doc is None else doc
    lines = []
    mains = [k for k in doc if k.startswith("main") and isinstance(doc[k], dict) and "size" in doc[k]]
    for section in sorted(mains, key=lambda k: (doc[k]["size"], k != f"main{doc[k]['size']}", k)):
        d = doc[section]
        purifs = [p["name"] for p in d["purifications"]]
        for edit in [e for e in ("img2img", "recon") if e in d.get("edits", ("img2img", "recon"))]:
            extra = "" if section == f"main{d['size']}" else f", section `{section}`"
            lines += [f"**{d['size']} px, {edit}** ({len(d['images'])} photos{extra}; retained on each method's own "
                      "objective, mean over the photos where it is defined; `obj2` = on Objective 2):", "",
                      "| method | no purification: PSNR(f(x_p), f(x)) | " + " | ".join(purifs) + " |",
                      "|---|---:|" + "---:|" * len(purifs)]
            for spec, m in d["methods"].items():
                ret = m["retained"].get(edit, {})
                cells = []
                for p in purifs:
                    c = ret.get(p)
                    if c is None:
                        cells.append("–")
                        continue
                    own = "–" if c["retained"] is None else f"{100 * c['retained']:.0f}%"
                    if c["objective"] == 1:
                        o2 = "–" if c["retained_obj2"] is None else f"{100 * c['retained_obj2']:.0f}%"
                        own = f"{own} (obj2 {o2})"
                    cells.append(own)
                un = m["unpurified"].get(edit, {})
                lines.append(f"| {spec.replace(':default', '').replace(':', ' ')} | "
                             f"{un.get('psnr_edit_vs_clean_edit', float('nan')):.2f} dB | " + " | ".join(cells) + " |")
            lines.append("")
    if "select" in doc:
        s = doc["select"]
        lines += [f"**Choosing the robust preset** (64 px, {len(s['images'])} photos, retained on Objective 2, "
                  "img2img / recon; protect s = wall seconds for the 4 photos on the loaded CPU; a missing plain or 40x1 "
                  "row is taken from main64's `pca+` / `pca+ robust`, the same protections):", "",
                  "| method | EOT | protect s | " + " | ".join(s["purifications"]) + " |",
                  "|---|---|---:|" + "---:|" * len(s["purifications"])]
        for method, cands in s["candidates"].items():
            m64 = doc.get("main64", {}).get("methods", {})
            if doc.get("main64", {}).get("images") == s["images"]:
                extra = {lab: m64[k] for lab, k in (("plain", f"{method}:default"), ("eot 40x1", f"{method}:robust"))
                         if k in m64 and lab not in cands}
                cands = {**extra, **cands}
            order = ["plain", "eot 40x1", "eot 40x2", "eot+identity 40x2", "eot 80x1"]
            for label, c in sorted(cands.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99):
                cells = []
                for p in s["purifications"]:
                    a = c["retained"].get("img2img", {}).get(p, {}).get("retained_obj2")
                    b = c["retained"].get("recon", {}).get(p, {}).get("retained_obj2")
                    cells.append(" / ".join("–" if v is None else f"{100 * v:.0f}%" for v in (a, b)))
                lines.append(f"| {method} | {label} | {c['protect_seconds']:.1f} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("select", "main64", "main256"))
    ap.add_argument("--images", type=int, default=None, help="number of sample photos (default: all 8)")
    ap.add_argument("--methods", nargs="*", default=None, help="METHOD[:PRESET] ...")
    ap.add_argument("--purify", default=None, help="comma-separated purifications (default: the survival defaults)")
    ap.add_argument("--gridpure-iterations", type=int, default=20)
    ap.add_argument("--section", default=None,
                    help="main: the JSON section to merge into (default main64 / main256); a run with other photos or "
                         "purifications than the section's replaces it")
    ap.add_argument("--edits", nargs="*", default=None, help="main: only these edits (recon, img2img)")
    ap.add_argument("--candidates", nargs="*", default=None, help="select: only these candidate labels")
    ap.add_argument("--table", action="store_true", help="print the docs table from the JSON")
    ap.add_argument("--write-docs", action="store_true", help="write the table into docs/survival.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.table:
        print(table())
        return
    if args.write_docs:
        docs = ROOT / "docs" / "survival.md"
        text = docs.read_text()
        a, b = "<!-- survival:begin -->", "<!-- survival:end -->"
        i, j = text.index(a) + len(a), text.index(b)
        docs.write_text(text[:i] + "\n" + table().rstrip("\n") + "\n" + text[j:])  # as render_docs.py writes it
        return
    if args.part == "select":
        part_select(args)
    elif args.part == "main64":
        part_main(args, 64)
    elif args.part == "main256":
        part_main(args, 256)
    else:
        ap.error("give --part or --table")


if __name__ == "__main__":
    main()
