"""Every baseline improves its own objective on the REAL zoo models (encoder methods: zoo:vae-a at 64 px,
20 steps; UNet methods: zoo:t2i at 32 px, few steps). Thresholds: measured relative improvements
(docs/protect.md) with margin; stochastic objectives are measured with the same noise before and after."""

from __future__ import annotations

import pytest
import torch

from latentguard.protect import get

# name -> (size, n_images, steps, min relative improvement per image, min mean relative improvement)
CASES = {
    "photoguard-enc": (64, 4, 20, 0.08, 0.12),   # measured 0.18-0.37
    "pca-adaptive": (64, 4, 20, 0.25, 0.4),      # minimised (the official default): measured 0.40-0.78, mean 0.53
    "advdm": (32, 4, 10, 0.05, 0.1),             # measured 0.15-2.3
    "mist": (32, 4, 10, 0.15, 0.25),             # measured 0.42-1.08
    "sds+": (32, 4, 10, 0.04, 0.08),             # measured 0.13-2.1
    "sds-": (32, 4, 10, 0.04, 0.08),             # measured 0.12-0.48
    "photoguard-diff": (32, 2, 6, 0.04, 0.06),   # measured 0.11-0.14
}
DIFFUSION = {"advdm", "mist", "sds+", "sds-", "photoguard-diff"}


@pytest.fixture(scope="module")
def photos():
    from latentguard.samples import sample_images

    return {64: sample_images(64)[:4], 32: sample_images(32)[:4]}


def _improvement(r):
    return (r.loss_after - r.loss_before) * (1 if r.maximize else -1)


@pytest.mark.parametrize("name", sorted(CASES))
def test_baseline_improves_its_objective(name, photos, vae_a, t2i_pipe):
    size, n, steps, min_rel, min_mean = CASES[name]
    x = photos[size][:n]
    kw = {"pipe": t2i_pipe} if name in DIFFUSION else {"vae": vae_a}
    res = get(name, steps=steps, **kw).protect(x)
    assert float((res.images - x).abs().max()) <= 16 / 255 + 1e-6
    assert res.images.min() >= 0 and res.images.max() <= 1
    rel = torch.tensor([_improvement(r) / abs(r.loss_before) for r in res.records])
    assert (rel > min_rel).all(), rel
    assert float(rel.mean()) > min_mean, rel


def test_pid_moves_posterior_away(photos, vae_a):
    res = get("pid", vae=vae_a, steps=20).protect(photos[64])
    # discrepancy is 0 at the clean image; measured 6.3-30 after 20 steps
    assert all(r.loss_before == 0 and r.loss_after > 2.0 for r in res.records)


def test_advdm_beats_random_noise_of_same_budget(photos, t2i_pipe):
    x = photos[32]
    g = torch.Generator().manual_seed(1)
    noisy = (x + (torch.randint(0, 2, x.shape, generator=g) * 2 - 1) * 16 / 255).clamp(0, 1)
    probe = get("advdm", pipe=t2i_pipe, steps=0)
    base = torch.tensor([r.loss_before for r in probe.protect(x).records])
    with_noise = torch.tensor([r.loss_before for r in probe.protect(noisy).records])
    attacked = torch.tensor([r.loss_after for r in get("advdm", pipe=t2i_pipe, steps=10).protect(x).records])
    # measured: noise moves the loss by <0.01; AdvDM raises it by 0.06-0.25
    assert float((attacked - base).mean()) > 5 * float((with_noise - base).abs().mean())


def test_diffusion_methods_restore_pipeline_state(t2i_pipe, photos):
    unet = t2i_pipe.unet
    unet.train()
    before = [p.requires_grad for p in unet.parameters()]
    get("sds-", pipe=t2i_pipe, steps=1).protect(photos[32][:1])
    assert unet.training and [p.requires_grad for p in unet.parameters()] == before
    unet.eval()
