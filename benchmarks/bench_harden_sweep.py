"""Justify SRL-VAE's defaults: one-at-a-time variations of the recipe, scored on VALIDATION photos.

    PYTHONPATH=src python benchmarks/bench_harden_sweep.py [--device cuda] [--jobs 6] [--steps 600]
        [--out benchmarks/results/bench_harden_sweep.json]

Every variant starts from ``zoo:vae-a`` and trains on its own training photos (the 12 nature photos, random
crops) with the ``vae-a-srl`` preset except for the one field varied. Scores are measured on crops of
scikit-learn's two sample photos (china, flower): not vae-a's training data and NOT the held-out evaluation
photos of ``latentguard.samples.sample_images`` (those stay untouched for the final numbers, so choosing the
defaults here does not tune on the test set). Scores: clean reconstruction PSNR, white-box reconstruction-
attack PSNR (20 PGD steps) at eps 8/255 and 15/255, and PSNR of the reconstruction of PCA+ / PhotoGuard-enc
protected crops (40 steps, eps 16/255, crafted on the original vae-a, i.e. transfer) vs the clean reconstruction.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

VARIANTS: dict[str, dict] = {
    "preset": {},
    "orig_weight=0": {"orig_weight": 0.0},
    "orig_weight=1": {"orig_weight": 1.0},
    "orig_weight=10": {"orig_weight": 10.0},
    "clean_ratio=0": {"clean_ratio": 0.0},
    "clean_ratio=0.5": {"clean_ratio": 0.5},
    "attack_steps=1": {"attack_steps": 1},
    "attack_steps=5": {"attack_steps": 5},
    "eps=8/255": {"eps": 8 / 255},
    "lr=3e-5": {"lr": 3e-5},
    "lr=3e-4": {"lr": 3e-4},
    "perceptual=none": {"perceptual": "none"},
    "perceptual_weights=1": {"attack_perceptual_weight": 1.0, "recon_perceptual_weight": 1.0},
    "sample_latent=False": {"sample_latent": False},
    "batch_size=16": {"batch_size": 16},
    "steps=1800": {"steps": 1800},
}


def _val_crops(n: int = 16, crop: int = 64) -> torch.Tensor:
    from latentguard.harden import ImageCrops
    from latentguard.io import datasets

    return ImageCrops(datasets.sklearn_photos(), crop, seed=12345, scales=(1.0, 0.5, 0.25)).batch(n)


def score(vae, x: torch.Tensor, original, device) -> dict:
    from bench_harden import make_protector

    from latentguard.harden import adversarial_psnr, psnr

    x = x.to(device)
    out = {}
    with torch.no_grad():
        clean_rec = vae.reconstruct(x)
        out["clean_psnr"] = float(psnr(clean_rec, x).mean())
    for e in (8, 15):
        g = torch.Generator(device=device).manual_seed(0)
        out[f"adv_psnr_{e}"] = float(adversarial_psnr(vae, x, eps=e / 255, steps=20, generator=g).mean())
    for attack in ("pca+", "photoguard-enc"):
        xp = make_protector(attack, original, 16 / 255)(x)
        with torch.no_grad():
            out[f"{attack}_16_recon_psnr"] = float(psnr(vae.reconstruct(xp), clean_rec).mean())
    return out


def run_variant(name: str, steps: int, device: str, out_dir: str) -> dict:
    torch.set_num_threads(1)
    from latentguard.harden import ImageCrops, harden
    from latentguard.harden.recipes import get_preset
    from latentguard.models import load_vae
    from latentguard.io import datasets

    dev = torch.device(device)
    cfg = get_preset("vae-a-srl").replace(**{"steps": steps, "probe_size": 0, **VARIANTS[name]})
    original = load_vae("zoo:vae-a", device=dev)
    crops = ImageCrops(datasets.nature_photos("all"), cfg.crop, seed=cfg.seed, scales=cfg.scales)
    t0 = time.time()
    res = harden(original, crops, cfg, device=dev, progress=False)
    minutes = (time.time() - t0) / 60
    x = _val_crops()
    row = {"variant": name, "changes": VARIANTS[name], "steps": cfg.steps, "train_minutes": round(minutes, 2),
           **score(res.vae, x, original, dev)}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / f"{name.replace('/', '_')}.json").write_text(json.dumps(row))
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_harden_sweep.json"))
    p.add_argument("--parts", default=None, help="folder of per-variant JSON (default: next to --out)")
    a = p.parse_args(argv)
    names = a.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    tmp = Path(a.parts) if a.parts else Path(a.out).with_suffix(".parts")
    from latentguard.models import load_vae

    original = load_vae("zoo:vae-a", device=a.device)
    base = {"variant": "original vae-a (no training)", **score(original, _val_crops(), original, a.device)}
    print(json.dumps(base), flush=True)
    if a.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(a.jobs) as pool:
            rows = pool.starmap(run_variant, [(n, a.steps, a.device, str(tmp)) for n in names])
    else:
        rows = [run_variant(n, a.steps, a.device, str(tmp)) for n in names]
    from latentguard.harden.recipes import get_preset

    doc = {"validation": "16 crops (64 px) of scikit-learn's china + flower photos (not training, not held-out eval)",
           "base_preset": get_preset("vae-a-srl").to_dict(), "device": a.device, "original": base, "variants": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
