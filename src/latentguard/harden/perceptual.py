"""A named, weight-free stand-in for LPIPS: multi-scale image-gradient L1 plus structural dissimilarity.

SRL-VAE's inner attack and outer loss use ``MSE + lambda * LPIPS``. LPIPS needs pretrained VGG/AlexNet
weights that cannot be downloaded here, so latentguard uses a differentiable perceptual *substitute*,
reported everywhere under its own name, ``grad-ssim`` (never as "LPIPS"):

.. math::

    d(a, b) = \\frac{1}{S} \\sum_{s=0}^{S-1} \\Big( \\tfrac{1}{2}\\big(\\lVert \\partial_x a_s - \\partial_x b_s \\rVert_1
              + \\lVert \\partial_y a_s - \\partial_y b_s \\rVert_1\\big) + \\big(1 - \\mathrm{SSIM}(a_s, b_s)\\big) \\Big)

where ``a_s`` is ``a`` average-pooled by ``2**s``, the L1 norms are means over pixels and channels, and SSIM
is the usual Gaussian-window SSIM (Wang et al. 2004; window 11, sigma 1.5, K1=0.01, K2=0.03, data range 1;
the window shrinks to the image at small scales). Gradients and SSIM respond to edges and texture, which
MSE under-weights, as LPIPS does; it is *not* calibrated to human judgements the way LPIPS is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PERCEPTUAL_NAMES = ("grad-ssim", "none")


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> torch.Tensor:
    ax = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2.0
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    g = g / g.sum()
    w = g[:, None] * g[None, :]
    return w.expand(channels, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM ``[N]`` of images in ``[0,1]`` (Gaussian window, valid convolution, mean over channels)."""
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"ssim needs two [N,C,H,W] tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    c = a.shape[1]
    size = min(window, a.shape[-1], a.shape[-2])
    if size % 2 == 0:
        size -= 1
    w = _gaussian_window(size, sigma * size / window, c, a.device, a.dtype)
    mu_a = F.conv2d(a, w, groups=c)
    mu_b = F.conv2d(b, w, groups=c)
    s_aa = F.conv2d(a * a, w, groups=c) - mu_a**2
    s_bb = F.conv2d(b * b, w, groups=c) - mu_b**2
    s_ab = F.conv2d(a * b, w, groups=c) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2))
    return m.flatten(1).mean(1)


def grad_ssim_distance(a: torch.Tensor, b: torch.Tensor, *, scales: int = 3) -> torch.Tensor:
    """The ``grad-ssim`` perceptual distance per image, ``[N]`` (0 for identical images; differentiable)."""
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"grad_ssim_distance needs two [N,C,H,W] tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if scales < 1:
        raise ValueError(f"scales must be >= 1, got {scales}")
    total = torch.zeros(a.shape[0], device=a.device, dtype=a.dtype)
    n = 0
    for s in range(scales):
        if s:
            if min(a.shape[-2:]) < 4:
                break
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        gx = (a[..., :, 1:] - a[..., :, :-1]) - (b[..., :, 1:] - b[..., :, :-1])
        gy = (a[..., 1:, :] - a[..., :-1, :]) - (b[..., 1:, :] - b[..., :-1, :])
        grad = 0.5 * (gx.abs().flatten(1).mean(1) + gy.abs().flatten(1).mean(1))
        total = total + grad + (1.0 - ssim(a, b))
        n += 1
    return total / n


def perceptual_distance(name: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dispatch by name: ``grad-ssim`` or ``none`` (zeros)."""
    if name == "grad-ssim":
        return grad_ssim_distance(a, b)
    if name == "none":
        return torch.zeros(a.shape[0], device=a.device, dtype=a.dtype)
    raise ValueError(f"perceptual must be one of {PERCEPTUAL_NAMES}, got {name!r}")
