"""Calibrate AD's image-text similarity for zoo:embed from its own clean and mismatched pair cosines.

AD (arXiv:2409.12314) maps each pair's cosine to ``s = clip((cos - offset) * scale, 0, 1)``; the paper's
0.2 and 4 fit CLIP on LAION. For an embedder with another cosine range they saturate (every clean pair
at 1, every mismatched one at 0), and D_fea degenerates into the mismatched fraction. The rule here:

* calibration draw: 2,000 class-balanced Fashion-MNIST *test* images (the embedder trained on the train
  split), captions from random templates (seed 0). Clean pair = the image with its own caption;
  mismatched pair = the image with the same template naming another class (uniform over the other 9).
* ``offset = q_05(mismatched cosines)``, ``scale = 1 / (q_95(clean cosines) - offset)``: only about 5% of
  mismatched pairs clip at 0 and about 5% of clean pairs at 1, and the two populations sit at the two ends.
* held-out check: a second, disjoint draw of 2,000 test images (seed 1): fraction of pairs clipped at 0 and
  at 1 and mean ``s`` for clean and mismatched pairs, under the paper's constants and under the calibration.

Writes ``src/latentguard/zoo/weights/embed/ad_calibration.json`` (what :func:`latentguard.poison.embed.
similarity_calibration` reads for ``zoo:embed``) and the full report ``benchmarks/results/ad_calibration.json``.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/calibrate_ad_embed.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/calibrate_ad_embed.py"
Q_MISMATCHED, Q_CLEAN = 0.05, 0.95


def pair_cosines(embedder, n: int, seed: int, exclude=None) -> dict:
    """Clean and mismatched cosines of one class-balanced draw of the test split."""
    from latentguard.poison.dataset import fashion_pairs
    from latentguard.poison.embed import embed_pairs
    from latentguard.io.datasets import CAPTION_TEMPLATES, FASHION_CLASSES

    x, caps, _, lab, ids = fashion_pairs(n, split="test", seed=seed, template="random", exclude=exclude)
    rng = np.random.default_rng(1000 + seed)
    other = (lab + rng.integers(1, len(FASHION_CLASSES), len(lab))) % len(FASHION_CLASSES)
    wrong = []
    for cap, a, b in zip(caps, lab, other):
        tmpl = next(t for t in CAPTION_TEMPLATES if t.format(FASHION_CLASSES[int(a)]) == cap)
        wrong.append(tmpl.format(FASHION_CLASSES[int(b)]))
    u, v = embed_pairs(embedder, x, caps)
    _, w = embed_pairs(embedder, x, wrong)
    return {"ids": ids, "clean": (u * v).sum(1).double().numpy(), "mismatched": (u * w).sum(1).double().numpy()}


def clip_report(cos: np.ndarray, offset: float, scale: float) -> dict:
    s = (cos - offset) * scale
    return {"clipped_at_0": round(float((s <= 0).mean()), 4), "clipped_at_1": round(float((s >= 1).mean()), 4),
            "mean_s": round(float(np.clip(s, 0, 1).mean()), 4)}


def quantiles(c: np.ndarray) -> dict:
    return {f"q{int(q * 100):02d}": round(float(np.quantile(c, q)), 4) for q in (0.01, 0.05, 0.5, 0.95, 0.99)}


def main(argv: list[str] | None = None) -> int:
    from latentguard.poison.alignment import SIM_OFFSET, SIM_SCALE
    from latentguard.poison.embed import CALIBRATION_FILE, load_pair_embedder
    from latentguard.models.registry import model_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="pairs per draw (class-balanced)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ad_calibration.json"))
    ap.add_argument("--no-write-weights", action="store_true", help="do not (re)write the embedder's calibration file")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    folder = model_dir("embed")
    emb = load_pair_embedder("zoo:embed")
    cal = pair_cosines(emb, a.n, seed=0)
    held = pair_cosines(emb, a.n, seed=1, exclude=cal["ids"])
    offset = float(np.quantile(cal["mismatched"], Q_MISMATCHED))
    scale = 1.0 / (float(np.quantile(cal["clean"], Q_CLEAN)) - offset)
    offset, scale = round(offset, 4), round(scale, 4)
    rule = (f"offset = q{int(Q_MISMATCHED * 100):02d} of mismatched-pair cosines, scale = 1 / "
            f"(q{int(Q_CLEAN * 100)} of clean-pair cosines - offset); Fashion-MNIST test split, {a.n} pairs, seed 0")
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    weights_doc = {"offset": offset, "scale": scale, "rule": rule, "command": COMMAND,
                   "model_sha256": digest, "report": "benchmarks/results/ad_calibration.json"}
    report = {"benchmark": "ad_calibration", "embedder": "zoo:embed", "n_pairs": a.n, **weights_doc,
              "paper": {"offset": SIM_OFFSET, "scale": SIM_SCALE},
              "cosines": {draw: {kind: quantiles(d[kind]) for kind in ("clean", "mismatched")}
                          for draw, d in (("calibration", cal), ("held_out", held))},
              "clipping": {draw: {name: {kind: clip_report(d[kind], o, s) for kind in ("clean", "mismatched")}
                                  for name, (o, s) in (("paper", (SIM_OFFSET, SIM_SCALE)), ("calibrated", (offset, scale)))}
                           for draw, d in (("calibration", cal), ("held_out", held))}}
    report["seconds"] = round(time.time() - t0, 1)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if not a.no_write_weights:
        (folder / CALIBRATION_FILE).write_text(json.dumps(weights_doc, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("offset", "scale", "clipping")}, indent=1))
    print(f"wrote {out}" + ("" if a.no_write_weights else f" and {folder / CALIBRATION_FILE}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
