"""Pad images to a multiple of the VAE's downsampling factor and crop back."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect") -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``[N,C,H,W]`` on the bottom/right to multiples of ``multiple``. Returns the padded tensor and (H, W)."""
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def crop_back(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`."""
    return x[..., : size[0], : size[1]]
