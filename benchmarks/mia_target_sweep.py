"""How memorised is a membership target? The loss attack's AUROC along a fine-tune of zoo:t2i on the members.

    PYTHONPATH=src python benchmarks/mia_target_sweep.py [--steps 240] [--eval-at 20,40,80,120,160,240] \
        [--lr 1e-4] [--out benchmarks/results/mia_target_sweep.json]

zoo:t2i never saw the declared member or non-member split (``datasets.member_split()``), so it starts at
chance; fine-tuning it on the 500 members (``--batch-size``; 128: 4 steps per epoch) memorises them a little more with
every epoch, as a Stable Diffusion checkpoint fine-tuned on a small set does. At each ``--eval-at`` step the
plain loss attack (the audit's: ``|eps - eps_theta(z_t, t, c)|^4`` summed over latent dims, one fixed noise per
sample, timesteps 10-300) scores all 500 members and 500 non-members, under both protocols of
:mod:`latentguard.privacy.mia` (paper: best timestep by all labels; honest: timestep and threshold on a
stratified half). The schedule spans ``--steps``: a checkpoint at step k has seen the warm-up and the cosine's
first k steps, not a whole k-step run; the chosen recipe is then built and measured on its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TIMESTEPS = (10, 50, 100, 200, 300)


def split_latents(vae, ids, images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled vae latents and caption token states (template 0, as the audit conditions) of Fashion-MNIST
    train images ``ids``; ``vae`` a diffusers AutoencoderKL."""
    from latentguard.io import datasets
    from latentguard.models.text import token_states
    from latentguard.zoo.train.recipes import encode_fashion_latents

    ids = np.array(ids)
    c, _ = token_states([datasets.caption_for(int(l), 0) for l in labels[ids]])
    return encode_fashion_latents(vae, images[ids], torch.device("cpu")), c


def loss_attack(unet, members_z, members_c, non_z, non_c, seed: int = 0) -> dict:
    """Both protocols' metrics of the plain loss attack on member / non-member latents."""
    from diffusers import DDIMScheduler

    from latentguard.privacy import mia
    from latentguard.zoo.train.recipes import SCHEDULER_CONFIG

    sched = DDIMScheduler(**SCHEDULER_CONFIG)  # the zoo t2i models' own scheduler (only its alphas are used)
    scorer = mia.ResidualScorer(unet, sched, mia.MIAConfig(attacks=("loss",), timesteps=TIMESTEPS, seed=seed))
    was_training = unet.training
    unet.eval()
    z = torch.cat([members_z, non_z])
    c = torch.cat([members_c, non_c])
    r = scorer.powered_residuals(z, c)["loss"]  # [N, T, d]
    unet.train(was_training)
    scores = -r.sum(-1).astype(np.float64)
    labels = np.r_[np.ones(len(members_z)), np.zeros(len(non_z))].astype(np.int64)
    cal, ev = mia.stratified_split(labels, 0.5, seed)
    paper = mia.paper_protocol(scores, labels, TIMESTEPS)
    honest = mia.honest_protocol(scores, labels, TIMESTEPS, cal, ev)
    keep = ("auroc", "tpr_at_1pct_fpr", "timestep")
    return {"paper": {k: paper[k] for k in keep} | {"auroc_per_timestep": paper["auroc_per_timestep"]},
            "honest": {k: honest[k] for k in keep} | {"asr": honest["asr"]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=240, help="the fine-tune's schedule length (default 240)")
    ap.add_argument("--eval-at", default="20,40,80,120,160,240", help="steps to measure at (default 20,...,240)")
    ap.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default 1e-4)")
    ap.add_argument("--warmup", type=int, default=10, help="warm-up steps (default 10)")
    ap.add_argument("--batch-size", type=int, default=128, help="fine-tune batch (default 128, t2i-members')")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/mia_target_sweep.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from latentguard.io import datasets
    from latentguard.models.registry import weights_root
    from latentguard.zoo.train import recipes as R

    eval_at = sorted({int(s) for s in a.eval_at.split(",")})
    if not eval_at or eval_at[-1] > a.steps:
        ap.error(f"--eval-at must be steps within --steps {a.steps}")
    zoo = weights_root()
    images, labels = datasets.fashion_mnist("train")
    split = datasets.member_split()
    vae = AutoencoderKL.from_pretrained(zoo / "vae-a", torch_dtype=torch.float32).eval()

    mz, mc = split_latents(vae, split["members"], images, labels)
    nz, nc = split_latents(vae, split["nonmembers"], images, labels)
    rows = []
    t0 = time.time()
    base = UNet2DConditionModel.from_pretrained(zoo / "t2i" / "unet", torch_dtype=torch.float32)
    rows.append({"step": 0, "epochs": 0.0, **loss_attack(base, mz, mc, nz, nc), "seconds": round(time.time() - t0, 1)})
    print(json.dumps(rows[-1]["honest"]), flush=True)
    del base
    recipe = dataclasses.replace(
        R.RECIPES["t2i-members"], seed=13, steps=a.steps, lr=a.lr, batch_size=a.batch_size,
        extra={**R.RECIPES["t2i-members"].extra, "init": "t2i", "warmup": a.warmup})

    def cb(step, unet):
        if step in eval_at:
            rows.append({"step": step, "epochs": round(step * recipe.batch_size / len(mz), 2),
                         **loss_attack(unet, mz, mc, nz, nc), "seconds": round(time.time() - t0, 1)})
            print(step, json.dumps(rows[-1]["honest"]), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        R.train_t2i(recipe, Path(tmp), torch.device("cpu"), zoo, callback=cb, stop_at=eval_at[-1])
    out = {"model": "zoo:t2i fine-tuned on the 500 declared members", "steps": a.steps, "lr": a.lr,
           "warmup": a.warmup, "batch_size": recipe.batch_size, "seed": recipe.seed, "timesteps": list(TIMESTEPS),
           "n_members": len(mz), "n_nonmembers": len(nz), "threads": a.threads, "host": platform.node(),
           "command": " ".join(sys.argv), "rows": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
