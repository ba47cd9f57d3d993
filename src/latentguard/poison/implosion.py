"""The implosion experiment (arXiv:2409.12314) on the bundled text-to-image model ``zoo:t2i``.

For each number ``k`` of poisoned concepts and each seed:

1. draw a class-balanced Fashion-MNIST caption set (``n_images`` pairs; the same clean set for every
   ``k`` of a seed) and poison ``k`` concepts with :func:`~latentguard.poison.poisons.poison_plan`
   (target ``A`` gets ``fraction`` x its clean count of poison pairs showing source ``B``; dirty-label
   relabels ``B`` images with ``A`` captions, nightshade perturbs ``A`` images toward ``B`` latents);
2. measure the training set's Alignment Difficulty with ``zoo:embed`` (exact; AD, D_fea, D_stru; the
   similarity calibrated for the embedder by :func:`~latentguard.poison.embed.similarity_calibration`);
3. fine-tune a fresh copy of ``zoo:t2i``'s UNet on the set (epsilon-prediction MSE, the zoo recipe's
   objective, classifier-free-guidance caption drop; text from the frozen MiniLM tower via
   :func:`latentguard.models.text.token_states`; latents = vae-a posterior mean x scaling factor);
4. generate ``images_per_class`` images for each of the 10 class prompts with the diffusers pipeline
   (DDIM, fixed generator seed across ``k``: common random numbers) and score them with ``zoo:embed``:
   zero-shot accuracy over the 10 class prompts and mean image-prompt cosine, separately for
   *clean* prompts (classes not poisoned) and *poisoned* prompts, plus the attack success rate
   (poisoned-prompt generations classified as the source concept).

The pretrained model (no fine-tuning) is scored once per seed as ``base``; ``k = 0`` is the control for
fine-tuning itself. Outputs: ``runs.jsonl`` (one row per run, resumable), ``curves.csv`` (mean, std over
seeds per ``k``), ``ad_vs_k.png``, ``alignment_vs_k.png``, ``grids/*.png``, ``run.json``.
Numbers from ``zoo:embed`` are not CLIP scores.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from latentguard.io.datasets import FASHION_CLASSES, caption_for
from latentguard.poison.config import ImplosionConfig
from latentguard.io import atomic_write_text, JsonlWriter, save_image, write_manifest
from latentguard.models import load_pipeline, load_vae
from latentguard.models.text import token_states
from latentguard.ops.grid import make_grid
from latentguard.ops.runtime import resolve_device, seed_everything
from latentguard.poison import poisons as P
from latentguard.poison.alignment import alignment_difficulty
from latentguard.poison.dataset import fashion_pairs, PairSet
from latentguard.poison.embed import embed_pairs, load_pair_embedder, similarity_calibration


# ----------------------------------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------------------------------
def _poisoned_set(cfg: ImplosionConfig, clean, k: int, seed: int, vae):
    plan = P.poison_plan(list(FASHION_CLASSES), k, seed=seed)
    ps = clean
    for l, (t, s) in enumerate(plan):
        if cfg.kind == "dirty-label":
            ps = P.dirty_label(ps, t, s, fraction=cfg.fraction, mode=cfg.mode, seed=seed * 100 + l)
        else:
            ps, _ = P.nightshade(ps, t, s, vae, fraction=cfg.fraction, seed=seed * 100 + l,
                                 cfg=P.NightshadeConfig(eps=cfg.eps, steps=cfg.pgd_steps))
    return ps, plan


@torch.no_grad()
def _latents(vae, images: torch.Tensor, device: torch.device, batch: int = 500) -> torch.Tensor:
    out = []
    for i in range(0, len(images), batch):
        mean, _ = vae.encode(images[i : i + batch].to(device))
        out.append(vae.to_pipeline_latent(mean))
    return torch.cat(out)


def finetune_unet(unet, latents: torch.Tensor, cond: torch.Tensor, cond_idx: torch.Tensor, empty_idx: int,
                  noise_scheduler, cfg: ImplosionConfig, seed: int, progress: bool = True) -> list[float]:
    """Epsilon-prediction fine-tuning of ``unet`` in place; returns the per-step losses.

    ``cond[cond_idx[i]]`` is the text state of pair ``i``; with probability ``cfg_drop`` it is replaced by
    ``cond[empty_idx]`` (the empty prompt), as in the zoo recipe (classifier-free guidance stays usable).
    """
    dev = latents.device
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    unet.train()
    losses = []
    it = range(cfg.steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="fine-tune", unit="step", leave=False)
    n_t = noise_scheduler.config.num_train_timesteps
    for _ in it:
        bi = torch.randint(len(latents), (cfg.batch_size,), generator=g)
        z0 = latents[bi.to(dev)]
        ci = cond_idx[bi]
        drop = torch.rand(cfg.batch_size, generator=g) < cfg.cfg_drop
        ci = torch.where(drop, torch.full_like(ci, empty_idx), ci)
        noise = torch.randn(z0.shape, generator=g).to(dev)
        t = torch.randint(0, n_t, (cfg.batch_size,), generator=g).to(dev)
        zt = noise_scheduler.add_noise(z0, noise, t)
        pred = unet(zt, t, encoder_hidden_states=cond[ci.to(dev)]).sample
        loss = F.mse_loss(pred.float(), noise.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    unet.eval()
    return losses


@torch.no_grad()
def generate_and_score(pipe, embedder, cfg: ImplosionConfig, seed: int, targets: dict[str, str]) -> tuple[dict, torch.Tensor]:
    """Generate ``images_per_class`` images per class prompt and score them with the embedder.

    Returns ``(metrics, images [10 * m, 3, 32, 32])`` (class-major order).
    """
    m = cfg.images_per_class
    prompts = [caption_for(c, cfg.eval_template) for c in range(len(FASHION_CLASSES))]
    all_prompts = [p for p in prompts for _ in range(m)]
    labels = torch.arange(len(prompts)).repeat_interleave(m)
    dev = pipe.unet.device
    g = torch.Generator(device="cpu").manual_seed(10_000 + seed)
    # fixed initial latents (common random numbers across k); DDIM with eta=0 is deterministic after that
    lat = torch.randn(len(all_prompts), pipe.unet.config.in_channels, pipe.unet.config.sample_size,
                      pipe.unet.config.sample_size, generator=g)
    imgs = []
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    for i in range(0, len(all_prompts), cfg.eval_batch):
        out = pipe(all_prompts[i : i + cfg.eval_batch], num_inference_steps=cfg.inference_steps,
                   guidance_scale=cfg.guidance_scale, latents=lat[i : i + cfg.eval_batch].to(dev, pipe.unet.dtype),
                   output_type="pt", height=size, width=size)
        imgs.append(out.images.float().cpu())
    x = torch.cat(imgs).clamp(0, 1)
    te = embedder.embed_texts(prompts).float().cpu()
    ie = torch.cat([embedder.embed_images(x[i : i + 256].to(embedder.device)).float().cpu() for i in range(0, len(x), 256)])
    sims = ie @ te.T
    pred = sims.argmax(1)
    own = sims[torch.arange(len(x)), labels]
    names = list(FASHION_CLASSES)
    poisoned_cls = torch.tensor([names[c] in targets for c in labels.tolist()])
    src_idx = torch.tensor([names.index(targets[names[c]]) if names[c] in targets else -1 for c in labels.tolist()])

    def mean(t: torch.Tensor) -> float:
        return float(t.float().mean()) if t.numel() else math.nan

    correct = pred == labels
    metrics = {
        "acc_all": mean(correct), "acc_clean": mean(correct[~poisoned_cls]), "acc_poisoned": mean(correct[poisoned_cls]),
        "sim_all": mean(own), "sim_clean": mean(own[~poisoned_cls]), "sim_poisoned": mean(own[poisoned_cls]),
        "asr": mean((pred == src_idx)[poisoned_cls]),
        "acc_per_class": {names[c]: mean(correct[labels == c]) for c in range(len(names))},
    }
    return metrics, x


def _grid(x: torch.Tensor, m: int, per_row: int) -> torch.Tensor:
    n_cls = len(x) // m
    sel = torch.cat([x[c * m : c * m + per_row] for c in range(n_cls)])
    return make_grid(sel, nrow=per_row)


# ----------------------------------------------------------------------------------------------------
# The experiment
# ----------------------------------------------------------------------------------------------------
def run_implosion(cfg: ImplosionConfig, out_dir: str | Path, *, device: str = "auto", command: str = "",
                  resume: bool = True, progress: bool = True) -> dict:
    """Run every (seed, k) of ``cfg`` (plus the pretrained ``base`` per seed); write the outputs; return the summary."""
    from diffusers import DDPMScheduler

    out = Path(out_dir)
    (out / "grids").mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    t_start = time.time()
    write_manifest(out, command or "run_implosion", asdict(cfg), cfg.seeds[0], extra={"device": str(dev)})
    writer = JsonlWriter(out / "runs.jsonl", resume=resume)
    done = writer.done_keys() if resume else set()
    pipe = load_pipeline(cfg.model, kind="text2img", device=dev)
    vae = load_vae(cfg.vae, device=dev)
    embedder = load_pair_embedder(cfg.embedder, device=dev)
    cal = similarity_calibration(cfg.embedder)
    original = copy.deepcopy(pipe.unet.state_dict())
    noise_sched = DDPMScheduler.from_config(pipe.scheduler.config)
    todo = [(s, None) for s in cfg.seeds] + [(s, k) for s in cfg.seeds for k in cfg.ks]
    for seed, k in todo:
        key = f"base_s{seed}" if k is None else f"k{k}_s{seed}"
        if key in done:
            continue
        t0 = time.time()
        seed_everything(seed)
        pipe.unet.load_state_dict(original)
        row: dict = {"key": key, "seed": seed, "k": k, "status": "ok"}
        if k is None:
            metrics, x = generate_and_score(pipe, embedder, cfg, seed, {})
            row.update(metrics)
        else:
            x, caps, concepts, lab, ids = fashion_pairs(cfg.n_images, split=cfg.split, seed=cfg.data_seed + seed,
                                                        template=cfg.template)
            clean = PairSet.from_lists(x, caps, concepts)
            ps, plan = _poisoned_set(cfg, clean, k, seed, vae)
            u, v = embed_pairs(embedder, ps.images, list(ps.captions))
            ad = alignment_difficulty(u, v, sim_offset=cal.offset, sim_scale=cal.scale)
            targets = dict(plan)
            row.update({"plan": plan, "n_pairs": len(ps), "n_poisoned": int(ps.poisoned.sum()),
                        "ad": ad.ad, "feature": ad.feature, "structure": ad.structure})
            lat = _latents(vae, ps.images, dev)
            uniq = [""] + sorted(set(ps.captions))
            states, _ = token_states(uniq, device=str(dev))
            pos = {c: i for i, c in enumerate(uniq)}
            cond_idx = torch.tensor([pos[c] for c in ps.captions])
            pipe.unet.requires_grad_(True)
            losses = finetune_unet(pipe.unet, lat, states.to(pipe.unet.dtype), cond_idx, 0, noise_sched, cfg,
                                   seed=1000 * seed + k, progress=progress)
            pipe.unet.requires_grad_(False)
            row["loss_first50"] = float(np.mean(losses[:50])) if losses else math.nan
            row["loss_last50"] = float(np.mean(losses[-50:])) if losses else math.nan
            metrics, x = generate_and_score(pipe, embedder, cfg, seed, targets)
            row.update(metrics)
        if cfg.grid_images:
            save_image(_grid(x, cfg.images_per_class, cfg.grid_images), out / "grids" / f"{key}.png",
                       metadata={"key": key, "rows": "Fashion-MNIST classes, in order"})
        row["seconds"] = round(time.time() - t0, 1)
        writer.write(row)
        if progress:
            short = {kk: (round(vv, 4) if isinstance(vv, float) else vv) for kk, vv in row.items()
                     if kk in ("key", "ad", "acc_clean", "acc_poisoned", "asr", "sim_clean", "seconds")}
            print(json.dumps(short), flush=True)
    pipe.unet.load_state_dict(original)
    rows = [r for r in writer.rows() if r.get("status") == "ok"]
    summary = summarize(rows, cfg)
    summary["similarity_calibration"] = cal.to_dict()
    summary["seconds_total_this_call"] = round(time.time() - t_start, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    write_curves(out, summary)
    return summary


_METRICS = ("ad", "feature", "structure", "acc_all", "acc_clean", "acc_poisoned", "sim_all", "sim_clean",
            "sim_poisoned", "asr")


def _stats(vals: list[float]) -> dict:
    v = np.array([x for x in vals if x is not None and not (isinstance(x, float) and math.isnan(x))], dtype=float)
    if len(v) == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}


def summarize(rows: list[dict], cfg: ImplosionConfig) -> dict:
    """Mean and standard deviation over seeds, per ``k`` (and ``base``), of every metric."""
    curves = []
    for k in sorted(cfg.ks):
        rk = [r for r in rows if r.get("k") == k]
        if not rk:
            continue
        curves.append({"k": k, "n_seeds": len(rk), **{m: _stats([r.get(m) for r in rk]) for m in _METRICS}})
    base = [r for r in rows if r.get("k") is None]
    return {"curves": curves, "base": {m: _stats([r.get(m) for r in base]) for m in _METRICS if m in base[0]}
            if base else {}, "config": asdict(cfg)}


def write_curves(out: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = summary["curves"]
    cols = ["k", "n_seeds"] + [f"{m}_{s}" for m in _METRICS for s in ("mean", "std")]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for c in curves:
        w.writerow([c["k"], c["n_seeds"]] + [c[m][s] for m in _METRICS for s in ("mean", "std")])
    atomic_write_text(out / "curves.csv", buf.getvalue())
    if not curves:
        return
    ks = [c["k"] for c in curves]

    def plot(ax, m, label, **kw):
        ax.errorbar(ks, [c[m]["mean"] for c in curves], yerr=[c[m]["std"] for c in curves], marker="o", capsize=3,
                    label=label, **kw)

    n_seeds = max(c["n_seeds"] for c in curves)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    plot(ax, "ad", "AD")
    plot(ax, "feature", "D_fea", ls="--")
    plot(ax, "structure", "D_stru", ls=":")
    ax.set_xlabel("poisoned concepts k")
    ax.set_ylabel("alignment difficulty (zoo:embed)")
    ax.set_title(f"training-set AD vs k (mean +- std, {n_seeds} seeds)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "ad_vs_k.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    plot(ax, "acc_clean", "zero-shot acc, clean prompts")
    plot(ax, "acc_poisoned", "zero-shot acc, poisoned prompts", ls="--")
    plot(ax, "asr", "attack success (poisoned -> source)", ls=":")
    plot(ax, "sim_clean", "cosine, clean prompts", ls="-.")
    base = summary.get("base") or {}
    if "acc_all" in base:
        ax.axhline(base["acc_all"]["mean"], color="gray", lw=1, ls="--", label="pretrained, all prompts")
    ax.set_xlabel("poisoned concepts k")
    ax.set_ylabel("generation alignment (zoo:embed)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"generation alignment vs k (mean +- std, {n_seeds} seeds)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "alignment_vs_k.png", dpi=120)
    plt.close(fig)


def config_fields() -> list[str]:
    return [f.name for f in fields(ImplosionConfig)]
