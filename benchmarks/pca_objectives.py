"""Each protection scored on its own objective, from a ``latentguard bench`` run of examples/pca_table.toml.

    latentguard bench examples/pca_table.toml --out runs/pca_table
    PYTHONPATH=src python benchmarks/pca_objectives.py --from-run runs/pca_table   # writes the compact raw JSON
    PYTHONPATH=src python benchmarks/pca_objectives.py [benchmarks/results/pca_table_objectives.json] [--out t.md]

PCA's official README names two objectives for an LDM edit f and a distance d: **Objective 1**,
min d(f(x + delta), x) (the edit of the protected image stays close to the input: the editor is neutralised;
PCA+'s target), and **Objective 2**, max d(f(x + delta), f(x)) (the edit moves away from the clean edit; PCA-'s
and the baselines' target). Both are measured per image in every bench cell: ``vs_input`` is
d(f(x + delta), x), ``metrics`` is d(f(x + delta), f(x)), with the same seed and noise for both edits. The table
gives PSNR (dB) and SSIM for both, mean over the images, each method's own objective in bold, and the
equal-budget random-noise row every method must beat on its own objective: higher PSNR than noise on
Objective 1, lower PSNR than noise on Objective 2.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _tables import table_cli  # noqa: E402

from latentguard.evaluate.tables import objective_of  # noqa: E402

DEFAULT = Path(__file__).parent / "results" / "pca_table_objectives.json"
EDITS = (("recon-mean", "VAE reconstruction (posterior mean)"), ("img2img[empty]", "img2img, strength 0.5, prompt \"\""))


def compact(run: Path) -> dict:
    """The per-image figures of a bench run folder that the table needs (no features, no file paths)."""
    rows = []
    for line in (run / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("status") != "ok":
            continue
        rows.append({"method": r["method"], "eps": r["eps_label"], "edit": r["edit"], "image": r["image"],
                     "obj1": {k: r["vs_input"][k] for k in ("psnr", "ssim")},
                     "obj2": {k: r["metrics"][k] for k in ("psnr", "ssim")},
                     "clean_edit_vs_input_psnr": r["clean_edit_vs_input"]["psnr"]})
    manifest = json.loads((run / "run.json").read_text())
    return {"source": "latentguard bench examples/pca_table.toml", "config": manifest.get("config"),
            "versions": manifest.get("versions"), "rows": rows}


def render(d: dict) -> str:
    out: list[str] = []
    for edit, title in EDITS:
        groups: "OrderedDict[str, list[dict]]" = OrderedDict()
        for r in d["rows"]:
            if r["edit"] == edit:
                groups.setdefault(r["method"], []).append(r)
        if not groups:
            continue
        mean = {m: {(o, k): float(np.mean([r[o][k] for r in rs])) for o in ("obj1", "obj2") for k in ("psnr", "ssim")}
                for m, rs in groups.items()}
        clean = float(np.mean([r["clean_edit_vs_input_psnr"] for rs in groups.values() for r in rs]))
        noise = mean.get("random-noise")
        out += [f"**{title}** (clean edit vs its input: {clean:.2f} dB; n = {len(next(iter(groups.values())))} images):", "",
                "| method | its objective | Obj. 1 PSNR(f(x+δ), x) ↑ | SSIM ↑ | Obj. 2 PSNR(f(x+δ), f(x)) ↓ | SSIM ↓ | beats noise on its objective |",
                "|---|---|---:|---:|---:|---:|---|"]
        for m, v in mean.items():
            obj = objective_of(m)  # the class's edit_objective (docs/protect.md cites the papers)
            cells = [f"{v[('obj1', 'psnr')]:.2f}", f"{v[('obj1', 'ssim')]:.3f}", f"{v[('obj2', 'psnr')]:.2f}",
                     f"{v[('obj2', 'ssim')]:.3f}"]
            if obj == 1:
                cells[0], cells[1] = f"**{cells[0]}**", f"**{cells[1]}**"
            elif obj == 2:
                cells[2], cells[3] = f"**{cells[2]}**", f"**{cells[3]}**"
            verdict = "–"
            if obj is not None and noise is not None:
                if obj == 1:
                    gap = v[("obj1", "psnr")] - noise[("obj1", "psnr")]
                else:
                    gap = noise[("obj2", "psnr")] - v[("obj2", "psnr")]
                verdict = f"{'yes' if gap > 0 else 'no'} ({gap:+.2f} dB)"
            out.append(f"| {m} | {obj if obj else 'control'} | " + " | ".join(cells) + f" | {verdict} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--from-run"]:
        run = Path(argv[1])
        dest = Path(argv[2]) if len(argv) > 2 else DEFAULT
        dest.write_text(json.dumps(compact(run), indent=1) + "\n")
        print(f"wrote {dest}")
        return
    table_cli(render, __doc__.splitlines()[0], DEFAULT, argv)


if __name__ == "__main__":
    main()
