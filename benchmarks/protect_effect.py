"""Effect of every protection on the bundled models: the figures quoted in docs/protect.md and the
thresholds of tests/protect/test_zoo_*.py.

* PCA+/PCA-/PCA-adaptive at the paper's defaults (T=40, alpha=2/255, eps=16/255) on bundled photos
  (4 images at 64 px, 2 at 256 px), for each ``--vae``: after/before ratios of KL(q||N(0,I)) and of its
  two parts, sum mu^2 and sum -ln sigma^2, of mean sigma^2, and the PSNR drop of the VAE reconstruction
  of a *sampled* latent (vs the clean image), next to a random +-eps sign-noise control.
* The same at larger budgets (32/255 and 64/255, alpha = eps/8, T=80, 64 px): how the effect grows with
  the budget, i.e. how robust the surrogate encoder is.
* Baselines (first ``--vae`` only): relative improvement of each method's own objective (encoder methods:
  64 px, 20 steps; UNet methods via ``--pipeline``: 32 px, 10 steps; photoguard-diff: 2 images, 6 steps).

    PYTHONPATH=src python benchmarks/protect_effect.py            # writes benchmarks/results/protect_effect.json
    PYTHONPATH=src python benchmarks/protect_effect.py --vae stabilityai/sd-vae-ft-mse --no-baselines \\
        --out sd_effect.json                                      # the same on an SD VAE (needs its weights)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _tables import write_result  # noqa: E402

DIFFUSION = ("advdm", "mist", "sds+", "sds-", "photoguard-diff")
PCA = ("pca+", "pca-", "pca-adaptive")


def _posterior_stats(vae, img, clean, seed: int = 0) -> dict[str, torch.Tensor]:
    from latentguard.ops.runtime import torch_generator
    from latentguard.protect import kl_standard_normal
    from latentguard.protect.engine import psnr, sample_posterior

    with torch.no_grad():
        mean, logvar = vae.encode(img)
        rec = vae.decode(sample_posterior(mean, logvar, torch_generator(seed))).clamp(0, 1)
    flat_m, flat_lv = mean.flatten(1), logvar.flatten(1)
    return {
        "kl": kl_standard_normal(mean, logvar),
        "mu2": flat_m.pow(2).sum(1),
        "neg_logvar": (-flat_lv).sum(1),
        "sigma2": flat_lv.exp().mean(1),
        "psnr": psnr(rec, clean),
        "elements": torch.full((len(img),), float(flat_m.shape[1])),
    }


def _summary(values: list[float]) -> dict:
    return {"min": round(min(values), 4), "mean": round(sum(values) / len(values), 4), "max": round(max(values), 4),
            "values": [round(v, 4) for v in values]}


def pca_effect(vae, x: torch.Tensor, eps: float, steps: int, alpha: float, methods=PCA) -> dict:
    """Ratios (after/before) of the posterior statistics and the sampled-reconstruction PSNR drop."""
    from latentguard.protect import get
    from latentguard.protect.engine import psnr

    clean = _posterior_stats(vae, x, x)
    g = torch.Generator().manual_seed(1)
    candidates = {"noise": (x + (torch.randint(0, 2, x.shape, generator=g) * 2 - 1) * eps).clamp(0, 1)}
    seconds = {}
    for name in methods:
        t0 = time.time()
        candidates[name] = get(name, vae=vae, eps=eps, steps=steps, alpha=alpha).protect(x).images
        seconds[name] = round(time.time() - t0, 1)
    out = {}
    for name, img in candidates.items():
        s = _posterior_stats(vae, img, x)
        out[name] = {f"{k}_ratio": _summary((s[k] / clean[k]).tolist()) for k in ("kl", "mu2", "neg_logvar", "sigma2")}
        out[name]["sampled_recon_psnr_drop_db"] = _summary((clean["psnr"] - s["psnr"]).tolist())
        out[name]["psnr_to_input_db"] = _summary(psnr(img, x).tolist())
        if name in seconds:
            out[name]["seconds"] = seconds[name]
        print(f"  {name:13s} KL x{out[name]['kl_ratio']['mean']:.3f}  mu2 x{out[name]['mu2_ratio']['mean']:.3f}  "
              f"sigma2 x{out[name]['sigma2_ratio']['mean']:.3f}  "
              f"drop {out[name]['sampled_recon_psnr_drop_db']['mean']:.2f} dB", flush=True)
    n = clean["elements"]
    out["clean"] = {"kl_per_element": _summary((clean["kl"] / n).tolist()),
                    "mu2_per_element": _summary((clean["mu2"] / n).tolist()),
                    "mean_logvar": _summary((-clean["neg_logvar"] / n).tolist()),
                    "sampled_recon_psnr_db": _summary(clean["psnr"].tolist())}
    return out


def baselines(vae, pipe) -> dict:
    from latentguard.samples import sample_images
    from latentguard.protect import get

    x, x32 = sample_images(64)[:4], sample_images(32)[:4]
    cases = {"photoguard-enc": (x, 20), "pid": (x, 20), "pca-adaptive": (x, 20), "advdm": (x32, 10),
             "mist": (x32, 10), "sds+": (x32, 10), "sds-": (x32, 10), "photoguard-diff": (x32[:2], 6)}
    res = {}
    for name, (img, steps) in cases.items():
        kw = {"pipe": pipe} if name in DIFFUSION else {"vae": vae}
        recs = get(name, steps=steps, **kw).protect(img).records
        imp = [(r.loss_after - r.loss_before) * (1 if r.maximize else -1) for r in recs]
        res[name] = {
            "size": img.shape[-1], "images": img.shape[0], "steps": steps, "maximize": recs[0].maximize,
            "loss_before": [r.loss_before for r in recs], "loss_after": [r.loss_after for r in recs],
            "relative_improvement": [i / abs(r.loss_before) if r.loss_before else None for i, r in zip(imp, recs)],
        }
        print(name, [None if v is None else round(v, 3) for v in res[name]["relative_improvement"]], flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    from latentguard.samples import sample_images
    from latentguard.models import load_pipeline, load_vae

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vae", nargs="+", default=["zoo:vae-a", "zoo:vae-b"])
    ap.add_argument("--pipeline", default="zoo:t2i")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--budgets", default="32,64", help="larger budgets (N/255) for the sweep at 64 px")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "protect_effect.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    result: dict = {"benchmark": "protect_effect", "defaults": {"eps": "16/255", "alpha": "2/255", "steps": 40},
                    "vaes": {}}
    for spec in a.vae:
        vae = load_vae(spec)
        per: dict = {}
        for size, n in ((64, 4), (256, 2)):
            print(f"{spec} {size} px, eps 16/255, T=40", flush=True)
            per[f"{size}px_eps16"] = pca_effect(vae, sample_images(size)[:n], 16 / 255, 40, 2 / 255)
        for b in (int(v) for v in a.budgets.split(",") if v):
            print(f"{spec} 64 px, eps {b}/255, T=80", flush=True)
            per[f"64px_eps{b}"] = pca_effect(vae, sample_images(64)[:4], b / 255, 80, b / 8 / 255, ("pca+", "pca-"))
        result["vaes"][spec] = per
    if not a.no_baselines:
        result["baselines"] = {"vae": a.vae[0], "pipeline": a.pipeline,
                               "results": baselines(load_vae(a.vae[0]), load_pipeline(a.pipeline, kind="img2img"))}
    result["seconds"] = round(time.time() - t0, 1)
    write_result(a.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
