"""Measure the bundled zoo's quality on held-out data; writes benchmarks/results/zoo_quality.json.

    PYTHONPATH=src python benchmarks/bench_zoo.py [--out benchmarks/results/zoo_quality.json] [--only NAME ...]
    PYTHONPATH=src python benchmarks/bench_zoo.py --vae-dir DIR   # a candidate VAE build: prints, writes nothing

* vae-a / vae-b / vae-a-srl: reconstruction PSNR and SSIM (posterior mean) on the 8 bundled held-out photos
  (scikit-image CC0 set, never seen in training): full 256x256 images, and 64x64 (four random 64x64 crops per photo).
* t2i: for each class, images generated from "a photo of a <class>" are classified zero-shot by zoo:embed
  (top-1 vs chance 10%) and by nearest class centroid of real test images in zoo:embed space;
  img2img at strength 0.5 keeps the input's structure: SSIM(edit, input) vs SSIM(random test image, input).
* t2i-members: loss-based membership attack (mean epsilon-MSE over fixed noises at several t) AUROC,
  members vs non-members (the declared splits).
* ldm-photo: img2img at strength 0.3 / 0.5 (prompt "") stays close to its input (PSNR, SSIM to the input, next to
  vae-a's own reconstruction); inpainting of a centred 96 px square against a blurred fill of the same hole;
  unconditional 64 px samples: mean cosine (zoo:embed) to the nearest held-out real crop, against uniform noise
  and Fashion-MNIST images. Grids: zoo_ldm_photo_{img2img,inpaint,samples}.png.
* embed: zero-shot accuracy on the Fashion-MNIST test split (5-template ensemble) vs chance.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from latentguard.io import datasets  # noqa: E402
from latentguard.models.registry import available  # noqa: E402
from latentguard.ops.metrics import psnr, ssim  # noqa: E402
from latentguard.ops.roc import auroc  # noqa: E402
from latentguard.samples import sample_crops, sample_images  # noqa: E402


def _ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM (latentguard.ops.metrics: Gaussian window 11, sigma 1.5; equal to scikit-image's to 1e-4)."""
    return float(ssim(a, b).mean())


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(psnr(a, b).mean())


@torch.no_grad()
def vae_quality(name: str) -> dict:
    """``name``: a zoo VAE, or a VAE folder."""
    from latentguard.models import load_vae

    vae = load_vae(name if Path(name).is_dir() else f"zoo:{name}")
    full = sample_images(256)
    crops = sample_crops(64, per_image=4, seed=0)
    out = {}
    for tag, x in (("256px_full", full), ("64px_crops", crops)):
        rec = torch.cat([vae.reconstruct(x[i : i + 8]) for i in range(0, len(x), 8)])
        out[tag] = {"psnr_db": round(_psnr(rec, x), 3), "ssim": round(_ssim(rec, x), 4), "n": len(x)}
    return out


@torch.no_grad()
def embed_quality() -> dict:
    from latentguard.models import load_embedder

    emb = load_embedder("zoo:embed")
    imgs, labels = datasets.fashion_mnist("test")
    x = torch.from_numpy(datasets.fashion_to_rgb32(imgs))
    f = torch.cat([emb.embed_images(x[i : i + 1000]) for i in range(0, len(x), 1000)])
    t = torch.stack([emb.embed_texts([tpl.format(c) for tpl in datasets.CAPTION_TEMPLATES]).mean(0)
                     for c in datasets.FASHION_CLASSES])
    t = torch.nn.functional.normalize(t, dim=-1)
    pred = (f @ t.t()).argmax(1).numpy()
    return {"zero_shot_top1": round(float((pred == labels).mean()), 4), "chance": 0.1, "n_test": int(len(labels))}


@torch.no_grad()
def t2i_quality(n_per_class: int = 8, steps: int = 25) -> dict:
    from latentguard.models import load_embedder, load_pipeline

    pipe = load_pipeline("zoo:t2i", kind="text2img")
    emb = load_embedder("zoo:embed")
    t = torch.nn.functional.normalize(torch.stack(
        [emb.embed_texts([tpl.format(c) for tpl in datasets.CAPTION_TEMPLATES]).mean(0) for c in datasets.FASHION_CLASSES]), dim=-1)
    imgs, labels = datasets.fashion_mnist("test")
    xt = torch.from_numpy(datasets.fashion_to_rgb32(imgs[:2000]))
    ft = emb.embed_images(xt)
    cent = torch.nn.functional.normalize(torch.stack([ft[torch.from_numpy(labels[:2000] == c)].mean(0) for c in range(10)]), dim=-1)
    correct_zs = correct_nc = 0
    gen_all = []
    for c, name in enumerate(datasets.FASHION_CLASSES):
        g = torch.Generator().manual_seed(100 + c)
        out = pipe([f"a photo of a {name}"] * n_per_class, height=32, width=32, num_inference_steps=steps,
                   guidance_scale=3.0, generator=g, output_type="pt").images
        gen_all.append(out)
        fe = emb.embed_images(out.clamp(0, 1))
        correct_zs += int(((fe @ t.t()).argmax(1) == c).sum())
        correct_nc += int(((fe @ cent.t()).argmax(1) == c).sum())
    n = n_per_class * 10
    # img2img structure at strength 0.5 on real test images
    i2i = load_pipeline("zoo:t2i", kind="img2img")
    x = xt[:16]
    caps = [f"a photo of a {datasets.FASHION_CLASSES[int(l)]}" for l in labels[:16]]
    edit = i2i(caps, image=x, strength=0.5, num_inference_steps=steps, guidance_scale=3.0,
               generator=torch.Generator().manual_seed(0), output_type="pt").images
    other = xt[16:32]
    return {
        "generated_top1_zero_shot_embed": round(correct_zs / n, 4),
        "generated_top1_nearest_centroid_embed": round(correct_nc / n, 4),
        "chance": 0.1, "n_generated": n, "steps": steps, "guidance": 3.0,
        "img2img_strength0.5_ssim_to_input": round(_ssim(edit.clamp(0, 1), x), 4),
        "baseline_ssim_random_other_image": round(_ssim(other, x), 4),
        "_grid": torch.cat(gen_all),
    }


@torch.no_grad()
def ldm_photo_quality(steps: int = 50, n_samples: int = 16) -> dict:
    """zoo:ldm-photo on the 8 held-out photos (256 px): img2img fidelity at strength 0.3 / 0.5 (prompt "",
    DDIM ``steps``, no guidance), inpainting of a centred 96 px square against a blurred fill, and unconditional
    64 px samples scored by zoo:embed against held-out real crops, uniform noise and Fashion-MNIST images."""
    from latentguard.models import load_embedder, load_pipeline, load_vae

    x = sample_images(256)
    vae = load_vae("zoo:vae-a")
    rec = torch.cat([vae.reconstruct(x[i : i + 4]) for i in range(0, len(x), 4)])
    out: dict = {"vae_a_reconstruction": {"psnr_db": round(_psnr(rec, x), 3), "ssim": round(_ssim(rec, x), 4)}}
    i2i = load_pipeline("zoo:ldm-photo", kind="img2img")
    edits = {}
    for strength in (0.3, 0.5):
        e = i2i([""] * len(x), image=x, strength=strength, num_inference_steps=steps, guidance_scale=1.0,
                generator=torch.Generator().manual_seed(0), output_type="pt").images.clamp(0, 1)
        edits[strength] = e
        out[f"img2img_strength{strength}"] = {"psnr_db_to_input": round(_psnr(e, x), 3),
                                              "ssim_to_input": round(_ssim(e, x), 4)}
    # inpainting: a centred square is masked; compare the masked region to the original
    side = 96
    m = torch.zeros(len(x), 1, 256, 256)
    m[:, :, 80 : 80 + side, 80 : 80 + side] = 1
    inp = load_pipeline("zoo:ldm-photo", kind="inpaint")
    filled = inp([""] * len(x), image=x, mask_image=m, height=256, width=256, strength=1.0, num_inference_steps=steps,
                 guidance_scale=1.0,
                 generator=torch.Generator().manual_seed(0), output_type="pt").images.clamp(0, 1)
    from latentguard.ops.transforms import gaussian_blur

    # the blurred fill: normalised convolution of the visible pixels (what a blur-inpainting does)
    keep = 1 - m
    num, den = gaussian_blur(x * keep, 12.0), gaussian_blur(keep.expand_as(x), 12.0).clamp_min(1e-6)
    blur_fill = x * keep + (num / den).clamp(0, 1) * m
    sl = (slice(None), slice(None), slice(80, 80 + side), slice(80, 80 + side))
    out["inpaint_96px_square"] = {
        "psnr_db_masked_region": round(_psnr(filled[sl], x[sl]), 3),
        "ssim_masked_region": round(_ssim(filled[sl], x[sl]), 4),
        "blurred_fill_psnr_db": round(_psnr(blur_fill[sl], x[sl]), 3),
        "blurred_fill_ssim": round(_ssim(blur_fill[sl], x[sl]), 4),
        "psnr_db_outside_mask": round(_psnr(filled * keep, x * keep), 3),
    }
    # unconditional samples
    t2i = load_pipeline("zoo:ldm-photo", kind="text2img")
    samples = t2i([""] * n_samples, height=64, width=64, num_inference_steps=steps, guidance_scale=1.0,
                  generator=torch.Generator().manual_seed(1), output_type="pt").images.clamp(0, 1)
    emb = load_embedder("zoo:embed")
    real = emb.embed_images(sample_crops(64, per_image=4, seed=1))
    g = torch.Generator().manual_seed(2)
    imgs, _ = datasets.fashion_mnist("test")
    fm = torch.nn.functional.interpolate(torch.from_numpy(datasets.fashion_to_rgb32(imgs[:n_samples])), size=(64, 64),
                                         mode="bilinear", align_corners=False)
    sets = {"ldm_photo_samples": samples, "uniform_noise": torch.rand(n_samples, 3, 64, 64, generator=g),
            "fashion_mnist": fm}

    def nn_cos(t):  # mean cosine similarity to the nearest held-out real crop
        return round(float((emb.embed_images(t) @ real.t()).max(1).values.mean()), 4)

    out["unconditional_64px"] = {k: {"nearest_real_cosine": nn_cos(v)} for k, v in sets.items()}
    out["steps"] = steps
    out["_grids"] = {"img2img": torch.cat([x[:4], edits[0.3][:4], edits[0.5][:4]]), "inpaint": torch.cat([x[:4] * keep[:4], filled[:4], blur_fill[:4]]),
                     "samples": samples}
    return out


@torch.no_grad()
def members_quality(n: int = 500, ts=(50, 100, 200, 300), draws: int = 4, name: str = "t2i-members") -> dict:
    from latentguard.io.datasets import member_split
    from latentguard.models import load_pipeline, load_vae
    from latentguard.models.registry import weights_root
    from latentguard.models.text import token_states

    pipe = load_pipeline(f"zoo:{name}", kind="text2img")
    vae = load_vae("zoo:vae-a")
    split_file = weights_root() / name / "splits.json"
    split = json.loads(split_file.read_text()) if split_file.exists() else member_split()
    imgs, labels = datasets.fashion_mnist("train")
    sched = pipe.scheduler
    ac = sched.alphas_cumprod

    def scores(ids):
        ids = np.array(ids[:n])
        x = torch.from_numpy(datasets.fashion_to_rgb32(imgs[ids]))
        z0 = vae.to_pipeline_latent(vae.encode(x)[0])
        cond, _ = token_states([datasets.caption_for(int(l), 0) for l in labels[ids]])
        g = torch.Generator().manual_seed(0)
        tot = torch.zeros(len(ids))
        for t in ts:
            for _ in range(draws):
                eps = torch.randn(z0.shape, generator=g)
                a = ac[t]
                zt = a.sqrt() * z0 + (1 - a).sqrt() * eps
                pred = pipe.unet(zt, torch.full((len(ids),), t), encoder_hidden_states=cond).sample
                tot += ((pred - eps) ** 2).flatten(1).mean(1)
        return -tot  # lower loss -> member
    sm, sn = scores(split["members"]), scores(split["nonmembers"])
    y = np.r_[np.ones(len(sm)), np.zeros(len(sn))]
    auc = auroc(np.r_[sm.numpy(), sn.numpy()], y.astype(np.int64))
    return {"loss_attack_auroc": round(float(auc), 4), "n_members": len(sm), "n_nonmembers": len(sn),
            "timesteps": list(ts), "noise_draws": draws}


def honest_members_auroc(name: str) -> dict:
    """The plain loss attack (the audit's statistic) on all 500 members + 500 non-members, both protocols
    (benchmarks/mia_target_sweep.py's measurement, on the built model)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mia_target_sweep import loss_attack, split_latents  # noqa: E402

    from diffusers import AutoencoderKL, UNet2DConditionModel

    from latentguard.models.registry import weights_root

    split = json.loads((weights_root() / name / "splits.json").read_text())
    imgs, labels = datasets.fashion_mnist("train")
    vae = AutoencoderKL.from_pretrained(weights_root() / "vae-a", torch_dtype=torch.float32).eval()
    unet = UNet2DConditionModel.from_pretrained(weights_root() / name / "unet", torch_dtype=torch.float32)
    return loss_attack(unet, *split_latents(vae, split["members"], imgs, labels),
                       *split_latents(vae, split["nonmembers"], imgs, labels))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/zoo_quality.json"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vae-dir", help="measure this VAE folder like the zoo VAEs; print only")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.vae_dir:
        if not Path(a.vae_dir).is_dir():
            raise SystemExit(f"--vae-dir {a.vae_dir}: not a folder")
        print(json.dumps({a.vae_dir: vae_quality(a.vae_dir)}, indent=2))
        return
    have = set(available())
    res: dict = {}
    outp = Path(a.out)
    if outp.exists():
        res = json.loads(outp.read_text())
    for name in ("vae-a", "vae-b", "vae-a-srl", "embed", "t2i", "t2i-members", "t2i-members-ft", "ldm-photo"):
        if name not in have or (a.only and name not in a.only):
            continue
        t0 = time.time()
        if name.startswith("vae"):
            r = vae_quality(name)
        elif name == "embed":
            r = embed_quality()
        elif name == "t2i":
            r = t2i_quality()
            grid = r.pop("_grid")
            from latentguard.ops.grid import make_grid
            from latentguard.io import save_image

            save_image(make_grid(grid.clamp(0, 1), nrow=8), outp.parent / "zoo_t2i_samples.png",
                       metadata={"what": "zoo:t2i samples, one row per class, 'a photo of a <class>'"})
        elif name == "ldm-photo":
            r = ldm_photo_quality()
            from latentguard.ops.grid import make_grid
            from latentguard.io import save_image

            for tag, g in r.pop("_grids").items():
                save_image(make_grid(g, nrow=4), outp.parent / f"zoo_ldm_photo_{tag}.png",
                           metadata={"what": f"zoo:ldm-photo {tag} on the held-out photos (benchmarks/bench_zoo.py)"})
        else:
            r = members_quality(name=name)
            if name == "t2i-members-ft":  # the audit's honest protocol too (the band the MIA study needs)
                r["honest_loss_attack"] = honest_members_auroc(name)
        r["seconds"] = round(time.time() - t0, 1)
        res[name] = r
        print(name, json.dumps(r), flush=True)
        outp.parent.mkdir(parents=True, exist_ok=True)
        outp.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
