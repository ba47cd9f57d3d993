"""Recipe of ``zoo:ldm-photo``: a latent diffusion model of natural photos on ``zoo:vae-a`` latents.

What it is: a diffusers ``UNet2DConditionModel`` (convolutional blocks only, no attention, so it runs at any
size; 4 latent channels, so diffusers' img2img and 4-channel inpainting pipelines take it) trained with the
epsilon objective and SD's scaled-linear schedule. It is *unconditional*: every training step conditions on
the token states of the empty prompt of the frozen MiniLM text tower (the same tower as zoo:t2i), so the
pipelines are called with ``prompt=""``; the cross-attention dimension (384) is declared only so that the
Stable Diffusion pipelines can pass their text states, which no block reads.

Data: random crops (random scales, flips) of every freely licensed photo collection the project installs
(:data:`PHOTO_SOURCES`; licences in the card), never the held-out sample photos of ``latentguard.samples``.
Crops are drawn once into a latent bank (posterior means x scaling factor; vae-a's posterior is so narrow
that a sample and the mean differ by less than 1e-4 in PSNR), 64 px crops (16x16 latents) and 128 px crops
(32x32 latents), then training draws batches from the bank.

Rebuild: ``latentguard zoo train ldm-photo --out DIR`` or ``python -m latentguard.zoo.train.ldm_photo --out DIR``.
Checkpoints (EMA weights as a loadable diffusers folder) are written every ``checkpoint_every`` steps.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from latentguard.harden.crops import ImageCrops
from latentguard.io.datasets import photos as _photos
from latentguard.models.registry import weights_root
from latentguard.models.text import token_states

PHOTO_SOURCES = "nature:all+lomiri+lomiri20+sklearn"
# Scales chosen so that 128 px crops reach whole scenes of the ~2000-6000 px wallpapers, as in the held-out
# 256 px photos, and 64 px crops see textures too.
PHOTO_SCALES = (0.5, 0.35, 0.25, 0.18, 0.12, 0.09, 0.065, 0.045)

UNET_CONFIG = dict(
    sample_size=32, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(64, 128, 192),
    down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3,
    mid_block_type="UNetMidBlock2D", cross_attention_dim=384, norm_num_groups=32,
)
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
)


@dataclass
class LDMPhotoRecipe:
    name: str = "ldm-photo"
    seed: int = 5
    steps: int = 2400
    batch_size: int = 32          # 64 px crops (16x16 latents)
    big_batch: int = 8            # 128 px crops (32x32 latents), every ``big_every``-th step
    big_every: int = 3
    lr: float = 2e-4
    warmup: int = 200
    ema_decay: float = 0.999
    bank_small: int = 12000
    bank_big: int = 3000
    max_minutes: float = 90.0
    threads: int = 2
    checkpoint_every: int = 250
    # The bundled build's stop (its checkpoint; the schedule still spans ``steps``), as vae-b's ``stop_at``.
    stop_at: int | None = 1250
    vae: str = "vae-a"
    photos: str = PHOTO_SOURCES
    scales: tuple = PHOTO_SCALES
    unet: dict = field(default_factory=lambda: dict(UNET_CONFIG))


RECIPE = LDMPhotoRecipe()


def latent_bank(vae, photos: list[np.ndarray], crop: int, n: int, seed: int, scales, batch: int = 250,
                device: torch.device | str = "cpu", levels: dict | None = None) -> torch.Tensor:
    """``n`` random crops (scales, flips) of ``photos`` encoded by ``vae`` (a diffusers AutoencoderKL):
    posterior means times the scaling factor, ``[n,4,crop/4,crop/4]``. ``levels``: the resized photos, shared
    by the banks of several crop sizes (:class:`ImageCrops`; the crops are the same either way)."""
    crops = ImageCrops(photos, crop, seed=seed, scales=scales, levels=levels)
    sf = float(vae.config.scaling_factor)
    out = []
    with torch.no_grad():
        for i in range(0, n, batch):
            x = crops.batch(min(batch, n - i)).to(device) * 2 - 1
            out.append(vae.encode(x).latent_dist.mean * sf)
    return torch.cat(out)


def _save(unet, out: Path) -> None:
    from diffusers import DDIMScheduler

    unet.save_pretrained(out / "unet", safe_serialization=True)
    DDIMScheduler(**SCHEDULER_CONFIG).save_pretrained(out / "scheduler")


def train(out: Path, recipe: LDMPhotoRecipe = RECIPE, device: str = "cpu", steps: int | None = None,
          max_minutes: float | None = None, zoo_dir: Path | None = None, stop_at: int | None = None) -> Path:
    """Train zoo:ldm-photo into ``out`` (``unet/``, ``scheduler/``, ``recipe.json``, ``train_log.jsonl``).

    The cosine schedule spans ``steps``; training stops at ``stop_at`` (default: the recipe's, when ``steps`` is the
    recipe's), at ``steps`` or at ``max_minutes``, whichever comes first, and saves the EMA weights there.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    torch.set_num_threads(recipe.threads)
    stop_at = stop_at if stop_at is not None else (recipe.stop_at if not steps or steps == recipe.steps else None)
    steps = steps or recipe.steps
    last_step = min(steps, stop_at) if stop_at else steps
    max_minutes = max_minutes or recipe.max_minutes
    dev = torch.device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    t0 = time.time()
    zoo_dir = Path(zoo_dir) if zoo_dir else weights_root()
    vae = AutoencoderKL.from_pretrained(zoo_dir / recipe.vae, torch_dtype=torch.float32).to(dev).eval()
    photos = _photos(recipe.photos)
    levels: dict = {}  # each photo resized once per scale, for both banks
    small = latent_bank(vae, photos, 64, recipe.bank_small, recipe.seed, recipe.scales, device=dev, levels=levels)
    big = latent_bank(vae, photos, 128, recipe.bank_big, recipe.seed + 1, recipe.scales, device=dev, levels=levels)
    del vae
    print(f"latent bank: {len(small)} x 64 px, {len(big)} x 128 px from {len(photos)} photos "
          f"({time.time() - t0:.0f} s); latent std {small.std():.3f}", flush=True)
    states, _ = token_states([""], device="cpu")
    empty = states.to(dev)  # [1, L, 384]
    unet = UNet2DConditionModel(**recipe.unet).to(dev).train()
    ema = EMAModel(unet.parameters(), decay=recipe.ema_decay, use_ema_warmup=True, power=0.75)
    sched = DDPMScheduler(**{k: v for k, v in SCHEDULER_CONFIG.items() if k not in ("set_alpha_to_one", "steps_offset")})
    opt = torch.optim.AdamW(unet.parameters(), lr=recipe.lr, weight_decay=1e-2)
    lr_sched = get_cosine_schedule_with_warmup(opt, recipe.warmup, steps)
    g = torch.Generator().manual_seed(recipe.seed)
    log = open(out / "train_log.jsonl", "a")
    t1 = time.time()
    step, running = 0, []
    for step in range(1, last_step + 1):
        bank, n = (big, recipe.big_batch) if step % recipe.big_every == 0 else (small, recipe.batch_size)
        z0 = bank[torch.randint(len(bank), (n,), generator=g)]
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, sched.config.num_train_timesteps, (n,), generator=g)
        zt = sched.add_noise(z0, noise, t)
        pred = unet(zt.to(dev), t.to(dev), encoder_hidden_states=empty.expand(n, -1, -1)).sample
        loss = F.mse_loss(pred, noise.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        lr_sched.step()
        ema.step(unet.parameters())
        running.append(loss.item())
        minutes = (time.time() - t1) / 60
        if step % 50 == 0 or step == last_step:
            rec = {"step": step, "seconds": round(time.time() - t1, 1), "loss": float(np.mean(running))}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(f"[{step}/{steps}] loss={rec['loss']:.4f} {rec['seconds']:.0f}s", flush=True)
            running = []
        last = step == last_step or minutes > max_minutes
        if step % recipe.checkpoint_every == 0 or last:
            saved = UNet2DConditionModel(**recipe.unet)
            ema.copy_to(saved.parameters())
            _save(saved.to(torch.float16), out)
            meta = {**asdict(recipe), "steps_done": step, "train_minutes": round(minutes, 1),
                    "bank_seconds": round(t1 - t0, 1)}
            (out / "recipe.json").write_text(json.dumps(meta, indent=2, default=list))
        if last:
            if step < last_step:
                print(f"time budget reached at step {step}", flush=True)
            break
    log.close()
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train zoo:ldm-photo by its recipe")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int)
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--zoo-dir", type=Path)
    p.add_argument("--stop-at", type=int, help="stop at this step (the lr schedule still spans --steps)")
    a = p.parse_args(argv)
    train(a.out, RECIPE, a.device, a.steps, a.max_minutes, a.zoo_dir, a.stop_at)


if __name__ == "__main__":
    main()
