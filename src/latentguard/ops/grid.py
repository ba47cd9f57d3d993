"""Image grids without torchvision."""

from __future__ import annotations

import torch


def make_grid(images: torch.Tensor, nrow: int = 8, pad: int = 2, value: float = 1.0) -> torch.Tensor:
    """Tile ``[N,3,H,W]`` into one ``[3, H', W']`` image, ``nrow`` images per row, ``pad`` pixels of ``value``."""
    if images.ndim != 4:
        raise ValueError(f"images must be [N,C,H,W], got {tuple(images.shape)}")
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    n, c, h, w = images.shape
    rows = (n + nrow - 1) // nrow
    cols = min(n, nrow)
    out = torch.full((c, rows * (h + pad) + pad, cols * (w + pad) + pad), value, dtype=images.dtype)
    for i in range(n):
        r, k = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        out[:, y : y + h, x : x + w] = images[i].detach().cpu()
    return out


def amplified_difference(delta: torch.Tensor, scale: float) -> torch.Tensor:
    """``0.5 + 0.5 * delta / scale`` clipped to [0,1]: gray where unchanged, black/white at ``-scale``/``+scale``.

    With ``scale = eps`` a perturbation at its L-inf budget spans the full range.
    """
    return (0.5 + 0.5 * delta / max(float(scale), 1e-12)).clamp(0.0, 1.0)


def center_crop(x: torch.Tensor, size: int, multiple: int = 8) -> torch.Tensor:
    """The whole image when it fits in ``size``, else its central crop of ``size`` rounded down to ``multiple``
    pixels a side (a crop, never a resampling: a perturbation stays intact)."""
    h, w = x.shape[-2:]
    ch = h if h <= size else max(multiple, size // multiple * multiple)
    cw = w if w <= size else max(multiple, size // multiple * multiple)
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top:top + ch, left:left + cw]


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """What an 8-bit PNG holds: ``round(255 x) / 255`` of ``x`` clipped to [0,1] (float32)."""
    return (x.float().clamp(0, 1) * 255).round() / 255
