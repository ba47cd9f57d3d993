"""Audit a latent diffusion model for membership leakage, with the decoder-pullback mask.

    PYTHONPATH=src python examples/privacy_audit.py

Uses the bundled memorising model zoo:t2i-members and its declared member split (a small subset, so it
runs in a few minutes on one CPU core). The same calls take any diffusers Stable Diffusion pipeline.
"""

from __future__ import annotations

import torch

from latentguard.models import load_pipeline
from latentguard.privacy import audit, mia
from latentguard.privacy.pullback import PullbackConfig


def main() -> None:
    torch.set_num_threads(1)
    pipe = load_pipeline("zoo:t2i-members", kind="text2img")
    members, nonmembers, _ = audit.zoo_split_sets("zoo:t2i-members", 40, 40, seed=0)
    config = mia.MIAConfig(attacks=("loss", "sima"), timesteps=(50, 300))
    pullback = PullbackConfig(top_k=10, oversample=5, power_iters=1, probes=16, drop=0.4)
    scores, _ = audit.compute_membership_scores(pipe, members, nonmembers, config, pullback)
    summary = mia.evaluate(scores)
    for attack, by_mask in summary["attacks"].items():
        for mask, by_proto in by_mask.items():
            p, h = by_proto["paper"], by_proto["honest"]
            print(f"{attack:5s} {mask:8s} paper AUROC {p['auroc']:.3f} (t={p['timestep']})  "
                  f"honest AUROC {h['auroc']:.3f} (t={h['timestep']})")
    print("AUROC per distortion quartile (loss, unmasked):",
          {q: round(g["loss/none"], 3) for q, g in summary["distortion"]["quartiles"].items()})


if __name__ == "__main__":
    main()
