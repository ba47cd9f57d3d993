"""Does AD's per-pair ranking find the poison? The measurements behind docs/poison.md's ranking tables.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/poison_ranking.py [--out benchmarks/results/poison_ranking.json]

1. **ranking**: the documented commands, run through the CLI (``python -m latentguard``) in a temporary folder::

       latentguard poison fashion-mnist:2000 --kind none --out clean --seed 0
       latentguard poison clean --kind KIND --k 4 --fraction 0.25 --out KIND --seed 0   # dirty-label, concept-swap,
                                                                                          # nightshade (8/255, 50 steps)
       latentguard audit alignment KIND --embedder zoo:embed --method exact --out audit-KIND --seed 0

   and keeps each audit's ``summary.json`` (AD, D_fea, D_stru, the calibration used, precision@P and AUROC of
   the three per-pair scores, plus the mean cosine of the poisoned and the clean pairs from ``pairs.csv``); the same
   audit again with the paper's constants (``--sim-offset 0.2 --sim-scale 4``, key ``paper_constants``); and, for nightshade, the mean relative reduction of the latent distance to the
   anchor over the poisons (``poison.jsonl``: ``dist_before``, ``dist_after``).
2. **latent shift vs budget**: ``poison.poisons.latent_shift`` on zoo:vae-a, the first 20 trouser images of the clean
   set ("pair of trousers") pushed toward its first 20 pullover images, at (8/255, 50), (8/255, 200), (16/255, 50), (32/255, 50)
   (budget, steps): mean relative reduction of ``||mu(x) - mu(anchor)||``.

Render: ``benchmarks/render_docs.py`` (blocks ``poison_ranking``, ``poison_shift``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "poison_ranking.json"
KINDS = {"dirty-label": [], "concept-swap": [], "nightshade": ["--eps", "8/255", "--steps", "50"]}
SHIFTS = ((8, 50), (8, 200), (16, 50), (32, 50))


def _cli(*args: str) -> None:
    out = Path(args[args.index("--out") + 1])
    if (out / "summary.json").is_file() or (out / "captions.csv").is_file():
        print(f"kept {out}", flush=True)  # --work: a finished step of an interrupted run
        return
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    cmd = [sys.executable, "-m", "latentguard", *args]
    print("$ latentguard " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, env=env)


def _audit_summary(audit: Path) -> dict:
    """``summary.json`` plus the mean cosine of the poisoned and of the clean pairs (``pairs.csv``)."""
    summary = json.loads((audit / "summary.json").read_text())
    with (audit / "pairs.csv").open(newline="") as f:
        pairs = list(csv.DictReader(f))
    for flag, name in (("1", "poisoned"), ("0", "clean")):
        cos = [float(p["cosine"]) for p in pairs if p.get("poisoned") == flag]
        summary[f"mean_cosine_{name}"] = sum(cos) / len(cos) if cos else None
    return summary


def ranking(tmp: Path) -> dict:
    _cli("poison", "fashion-mnist:2000", "--kind", "none", "--out", str(tmp / "clean"), "--seed", "0")
    rows = {}
    for kind, extra in KINDS.items():
        _cli("poison", str(tmp / "clean"), "--kind", kind, "--k", "4", "--fraction", "0.25", *extra,
             "--out", str(tmp / kind), "--seed", "0")
        _cli("audit", "alignment", str(tmp / kind), "--embedder", "zoo:embed", "--method", "exact",
             "--out", str(tmp / f"audit-{kind}"), "--seed", "0")
        row = {"summary": _audit_summary(tmp / f"audit-{kind}")}
        # the same audit with the paper's CLIP constants (D_stru does not depend on them)
        _cli("audit", "alignment", str(tmp / kind), "--embedder", "zoo:embed", "--method", "exact",
             "--sim-offset", "0.2", "--sim-scale", "4", "--out", str(tmp / f"audit-{kind}-paper"), "--seed", "0")
        row["paper_constants"] = _audit_summary(tmp / f"audit-{kind}-paper")
        if kind == "nightshade":
            recs = [json.loads(line) for line in (tmp / kind / "poison.jsonl").read_text().splitlines() if line]
            red = [1 - r["dist_after"] / r["dist_before"] for r in recs if r.get("dist_before")]
            row["latent_shift"] = {"n": len(red), "mean_reduction": sum(red) / len(red)}
        rows[kind] = row
    return rows


def shift(tmp: Path) -> list[dict]:
    cached = tmp / "shift.json"
    if cached.is_file():  # --work: computed by an interrupted run
        return json.loads(cached.read_text())
    import torch

    from latentguard.models import load_vae
    from latentguard.poison.dataset import read_dataset
    from latentguard.poison.poisons import NightshadeConfig, latent_shift

    torch.set_num_threads(1)
    ds = read_dataset(tmp / "clean")
    images = ds.load_images()
    idx = {c: [i for i, k in enumerate(ds.concepts) if k == c][:20] for c in ("pair of trousers", "pullover")}
    x, anchors = images[idx["pair of trousers"]], images[idx["pullover"]]
    vae = load_vae("zoo:vae-a")
    out = []
    for eps, steps in SHIFTS:
        _, before, after = latent_shift(vae, x, anchors, NightshadeConfig(eps=eps / 255, steps=steps))
        red = (1 - after / before).mean().item()
        out.append({"eps": f"{eps}/255", "steps": steps, "n": len(x), "mean_reduction": red})
        print(f"latent shift eps {eps}/255 steps {steps}: mean reduction {red:.4f}", flush=True)
    cached.write_text(json.dumps(out, indent=1) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--work", type=Path, default=None, help="keep the datasets and audits here (default: a temporary "
                    "folder); a re-run with the same folder skips the steps already done")
    a = ap.parse_args(argv)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        tmp = a.work or Path(d)
        tmp.mkdir(parents=True, exist_ok=True)
        res = {"benchmark": "poison_ranking", "command": "PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/poison_ranking.py",
               "dataset": "fashion-mnist:2000 (seed 0), --k 4 --fraction 0.25 --seed 0", "embedder": "zoo:embed",
               "ranking": ranking(tmp), "shift": shift(tmp)}
    res["seconds"] = round(time.time() - t0, 1)
    a.out.write_text(json.dumps(res, indent=1, default=float) + "\n")
    print(f"wrote {a.out} ({res['seconds']} s)")


if __name__ == "__main__":
    main()
