"""How far a VAE fine-tune moved the latent space a t2i model was trained in (vae-a's stage 2 vs stage 1).

On Fashion-MNIST test images (32 px, the t2i data): relative L2 change of the posterior mean, and the PSNR
between the two decoders on the OLD latents (what a UNet trained on old latents hands the new decoder).

    PYTHONPATH=src python benchmarks/vae_stage_drift.py OLD_DIR NEW_DIR [--n 2000]
    # OLD_DIR: stage-1 weights (`latentguard zoo train vae-a --out DIR` writes DIR/stage1)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    from diffusers import AutoencoderKL

    from latentguard.ops.metrics import psnr as psnr_per_image
    from latentguard.io import datasets

    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "vae_a_stage2_drift.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    old = AutoencoderKL.from_pretrained(a.old, torch_dtype=torch.float32).eval()
    new = AutoencoderKL.from_pretrained(a.new, torch_dtype=torch.float32).eval()
    imgs, _ = datasets.fashion_mnist("test")
    x = torch.from_numpy(datasets.fashion_to_rgb32(imgs[: a.n])) * 2 - 1

    def psnr(u, v):  # mean over images; images in [-1, 1]: peak-to-peak 2
        return float(psnr_per_image(u, v, data_range=2.0).mean())

    with torch.no_grad():
        zo, zn = old.encode(x).latent_dist.mean, new.encode(x).latent_dist.mean
        do, dn = old.decode(zo).sample, new.decode(zo).sample
        res = {"n": a.n, "data": "fashion-mnist test, 32 px",
               "latent_rel_l2": round(float((zn - zo).norm() / zo.norm()), 5),
               "new_decoder_on_old_latents_psnr_db": round(psnr(dn, do), 2),
               "recon_psnr_db_old": round(psnr(do, x), 2), "recon_psnr_db_new": round(psnr(new.decode(zn).sample, x), 2)}
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
