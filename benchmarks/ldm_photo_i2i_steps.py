"""zoo:ldm-photo's img2img fidelity at strength 0.3 against the number of DDIM steps (the sampler lever).

    PYTHONPATH=src python benchmarks/ldm_photo_i2i_steps.py [--steps 5,10,20,50,100] \
        [--out benchmarks/results/ldm_photo_i2i_steps.json]

The 8 held-out 256 px photos, prompt "", no guidance, seed 0, as ``bench_zoo.py`` (which uses 50 steps). With
``num_inference_steps = N`` diffusers' img2img runs ``int(N * strength)`` denoising steps from the matching
timestep; the PSNR / SSIM to the input show how much of the photo the trajectory keeps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="5,10,20,50,100")
    ap.add_argument("--strength", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ldm_photo_i2i_steps.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from bench_zoo import _psnr, _ssim  # noqa: E402

    from latentguard.models import load_pipeline
    from latentguard.samples import sample_images

    x = sample_images(256)
    i2i = load_pipeline("zoo:ldm-photo", kind="img2img")
    rows = []
    for n in (int(s) for s in a.steps.split(",")):
        e = i2i([""] * len(x), image=x, strength=a.strength, num_inference_steps=n, guidance_scale=1.0,
                generator=torch.Generator().manual_seed(0), output_type="pt").images.clamp(0, 1)
        rows.append({"num_inference_steps": n, "denoising_steps": int(n * a.strength),
                     "psnr_db_to_input": round(_psnr(e, x), 3), "ssim_to_input": round(_ssim(e, x), 4)})
        print(json.dumps(rows[-1]), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"model": "zoo:ldm-photo", "strength": a.strength, "photos": len(x), "rows": rows},
                                indent=2) + "\n")


if __name__ == "__main__":
    main()
