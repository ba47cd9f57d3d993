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

from latentguard.ops import metrics

PERCEPTUAL_NAMES = ("grad-ssim", "none")


def ssim(a: torch.Tensor, b: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM ``[N]`` of images in ``[0,1]`` (Gaussian window, valid convolution, mean over channels).

    :func:`latentguard.ops.metrics.ssim` computed in the inputs' dtype, with the window shrunk to the image
    at small scales (odd size ``k <= window``, sigma scaled by ``k / window``).
    """
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"ssim needs two [N,C,H,W] tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    size = min(window, a.shape[-1], a.shape[-2])
    if size % 2 == 0:
        size -= 1
    return metrics.ssim(a, b, kernel_size=size, sigma=sigma * size / window, compute_dtype=a.dtype)


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
