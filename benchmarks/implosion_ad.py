"""The AD columns of the implosion example, without the fine-tuning: the paper's constants vs the embedder's calibration.

AD depends only on the poisoned training set and the embedder, not on the fine-tuned model, so the AD,
D_fea and D_stru of every (seed, k) of ``examples/implosion.toml`` can be recomputed in seconds: the same
data draw, the same poison plan (``poison.implosion._poisoned_set``), the same embedder. Both similarity
calibrations are reported: the paper's CLIP constants (0.2, 4; what the example used before the calibration
existed, so these must equal the committed implosion figures) and the embedder's own
(``poison.embed.similarity_calibration``, what ``latentguard implosion`` uses now). Mean and standard
deviation over the seeds as ``poison.implosion.summarize`` computes them.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/implosion_ad.py   # -> benchmarks/results/implosion_ad.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _tables import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from latentguard.poison.alignment import SIM_OFFSET, SIM_SCALE, alignment_difficulty
    from latentguard.poison.dataset import PairSet, fashion_pairs
    from latentguard.poison.embed import embed_pairs, load_pair_embedder, similarity_calibration
    from latentguard.poison.implosion import ImplosionConfig, _poisoned_set, _stats

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", nargs="?", default=str(ROOT / "examples" / "implosion.toml"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "implosion_ad.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    cfg = ImplosionConfig.from_toml(a.config)
    if cfg.kind != "dirty-label":
        raise SystemExit("only dirty-label configs (nightshade needs the VAE and minutes per run)")
    emb = load_pair_embedder(cfg.embedder)
    cal = similarity_calibration(cfg.embedder)
    calibrations = {"paper": (SIM_OFFSET, SIM_SCALE), "calibrated": (cal.offset, cal.scale)}
    rows = []
    for seed in cfg.seeds:
        x, caps, concepts, _, _ = fashion_pairs(cfg.n_images, split=cfg.split, seed=cfg.data_seed + seed,
                                                template=cfg.template)
        clean = PairSet.from_lists(x, caps, concepts)
        for k in cfg.ks:
            ps, plan = _poisoned_set(cfg, clean, k, seed, None)
            u, v = embed_pairs(emb, ps.images, list(ps.captions))
            row = {"seed": seed, "k": k, "n_poisoned": int(ps.poisoned.sum())}
            for name, (o, s) in calibrations.items():
                r = alignment_difficulty(u, v, sim_offset=o, sim_scale=s)
                row[name] = {"ad": r.ad, "feature": r.feature, "structure": r.structure}
            rows.append(row)
            print(json.dumps({"seed": seed, "k": k, **{n: round(row[n]["ad"], 4) for n in calibrations}}), flush=True)
    curves = []
    for k in cfg.ks:
        rk = [r for r in rows if r["k"] == k]
        curves.append({"k": k, "n_seeds": len(rk), **{
            name: {m: _stats([r[name][m] for r in rk]) for m in ("ad", "feature", "structure")} for name in calibrations}})
    out = {"benchmark": "implosion_ad", "config": a.config, "embedder": cfg.embedder,
           "calibrations": {"paper": {"offset": SIM_OFFSET, "scale": SIM_SCALE}, "calibrated": cal.to_dict()},
           "rows": rows, "curves": curves, "seconds": round(time.time() - t0, 1)}
    write_result(a.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
