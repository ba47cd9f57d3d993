"""Effect of every protection on the bundled models: the figures quoted in docs/protect.md and the
thresholds of tests/protect/test_zoo_*.py.

* PCA+/PCA-/PCA-adaptive on zoo:vae-a, bundled photos at 64 px (4 images), paper defaults (T=40,
  alpha=2/255, eps=16/255): KL(q||N(0,I)) and mean sigma^2 ratios (after/before), and the PSNR drop of the
  VAE reconstruction of a *sampled* latent (vs the clean image), next to a random +-eps sign-noise control.
* Baselines: relative improvement of each method's own objective (encoder methods: 64 px, 20 steps;
  UNet methods via zoo:t2i: 32 px, 10 steps; photoguard-diff: 2 images, 6 steps).

    PYTHONPATH=src python benchmarks/protect_effect.py   # writes benchmarks/results/protect_effect.json
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

DIFFUSION = ("advdm", "mist", "sds+", "sds-", "photoguard-diff")


def main() -> int:
    from latentguard.core.runtime import torch_generator
    from latentguard.data import sample_images
    from latentguard.models import load_pipeline, load_vae
    from latentguard.protect import get, kl_standard_normal
    from latentguard.protect.engine import psnr, sample_posterior

    torch.set_num_threads(1)
    vae = load_vae("zoo:vae-a")
    x = sample_images(64)[:4]

    def stats(img):
        with torch.no_grad():
            mean, logvar = vae.encode(img)
            rec = vae.decode(sample_posterior(mean, logvar, torch_generator(0))).clamp(0, 1)
            return kl_standard_normal(mean, logvar), torch.exp(logvar).flatten(1).mean(1), psnr(rec, x)

    k0, s0, p0 = stats(x)
    g = torch.Generator().manual_seed(1)
    candidates = {"noise": (x + (torch.randint(0, 2, x.shape, generator=g) * 2 - 1) * 16 / 255).clamp(0, 1)}
    for name in ("pca+", "pca-", "pca-adaptive"):
        candidates[name] = get(name, vae=vae).protect(x).images
    pca = {}
    for name, img in candidates.items():
        k, s, p = stats(img)
        pca[name] = {"kl_ratio": (k / k0).tolist(), "sigma2_ratio": (s / s0).tolist(),
                     "sampled_recon_psnr_drop_db": (p0 - p).tolist(), "psnr_to_input_db": psnr(img, x).tolist()}
        print(name, {k: [round(v, 3) for v in vals] for k, vals in pca[name].items()}, flush=True)

    pipe = load_pipeline("zoo:t2i", kind="img2img")
    x32 = sample_images(32)[:4]
    cases = {"photoguard-enc": (x, 20), "pid": (x, 20), "pca-adaptive": (x, 20), "advdm": (x32, 10),
             "mist": (x32, 10), "sds+": (x32, 10), "sds-": (x32, 10), "photoguard-diff": (x32[:2], 6)}
    baselines = {}
    for name, (img, steps) in cases.items():
        kw = {"pipe": pipe} if name in DIFFUSION else {"vae": vae}
        recs = get(name, steps=steps, **kw).protect(img).records
        imp = [(r.loss_after - r.loss_before) * (1 if r.maximize else -1) for r in recs]
        baselines[name] = {
            "size": img.shape[-1], "images": img.shape[0], "steps": steps, "maximize": recs[0].maximize,
            "loss_before": [r.loss_before for r in recs], "loss_after": [r.loss_after for r in recs],
            "relative_improvement": [i / abs(r.loss_before) if r.loss_before else None for i, r in zip(imp, recs)],
        }
        print(name, [None if v is None else round(v, 3) for v in baselines[name]["relative_improvement"]], flush=True)
    out = Path(__file__).parent / "results" / "protect_effect.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "protect_effect", "vae": "zoo:vae-a", "pipeline": "zoo:t2i",
                               "pca_64px_T40": pca, "baselines": baselines}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
