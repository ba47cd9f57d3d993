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

The bundled weights are stage 1: the first ``stop_at`` steps of a ``steps``-long warm-up + cosine schedule (the
first build was stopped there by hand on a shared CPU). Stage 2 (:data:`FINISH`) finishes the schedule from
stage 1's EMA weights: a fresh AdamW, a short warm-up (Adam's moments are not kept in the stage-1 folder) and a
cosine from the learning rate stage 1's schedule had reached at ``stop_at`` down to 0 over the remaining steps,
with a fresh EMA (not bit-for-bit the uninterrupted 2400-step run; deterministic). It was run and measured and
moved no figure (img2img at strength 0.3: 21.00 dB / SSIM 0.515 against stage 1's 21.01 / 0.510), so it is not
bundled: the card says so. :data:`REFINE_LOW_T` is a second experiment from stage 1 (timesteps weighted to
img2img's range).

Rebuild: ``latentguard zoo train ldm-photo --out DIR`` (stage 1, the bundled weights);
``--init STAGE1_DIR`` runs stage 2 from them. ``python -m latentguard.zoo.train.ldm_photo`` runs one stage with
``--resume`` (exact: the full training state, ``state.pt``, is written with every checkpoint) and ``--bank-cache``.
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
from latentguard.io.datasets import gcompris_licences
from latentguard.io.datasets import photos as _photos
from latentguard.models.registry import cards_root, weights_root
from latentguard.models.text import token_states
from latentguard.ops.schedules import warmup_cosine

PHOTO_SOURCES = "nature:all+lomiri+lomiri20+sklearn"
# Scales chosen so that 128 px crops reach whole scenes of the ~2000-6000 px wallpapers, as in the held-out
# 256 px photos, and 64 px crops see textures too.
PHOTO_SCALES = (0.5, 0.35, 0.25, 0.18, 0.12, 0.09, 0.065, 0.045)
# gcompris-qt-data's photographs are 359-1080 px on their short side (median 768), the wallpapers 427-4096
# (median ~1900): their scales start at full size, so that 128 px crops of the 0.25-0.35 levels frame about as
# much scene as the 256 px held-out photos do, and none is enlarged much (the wallpapers' smallest scales would
# blow a 768 px photo up 2-4x).
GCOMPRIS_SCALES = (1.0, 0.7, 0.5, 0.35, 0.25)

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
    # with probability ``t_low_frac`` a sample's timestep is drawn from [0, t_low) instead of [0, 1000): more of
    # the training on the noise levels img2img at strength <= t_low/1000 uses (0: uniform, stage 1's draw)
    t_low: int = 1000
    t_low_frac: float = 0.0
    vae: str = "vae-a"
    photos: str = PHOTO_SOURCES
    scales: tuple = PHOTO_SCALES
    # further photo collections, each with its own scales: ``((spec, scales), ...)``. Each bank is shared among
    # the groups (``photos``/``scales`` first) in proportion to their photo counts, so every photo weighs the same.
    more_photos: tuple = ()
    unet: dict = field(default_factory=lambda: dict(UNET_CONFIG))


RECIPE = LDMPhotoRecipe()

# The rebuild with gcompris-qt-data's 115 photographs (146 photos in all, ~5x the first build's 31): the full
# 2400-step schedule (no hand stop), larger banks for the larger, more varied set. An experiment: measured against
# RECIPE in the card (ldm-photo.build.md): it generalises better and edits no better, so it is not bundled.
MORE_PHOTOS = LDMPhotoRecipe(seed=11, stop_at=None, bank_small=16000, bank_big=4000, max_minutes=150.0,
                             more_photos=(("gcompris", GCOMPRIS_SCALES),))


# Stage 2: the rest of stage 1's schedule from its EMA weights (see the module docstring).
# (the lr stage 1's diffusers schedule had reached at stop_at: ops.schedules.warmup_cosine is that lambda)
FINISH = LDMPhotoRecipe(seed=6, steps=RECIPE.steps - RECIPE.stop_at,
                        lr=round(warmup_cosine(RECIPE.stop_at, warmup=RECIPE.warmup, total=RECIPE.steps,
                                               base=RECIPE.lr), 8),
                        warmup=50, stop_at=None, max_minutes=150.0)


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

# An experiment (not bundled unless its card says so): stage 1's weights refined towards img2img's noise levels.
REFINE_LOW_T = LDMPhotoRecipe(seed=7, steps=600, lr=5e-5, warmup=50, stop_at=None, t_low=600, t_low_frac=0.75,
                              max_minutes=60.0)


def build(out: Path, device: str = "cpu", steps: int | None = None, max_minutes: float | None = None,
          zoo_dir: Path | None = None, stop_at: int | None = None, init: Path | None = None,
          finetune_steps: int | None = None, bank_cache: Path | None = None) -> Path:
    """The bundled build: stage 1 (:data:`RECIPE`) into ``out``. With ``init`` (a stage-1 folder): stage 2
    (:data:`FINISH`) from it into ``out`` instead, the measured-but-not-bundled finish of the schedule (the card
    says why). ``steps``/``stop_at`` shape stage 1, ``finetune_steps`` stage 2 (smoke runs)."""
    if init is None:
        return train(Path(out), RECIPE, device, steps, max_minutes, zoo_dir, stop_at, bank_cache=bank_cache)
    check_stage1(Path(init))
    return train(Path(out), FINISH, device, finetune_steps, max_minutes, zoo_dir, init=Path(init),
                 bank_cache=bank_cache)


def check_stage1(init: Path) -> None:
    """``init`` must be an ldm-photo folder (a diffusers UNet under ``unet/``), as stage 1 writes it."""
    if not (Path(init) / "unet" / "config.json").is_file():
        raise ValueError(f"--init {init}: not an ldm-photo folder (no unet/config.json); pass stage 1's output, "
                         "e.g. OUT/stage1")


def _groups(recipe: LDMPhotoRecipe) -> list[tuple[str, tuple]]:
    return [(recipe.photos, tuple(recipe.scales))] + [(spec, tuple(sc)) for spec, sc in recipe.more_photos]


def _shares(n: int, counts: list[int]) -> list[int]:
    """``n`` split in proportion to ``counts`` (largest remainders; the shares sum to ``n``)."""
    raw = [n * c / sum(counts) for c in counts]
    out = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: out[i] - raw[i])[: n - sum(out)]:
        out[i] += 1
    return out


def _bank(vae_loader, recipe: LDMPhotoRecipe, dev, cache: Path | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The two latent banks of ``recipe`` and its photo count (read from ``cache`` when it holds this recipe's
    banks)."""
    key = {"vae": recipe.vae, "photos": recipe.photos, "scales": list(recipe.scales), "seed": RECIPE.seed,
           "small": recipe.bank_small, "big": recipe.bank_big}
    if recipe.more_photos:  # (absent otherwise, so that the first build's cached banks still match)
        key["more_photos"] = [[spec, list(sc)] for spec, sc in recipe.more_photos]
    if cache is not None and Path(cache).is_file():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        if saved.get("key") == json.dumps(key):
            return saved["small"], saved["big"], int(saved.get("photos", 0))
    groups = [(_photos(spec), sc) for spec, sc in _groups(recipe)]
    counts = [len(p) for p, _ in groups]
    vae = vae_loader()
    small, big = [], []
    # the banks are drawn with stage 1's seeds in every stage (stage 2 sees the same crops); group g's seeds are
    # offset by 100 g, so the first group's crops are the first build's
    for g, ((photos, scales), n_s, n_b) in enumerate(zip(groups, _shares(recipe.bank_small, counts),
                                                          _shares(recipe.bank_big, counts))):
        levels: dict = {}  # each photo resized once per scale, for both banks
        small.append(latent_bank(vae, photos, 64, n_s, RECIPE.seed + 100 * g, scales, device=dev, levels=levels))
        big.append(latent_bank(vae, photos, 128, n_b, RECIPE.seed + 1 + 100 * g, scales, device=dev, levels=levels))
        print(f"bank group {g}: {counts[g]} photos, {n_s} + {n_b} crops", flush=True)
    small_t, big_t = torch.cat(small), torch.cat(big)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": json.dumps(key), "small": small_t.cpu(), "big": big_t.cpu(), "photos": sum(counts)},
                   cache)
    return small_t, big_t, sum(counts)


def train(out: Path, recipe: LDMPhotoRecipe = RECIPE, device: str = "cpu", steps: int | None = None,
          max_minutes: float | None = None, zoo_dir: Path | None = None, stop_at: int | None = None,
          init: Path | None = None, resume: bool = False, bank_cache: Path | None = None) -> Path:
    """Train one stage of zoo:ldm-photo into ``out`` (``unet/``, ``scheduler/``, ``recipe.json``,
    ``train_log.jsonl``, ``state.pt``).

    The cosine schedule spans ``steps``; training stops at ``stop_at`` (default: the recipe's, when ``steps`` is the
    recipe's), at ``steps`` or at ``max_minutes``, whichever comes first, and saves the EMA weights there.
    ``init``: start from this ldm-photo folder's UNet (stage 2). ``resume``: continue from ``out/state.pt`` (the
    model, EMA, optimizer, schedule and sampler state of the last checkpoint), exactly as if never stopped.
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
    small, big, n_photos = _bank(lambda: AutoencoderKL.from_pretrained(zoo_dir / recipe.vae, torch_dtype=torch.float32)
                                 .to(dev).eval(), recipe, dev, bank_cache)
    small, big = small.to(dev), big.to(dev)
    print(f"latent bank: {len(small)} x 64 px, {len(big)} x 128 px from {n_photos} photos "
          f"({time.time() - t0:.0f} s); latent std {small.std():.3f}", flush=True)
    states, _ = token_states([""], device="cpu")
    empty = states.to(dev)  # [1, L, 384]
    if init is not None:
        check_stage1(Path(init))
        unet = UNet2DConditionModel.from_pretrained(Path(init) / "unet", torch_dtype=torch.float32).to(dev).train()
    else:
        unet = UNet2DConditionModel(**recipe.unet).to(dev).train()
    ema = EMAModel(unet.parameters(), decay=recipe.ema_decay, use_ema_warmup=True, power=0.75)
    sched = DDPMScheduler(**{k: v for k, v in SCHEDULER_CONFIG.items() if k not in ("set_alpha_to_one", "steps_offset")})
    opt = torch.optim.AdamW(unet.parameters(), lr=recipe.lr, weight_decay=1e-2)
    lr_sched = get_cosine_schedule_with_warmup(opt, recipe.warmup, steps)
    g = torch.Generator().manual_seed(recipe.seed)
    first = 1
    state_path = out / "state.pt"
    if resume:
        if not state_path.is_file():
            raise ValueError(f"--resume: {state_path} does not exist (no checkpoint of this run to resume)")
        st = torch.load(state_path, map_location=dev, weights_only=False)
        unet.load_state_dict(st["unet"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        lr_sched.load_state_dict(st["lr_sched"])
        g.set_state(st["generator"])
        first = st["step"] + 1
        print(f"resumed at step {st['step']}", flush=True)
    log = open(out / "train_log.jsonl", "a")
    t1 = time.time()
    step, running = first - 1, []
    for step in range(first, last_step + 1):
        bank, n = (big, recipe.big_batch) if step % recipe.big_every == 0 else (small, recipe.batch_size)
        z0 = bank[torch.randint(len(bank), (n,), generator=g)]
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, sched.config.num_train_timesteps, (n,), generator=g)
        if recipe.t_low_frac > 0:
            low = torch.rand(n, generator=g) < recipe.t_low_frac
            t = torch.where(low, torch.randint(0, recipe.t_low, (n,), generator=g), t)
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
                    "bank_seconds": round(t1 - t0, 1), "init": str(init) if init else None}
            if init is not None and (Path(init) / "recipe.json").is_file():
                meta["stage1"] = json.loads((Path(init) / "recipe.json").read_text())
            (out / "recipe.json").write_text(json.dumps(meta, indent=2, default=list))
            tmp = state_path.with_suffix(".pt.tmp")
            torch.save({"unet": unet.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                        "lr_sched": lr_sched.state_dict(), "generator": g.get_state(), "step": step}, tmp)
            tmp.replace(state_path)
        if last:
            if step < last_step:
                print(f"time budget reached at step {step}", flush=True)
            break
    log.close()
    return out


LICENCES_CARD = "ldm-photo.data.md"


def licence_table() -> str:
    """The card page listing every gcompris-qt-data photograph in the training data with the licence and
    copyright Debian's copyright file declares for it (:func:`latentguard.io.datasets.gcompris_licences`)."""
    from collections import Counter

    lic = gcompris_licences()
    fallback = sum(v["files"] == "*" for v in lic.values())
    counts = Counter(v["license"] for v in lic.values())
    lines = [
        "## gcompris-qt-data's photographs, with their licences",
        "The training data of the `MORE_PHOTOS` experiment (`--stage 4`; not the bundled weights, see the build notes).",
        "Generated by `python -m latentguard.zoo.train.ldm_photo --write-licences` from the installed package's",
        "`/usr/share/doc/gcompris-qt-data/copyright` (DEP-5). The package ships WebP copies inside its Qt resource",
        "files; the copyright file names the upstream sources (mostly `.jpg`), matched here by stem.",
        f"{fallback} of the {len(lic)} photographs are covered only by the file's `Files: *` paragraph (the",
        "package's main licence, which its copyright file applies to every file it does not list otherwise).",
        "",
        "Licences: " + ", ".join(f"{k} {n}" for k, n in counts.most_common()) + ".",
        "",
        "| resource path | licence | copyright | paragraph |",
        "|---|---|---|---|",
    ]
    for path, v in lic.items():
        who = "the gcompris-qt authors (the `Files: *` list)" if v["files"] == "*" else v["copyright"].replace("|", "/")
        lines.append(f"| {path} | {v['license']} | {who} | `{v['files']}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train zoo:ldm-photo by its recipe")
    p.add_argument("--out", type=Path, help="the run folder (required unless --write-licences)")
    p.add_argument("--write-licences", action="store_true",
                   help=f"write the gcompris photo licence page of the card (cards/{LICENCES_CARD}) and exit")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int)
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--zoo-dir", type=Path)
    p.add_argument("--stop-at", type=int, help="stop at this step (the lr schedule still spans --steps)")
    p.add_argument("--stage", type=int, choices=(1, 2, 3, 4), default=1,
                   help="1: RECIPE from scratch; 2: FINISH from --init; 3: REFINE_LOW_T from --init; "
                        "4: MORE_PHOTOS (with gcompris-qt-data's photographs) from scratch")
    p.add_argument("--init", type=Path, help="stage 2: the stage-1 folder to start from")
    p.add_argument("--resume", action="store_true", help="continue this stage from OUT/state.pt")
    p.add_argument("--bank-cache", type=Path, help="keep the latent banks in this file (same crops either way)")
    a = p.parse_args(argv)
    if a.write_licences:
        (cards_root() / LICENCES_CARD).write_text(licence_table())
        print(f"wrote {cards_root() / LICENCES_CARD}")
        return
    if a.out is None:
        p.error("--out is required")
    if a.stage in (2, 3) and a.init is None:
        p.error(f"--stage {a.stage} needs --init STAGE1_FOLDER")
    recipe = {1: RECIPE, 2: FINISH, 3: REFINE_LOW_T, 4: MORE_PHOTOS}[a.stage]
    train(a.out, recipe, a.device, a.steps, a.max_minutes, a.zoo_dir, a.stop_at,
          init=a.init if a.stage in (2, 3) else None, resume=a.resume, bank_cache=a.bank_cache)


if __name__ == "__main__":
    main()
