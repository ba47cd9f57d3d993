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
