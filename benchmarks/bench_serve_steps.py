"""How many pca+ steps the server's CPU default needs: effect and time against the step count.

Two 128x128 crops (the central ones of the bundled ``chelsea`` and ``coffee`` photos), pca+ on ``zoo:vae-a`` at
16/255, 5/10/20/40 steps, one torch thread: seconds per image, KL ratio after/before, L-inf (/255), and the
PSNR to the input of vae-a's mean reconstruction of the clean and of the protected crop (vae-a is the VAE of the
bundled editors). Writes ``benchmarks/results/bench_serve_steps.json``.

    PYTHONPATH=src python benchmarks/bench_serve_steps.py
    PYTHONPATH=src python benchmarks/bench_serve_steps.py --timing   # -> benchmarks/results/bench_serve_timing.json

``--timing``: seconds of one ``protect`` call (pca+, zoo:vae-a, 16/255, one image, one torch thread) at 1 and 5
steps on the central 128x128 and 256x256 crops of ``chelsea``, and the per-step cost between them.
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


def timing() -> None:
    import os
    import platform

    torch.set_num_threads(1)
    vae = load_vae("zoo:vae-a")
    img = next(load_image(p) for p in sample_paths() if p.stem == "chelsea")
    rows = {}
    for size in (128, 256):
        h, w = img.shape[-2:]
        t0, l0 = (h - size) // 2, (w - size) // 2
        x = img[..., t0:t0 + size, l0:l0 + size]
        get("pca+", vae=vae, eps=16 / 255, steps=1).protect(x)  # warm-up (first-call allocations)
        secs = {}
        for steps in (1, 5):
            t = time.perf_counter()
            get("pca+", vae=vae, eps=16 / 255, steps=steps).protect(x)
            secs[steps] = round(time.perf_counter() - t, 2)
        rows[f"{size}x{size}"] = {"s_1_step": secs[1], "s_5_steps": secs[5],
                                  "s_per_step": round((secs[5] - secs[1]) / 4, 3)}
        print(size, rows[f"{size}x{size}"], flush=True)
    out = Path(__file__).parent / "results" / "bench_serve_timing.json"
    out.write_text(json.dumps({"benchmark": "bench_serve_steps --timing", "image": "chelsea, central crop",
                               "method": "pca+", "vae": "zoo:vae-a", "eps": "16/255", "torch_threads": 1,
                               "cpus": os.cpu_count(), "loadavg_at_end": [round(v, 2) for v in os.getloadavg()],
                               "platform": platform.platform(), "sizes": rows}, indent=2) + "\n")
    print(f"wrote {out}")


def main() -> None:
    import sys

    if "--timing" in sys.argv[1:]:
        return timing()
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
