"""Where PCA's reconstruction damage comes from: the posterior mean, not a sampled latent.

On each bundled photo (8 at 64 px, 2 at 256 px) and each input (clean, random +-eps sign noise, pca+, pca-,
pca-adaptive at the paper's defaults T=40, alpha=2/255, eps=16/255 on ``--vae``), this measures

* the reconstruction PSNR (vs the clean photo) of ``D(mu)`` and of ``D(mu + sigma * n)`` for ``--samples``
  draws of ``n``, and the largest |PSNR(D(mu)) - PSNR(D(sample))| over the draws;
* the posterior: mean ln sigma^2, mean sigma^2, the fraction of latent elements whose sigma^2 went down,
  and sum mu^2, each relative to the clean photo;
* the reconstruction drop of ``D(mu)`` (clean - protected), i.e. the damage a shift of the mean alone does.

It backs two statements of docs/protect.md: decoding the mean or a sample of these narrow posteriors gives
the same image (to < 1e-4 dB), before and after PCA+; and PCA+'s ascent shrinks sigma^2 (with sigma^2 << v,
dL/d ln sigma^2 = (sigma^2/v - 1)/2 < 0), so its reconstruction drop is a shift of the mean.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/pca_mean_vs_sample.py   # -> results/pca_mean_vs_sample.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _tables import write_result  # noqa: E402

METHODS = ("pca+", "pca-", "pca-adaptive")


def _round(v: float) -> float:
    return round(float(v), 6)


def _stats(vae, img: torch.Tensor, clean: torch.Tensor, samples: int) -> dict[str, torch.Tensor]:
    from latentguard.ops.runtime import torch_generator
    from latentguard.protect.engine import psnr, sample_posterior

    with torch.no_grad():
        mean, logvar = vae.encode(img)
        p_mean = psnr(vae.decode(mean).clamp(0, 1), clean)
        p_samples = torch.stack([psnr(vae.decode(sample_posterior(mean, logvar, torch_generator(s))).clamp(0, 1), clean)
                                 for s in range(samples)])
    return {"mean": mean.float(), "logvar": logvar.float(), "psnr_mean": p_mean, "psnr_samples": p_samples}


def measure(vae, x: torch.Tensor, samples: int) -> dict:
    from latentguard.protect import get

    g = torch.Generator().manual_seed(1)
    inputs = {"clean": x, "noise": (x + (torch.randint(0, 2, x.shape, generator=g) * 2 - 1) * 16 / 255).clamp(0, 1)}
    seconds = {}
    for name in METHODS:
        t0 = time.time()
        inputs[name] = get(name, vae=vae).protect(x).images
        seconds[name] = round(time.time() - t0, 1)
    base = _stats(vae, x, x, samples)
    lv0 = base["logvar"].flatten(1)
    out = {}
    for name, img in inputs.items():
        s = _stats(vae, img, x, samples)
        lv = s["logvar"].flatten(1)
        gap = (s["psnr_samples"] - s["psnr_mean"][None]).abs().max(0).values
        row = {
            "psnr_decode_mean_db": [_round(v) for v in s["psnr_mean"]],
            "psnr_decode_sample_db": [[_round(v) for v in col] for col in s["psnr_samples"].T],
            "max_abs_mean_vs_sample_db": [float(f"{v:.3g}") for v in gap],
            "recon_drop_decode_mean_db": [_round(v) for v in base["psnr_mean"] - s["psnr_mean"]],
            "mean_logvar": [_round(v) for v in lv.mean(1)],
            "mean_logvar_change": [_round(v) for v in (lv - lv0).mean(1)],
            "sigma2_mean_ratio": [_round(v) for v in lv.exp().mean(1) / lv0.exp().mean(1)],
            "fraction_sigma2_down": [_round(v) for v in (lv < lv0).double().mean(1)],
            "mu2_ratio": [_round(v) for v in s["mean"].flatten(1).pow(2).sum(1) / base["mean"].flatten(1).pow(2).sum(1)],
        }
        if name in seconds:
            row["seconds"] = seconds[name]
        out[name] = row
        print(f"  {name:13s} |mean-sample| max {max(row['max_abs_mean_vs_sample_db']):.2e} dB  "
              f"drop(D(mu)) {sum(row['recon_drop_decode_mean_db']) / len(x):.2f} dB  "
              f"d mean ln s2 {sum(row['mean_logvar_change']) / len(x):+.3f}  "
              f"s2 down {min(row['fraction_sigma2_down']):.3f}-{max(row['fraction_sigma2_down']):.3f}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    from latentguard.samples import sample_images
    from latentguard.models import load_vae

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vae", default="zoo:vae-a")
    ap.add_argument("--samples", type=int, default=4, help="posterior draws per image")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "pca_mean_vs_sample.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    vae = load_vae(a.vae)
    result = {"benchmark": "pca_mean_vs_sample", "vae": a.vae, "samples": a.samples,
              "defaults": {"eps": "16/255", "alpha": "2/255", "steps": 40}, "sizes": {}}
    for size, n in ((64, 8), (256, 2)):
        print(f"{a.vae} {size} px, {n} photos", flush=True)
        result["sizes"][f"{size}px"] = measure(vae, sample_images(size)[:n], a.samples)
    result["seconds"] = round(time.time() - t0, 1)
    write_result(a.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
