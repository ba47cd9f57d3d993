"""How many pca+ steps the server's CPU default needs: effect and time against the step count.

Two 128x128 crops (the central ones of the bundled ``chelsea`` and ``coffee`` photos), pca+ on ``zoo:vae-a`` at
16/255, 5/10/20/40 steps, one torch thread: seconds per image, KL ratio after/before, L-inf (/255), and the
PSNR to the input of vae-a's mean reconstruction of the clean and of the protected crop (vae-a is the VAE of the
bundled editors). Writes ``benchmarks/results/bench_serve_steps.json``.

    PYTHONPATH=src python benchmarks/bench_serve_steps.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from latentguard.samples import sample_paths
from latentguard.ops.metrics import psnr
from latentguard.io import load_image
from latentguard.models import load_vae
from latentguard.protect import get
from latentguard.serve.jobs import vae_reconstruction


def main() -> None:
    torch.set_num_threads(1)
    vae = load_vae("zoo:vae-a")
    xs = torch.cat([load_image(p)[..., 64:192, 64:192] for p in sample_paths() if p.stem in ("chelsea", "coffee")])
    rc = vae_reconstruction(vae, xs)
    res = {}
    for steps in (5, 10, 20, 40):
        p = get("pca+", vae=vae, eps=16 / 255, steps=steps)
        t = time.perf_counter()
        out = p.protect(xs)
        dt = time.perf_counter() - t
        rp = vae_reconstruction(vae, out.images)
        res[steps] = {"s_per_img": round(dt / len(xs), 2),
                      "kl_ratio": [round(r.kl_after / r.kl_before, 3) for r in out.records],
                      "linf255": [round(r.linf * 255, 2) for r in out.records],
                      "recon_psnr_clean": [round(float(v), 2) for v in psnr(rc, xs)],
                      "recon_psnr_prot": [round(float(v), 2) for v in psnr(rp, xs)]}
        print(steps, res[steps], flush=True)
    out = Path(__file__).parent / "results" / "bench_serve_steps.json"
    out.write_text(json.dumps({"benchmark": "bench_serve_steps", "images": ["chelsea[64:192,64:192]", "coffee[64:192,64:192]"],
                               "method": "pca+", "vae": "zoo:vae-a", "eps": "16/255", "torch_threads": 1,
                               "steps": res}, indent=2) + "\n")


if __name__ == "__main__":
    main()
