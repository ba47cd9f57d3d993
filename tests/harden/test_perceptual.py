"""The grad-ssim LPIPS stand-in: SSIM matches scikit-image, the distance is 0 on identical images and grows with damage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentguard.harden.perceptual import grad_ssim_distance, perceptual_distance, ssim


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 32, 32, generator=g)
    b = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    ours = ssim(a.double(), b.double())
    ref = [structural_similarity(x.permute(1, 2, 0).numpy(), y.permute(1, 2, 0).numpy(), channel_axis=2,
                                 data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
           for x, y in zip(a.double(), b.double())]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6)


def test_distance_zero_on_identical_and_monotone_in_noise():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(1, 3, 64, 64, generator=g)
    n = torch.randn(a.shape, generator=g)
    assert grad_ssim_distance(a, a).abs().max() < 1e-6
    d = [grad_ssim_distance(a, (a + s * n).clamp(0, 1)).item() for s in (0.02, 0.05, 0.1, 0.2)]
    assert all(x < y for x, y in zip(d, d[1:])), d
    # blur (edges lost) costs more than the same-MSE uniform brightness shift: the point of a perceptual term
    blur = torch.nn.functional.avg_pool2d(a, 3, 1, 1, count_include_pad=False)
    shift = (a + ((blur - a).pow(2).mean().sqrt())).clamp(0, 1)
    assert grad_ssim_distance(a, blur) > 2 * grad_ssim_distance(a, shift)


def test_differentiable_and_dispatch():
    a = torch.rand(2, 3, 16, 16, requires_grad=True)
    b = torch.rand(2, 3, 16, 16)
    perceptual_distance("grad-ssim", a, b).sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()
    assert torch.equal(perceptual_distance("none", a, b), torch.zeros(2))
    with pytest.raises(ValueError, match="perceptual must be one of"):
        perceptual_distance("lpips", a, b)
    with pytest.raises(ValueError, match="one shape"):
        grad_ssim_distance(a, b[:1])
