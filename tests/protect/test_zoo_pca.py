"""PCA on the REAL bundled zoo:vae-a and bundled photos (64 px, paper defaults: T=40, alpha=2/255,
eps=16/255). Thresholds are the factors measured on this setup (see docs/protect.md) with margin, and a
random-sign perturbation of the same L-inf budget as a control."""

from __future__ import annotations

import pytest
import torch

from latentguard.ops.runtime import torch_generator
from latentguard.protect import get, kl_standard_normal
from latentguard.protect.engine import psnr, sample_posterior


def _stats(vae, img, clean):
    """KL, mean sigma^2, PSNR of D(sampled z), PSNR of D(mu), mean ln sigma^2 (per image)."""
    with torch.no_grad():
        mean, logvar = vae.encode(img)
        rec = vae.decode(sample_posterior(mean, logvar, torch_generator(0))).clamp(0, 1)
        rec_mean = vae.decode(mean).clamp(0, 1)
        return (kl_standard_normal(mean, logvar), torch.exp(logvar).flatten(1).mean(1), psnr(rec, clean),
                psnr(rec_mean, clean), logvar.float().flatten(1).mean(1))


@pytest.fixture(scope="module")
def runs(vae_a, samples64):
    x = samples64
    g = torch.Generator().manual_seed(1)
    noisy = (x + (torch.randint(0, 2, x.shape, generator=g) * 2 - 1) * 16 / 255).clamp(0, 1)
    out = {"clean": x, "noise": noisy}
    for name in ("pca+", "pca-"):
        res = get(name, vae=vae_a).protect(x)
        assert float((res.images - x).abs().max()) <= 16 / 255 + 1e-6
        assert res.images.min() >= 0 and res.images.max() <= 1
        out[name] = res.images
    return {k: _stats(vae_a, v, x) for k, v in out.items()}


def test_pca_plus_raises_kl(runs):
    kl0 = runs["clean"][0]
    ratio = runs["pca+"][0] / kl0
    noise = runs["noise"][0] / kl0
    # measured: x1.10-1.27 per image, mean x1.18 (noise control: x0.99-1.00)
    assert (ratio > 1.06).all(), ratio
    assert float(ratio.mean()) > 1.12, ratio
    assert (ratio - noise > 0.05).all()


def test_pca_minus_lowers_kl(runs):
    kl0 = runs["clean"][0]
    ratio = runs["pca-"][0] / kl0
    # measured: KL x0.79-0.96, mean x0.88 (noise control: x0.99-1.00). The loss with v=1e-8 is dominated by
    # mu^2/v, so PCA- drives mu to 0 (sum mu^2 x0.59-0.77); the mean sigma^2 is not pushed down on zoo:vae-a
    # (measured x0.48-2.35).
    assert (ratio < 0.985).all(), ratio
    assert float(ratio.mean()) < 0.93, ratio


def test_pca_plus_degrades_reconstruction(runs):
    p_clean = runs["clean"][2]
    drop = p_clean - runs["pca+"][2]
    drop_noise = p_clean - runs["noise"][2]
    # measured: 0.8-5.5 dB per image, mean 2.48 dB (noise control: mean 0.21 dB); 5.4 dB at 256 px (slow test)
    assert (drop > 0.3).all(), drop
    assert float(drop.mean()) > 1.2
    assert float(drop.mean()) > 3 * float(drop_noise.mean())


def test_reconstruction_drop_is_a_shift_of_the_mean_not_sampling(runs):
    """These posteriors are so narrow that decoding a sample is decoding the mean, before and after PCA; the
    drop is there with the mean alone (benchmarks/pca_mean_vs_sample.py, 8 photos: the PSNRs of D(mu) and
    D(sample) differ by <= 0.04 dB for every input, <= 0.006 dB after PCA+; D(mu) drop after PCA+ 0.8-5.5 dB)."""
    for name in ("clean", "noise", "pca+", "pca-"):
        gap = (runs[name][2] - runs[name][3]).abs()
        assert (gap < 0.1).all(), (name, gap)
    drop_mean = runs["clean"][3] - runs["pca+"][3]
    assert (drop_mean > 0.3).all() and float(drop_mean.mean()) > 1.2, drop_mean


def test_pca_plus_shrinks_the_posterior_variance(runs):
    """With sigma^2 << v = 1, dL/d ln sigma^2 = (sigma^2/v - 1)/2 < 0: ascent on L lowers sigma^2. Measured on these
    4 photos at 64 px: mean ln sigma^2 -1.51, -2.03, -1.16, -0.21 (noise control: -0.04 to +0.06); sigma^2 fell
    for 54-94% of the latent elements (benchmarks/results/pca_mean_vs_sample.json)."""
    change = runs["pca+"][4] - runs["clean"][4]
    noise = runs["noise"][4] - runs["clean"][4]
    assert (change < -0.1).all() and float(change.mean()) < -0.8, change
    assert (noise.abs() < 0.1).all(), noise


def test_pca_effect_grows_with_the_budget(vae_a, samples64):
    """On the bundled VAEs the paper's budget moves the posterior only moderately (docs/protect.md); a larger
    budget must move it more, in both directions (4 photos, measured at 32/255, T=80: PCA+ sum mu^2 x1.25-1.92,
    PCA- x0.27-0.54, vs x1.19-1.37 and x0.54-0.75 at 16/255)."""
    x = samples64[:2]

    def mu2(img):
        with torch.no_grad():
            return vae_a.encode(img)[0].pow(2).flatten(1).sum(1)

    m0 = mu2(x)
    small = {n: mu2(get(n, vae=vae_a, eps=16 / 255, steps=40).protect(x).images) / m0 for n in ("pca+", "pca-")}
    large = {n: mu2(get(n, vae=vae_a, eps=32 / 255, steps=40, alpha=4 / 255).protect(x).images) / m0
             for n in ("pca+", "pca-")}
    assert (large["pca+"] > small["pca+"] * 1.1).all(), (small, large)
    assert (large["pca-"] < small["pca-"] * 0.85).all(), (small, large)


@pytest.mark.slow
def test_pca_plus_costs_several_db_on_full_256px_photos(vae_a):
    """The issue's "several dB": at 256 px (2 photos, paper defaults) the reconstruction of the PCA+ image loses
    5.4 dB on average (2.1 and 8.8 dB) vs 0.8 dB for random sign noise of the same budget (a shift of the
    posterior mean: decoding the mean instead of a sample changes it by < 0.001 dB)."""
    from latentguard.samples import sample_images

    x = sample_images(256)[:2]
    g = torch.Generator().manual_seed(1)
    noisy = (x + (torch.randint(0, 2, x.shape, generator=g) * 2 - 1) * 16 / 255).clamp(0, 1)
    p0 = _stats(vae_a, x, x)[2]
    drop = p0 - _stats(vae_a, get("pca+", vae=vae_a).protect(x).images, x)[2]
    drop_noise = p0 - _stats(vae_a, noisy, x)[2]
    assert float(drop.mean()) > 3.0 and (drop > 1.0).all(), drop
    assert float(drop.mean()) > 4 * float(drop_noise.mean()), (drop, drop_noise)
