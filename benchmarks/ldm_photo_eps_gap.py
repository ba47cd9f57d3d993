"""Does a zoo:ldm-photo build generalise? Its epsilon-prediction error on the held-out photos against its training crops.

    PYTHONPATH=src python benchmarks/ldm_photo_eps_gap.py --model DIR [--model DIR ...] [--bank BANK.pt] \
        [--out benchmarks/results/ldm_photo_eps_gap.json]

For each UNet folder (an ldm-photo build: ``unet/``), the mean squared error of ``eps_theta(z_t, t)`` against
the true noise at the timesteps img2img at strength <= 0.3 uses, on (a) 64 px crops of the 8 held-out 256 px
sample photos (never trained on) and (b) latents of a training bank (``--bank``, written by the recipe's
``--bank-cache``: 512 64 px latents of each photo group, the first ``--first-group`` latents being the first
group's; MORE_PHOTOS's bank: 3397 wallpaper crops, then gcompris crops), one fixed noise per latent (seed 0). A held-out error well above
the training one means the denoiser fits its photos rather than photos.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TIMESTEPS = (50, 150, 300)


@torch.no_grad()
def eps_error(unet, z0: torch.Tensor, cond: torch.Tensor, abar: torch.Tensor) -> dict:
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(z0.shape, generator=g)
    out = {}
    for t in TIMESTEPS:
        a = abar[t]
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        errs = []
        for zb, nb in zip(zt.split(64), noise.split(64)):
            pred = unet(zb, torch.full((len(zb),), t), encoder_hidden_states=cond.expand(len(zb), -1, -1)).sample
            errs.append(((pred - nb) ** 2).flatten(1).mean(1))
        out[str(t)] = round(float(torch.cat(errs).mean()), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, type=Path, help="an ldm-photo folder (repeatable)")
    ap.add_argument("--bank", type=Path, help="a latent bank file written by --bank-cache (training crops)")
    ap.add_argument("--first-group", type=int, default=3397,
                    help="64 px latents of the bank's first photo group (default 3397: MORE_PHOTOS's wallpapers)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    from diffusers import DDIMScheduler, UNet2DConditionModel

    from latentguard.models import load_vae
    from latentguard.models.text import token_states
    from latentguard.samples import sample_images
    from latentguard.zoo.train.ldm_photo import SCHEDULER_CONFIG

    abar = DDIMScheduler(**SCHEDULER_CONFIG).alphas_cumprod  # the builds' own scheduler
    x = sample_images(256)
    crops = torch.cat([x[:, :, i : i + 64, j : j + 64] for i in range(0, 256, 64) for j in range(0, 256, 64)])
    vae = load_vae("zoo:vae-a")
    held = torch.cat([vae.to_pipeline_latent(vae.encode(crops[i : i + 64])[0]) for i in range(0, len(crops), 64)])
    banks = {}
    if a.bank:
        small = torch.load(a.bank, map_location="cpu", weights_only=True)["small"]
        banks = {"bank_wallpapers": small[: a.first_group][:512], "bank_gcompris": small[a.first_group :][:512]}
    cond, _ = token_states([""])
    res = {"timesteps": list(TIMESTEPS), "held_out_crops": len(held), "bank": str(a.bank) if a.bank else None,
           "models": {}}
    for m in a.model:
        unet = UNet2DConditionModel.from_pretrained(m / "unet", torch_dtype=torch.float32).eval()
        r = {"held_out": eps_error(unet, held, cond, abar)}
        for k, z in banks.items():
            if len(z):
                r[k] = eps_error(unet, z, cond, abar)
        res["models"][str(m)] = r
        print(m, json.dumps(r), flush=True)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
