"""The purification sweep of docs/evaluate.md, from a ``latentguard bench`` run of examples/pca_purify.toml.

    OMP_NUM_THREADS=1 latentguard bench examples/pca_purify.toml --out runs/pca_purify
    PYTHONPATH=src python benchmarks/pca_purify.py --from-run runs/pca_purify [more run folders]   # the raw JSON
    PYTHONPATH=src python benchmarks/pca_purify.py [benchmarks/results/pca_purify.json] [--out t.md]

Cells: PSNR (dB) / SSIM of edit(purified protected photo) vs edit(clean photo, unpurified), mean over the images,
one table per edit, methods as rows and purifications as columns (in the run's order). The *no protection* row is
the purification's own effect on the edit. ``benchmarks/render_docs.py`` renders it into the doc (block
``pca_purify``).
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _tables import table_cli  # noqa: E402

DEFAULT = Path(__file__).parent / "results" / "pca_purify.json"
LABELS = {"random-noise": "random noise", "none": "no protection"}


def compact(*runs: Path) -> dict:
    """The per-image figures the table needs (no features, no file paths), and the cell counts. Several run folders
    (the same config split by method over processes) are merged; the first one's ``run.json`` gives the config."""
    rows, status = [], {}
    lines = [line for run in runs for line in (run / "results.jsonl").read_text().splitlines() if line]
    for line in lines:
        r = json.loads(line)
        status[r["status"]] = status.get(r["status"], 0) + 1
        if r.get("status") != "ok":
            continue
        rows.append({"method": r["method"], "eps": r["eps_label"], "edit": r["edit"],
                     "purification": r["purification"], "image": r["image"],
                     "psnr": r["metrics"]["psnr"], "ssim": r["metrics"]["ssim"]})
    manifest = json.loads((runs[0] / "run.json").read_text())
    return {"source": "latentguard bench examples/pca_purify.toml", "config": manifest.get("config"),
            "versions": manifest.get("versions"), "runs": [
                {"methods": json.loads((r / "run.json").read_text()).get("config", {}).get("methods"),
                 "created": json.loads((r / "run.json").read_text()).get("created")} for r in runs],
            "status_counts": status, "rows": rows}


def _psnr(v: float) -> str:
    return "100" if v >= 100 else f"{v:.2f}"


def render(d: dict) -> str:
    cells: "OrderedDict[str, OrderedDict[str, OrderedDict[str, list]]]" = OrderedDict()
    purifs: "OrderedDict[str, None]" = OrderedDict()
    for r in d["rows"]:
        purifs[r["purification"]] = None
        cells.setdefault(r["edit"], OrderedDict()).setdefault(r["method"], OrderedDict()).setdefault(
            r["purification"], []).append(r)
    out: list[str] = []
    cols = list(purifs)
    for edit, per_method in cells.items():
        out += [f"| {edit} | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for method, per_p in per_method.items():
            vals = []
            for p in cols:
                rs = per_p.get(p, [])
                vals.append(f"{_psnr(float(np.mean([r['psnr'] for r in rs])))}/{np.mean([r['ssim'] for r in rs]):.3f}"
                            if rs else "-")
            out.append(f"| {LABELS.get(method, method)} | " + " | ".join(vals) + " |")
        out.append("")
    n = len({r["image"] for r in d["rows"]})
    counts = ", ".join(f"{v} {k}" for k, v in sorted(d.get("status_counts", {}).items()))
    out.append(f"Means over {n} images; cells: {counts}.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--from-run"]:  # --from-run RUN [RUN ...] [DEST.json]
        args = [Path(a) for a in argv[1:]]
        dest = args.pop() if args and args[-1].suffix == ".json" else DEFAULT
        dest.write_text(json.dumps(compact(*args), indent=1) + "\n")
        print(f"wrote {dest}")
        return
    table_cli(render, __doc__.splitlines()[0], DEFAULT, argv)


if __name__ == "__main__":
    main()
