"""Target images for targeted protections (PhotoGuard, Mist): validated once, resized per tile."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

NAMED_TARGETS = ("gray", "pattern", "zero")


def check_target(name: str, target: Any, allowed: tuple[str, ...]) -> Any:
    """Validate a target: one of ``allowed`` names, or an image tensor ``[3,H,W]``/``[1,3,H,W]`` in [0,1]."""
    if isinstance(target, str):
        if target not in allowed:
            raise ValueError(f"{name} must be one of {allowed} or an image tensor, got {target!r}")
        return target
    if isinstance(target, torch.Tensor):
        t = target.detach().float()
        if t.ndim == 3:
            t = t[None]
        if t.ndim != 4 or t.shape[:2] != (1, 3):
            raise ValueError(f"{name} image must have shape [3,H,W] or [1,3,H,W], got {tuple(target.shape)}")
        if not torch.isfinite(t).all() or float(t.min()) < 0 or float(t.max()) > 1:
            raise ValueError(f"{name} image must be finite and in [0,1]")
        return t.cpu()
    raise ValueError(f"{name} must be one of {allowed} or an image tensor, got {type(target).__name__}")


def textural_pattern(h: int, w: int, period: int = 8) -> torch.Tensor:
    """A deterministic high-contrast texture ``[1,3,h,w]`` in [0,1]: per-channel diagonal stripes of
    period ``period`` px with different orientations and phases (a stand-in for Mist's MIST.png)."""
    y = torch.arange(h, dtype=torch.float32).view(h, 1)
    x = torch.arange(w, dtype=torch.float32).view(1, w)
    chans = []
    for c, (a, b, ph) in enumerate(((1.0, 1.0, 0.0), (1.0, -1.0, 1.0), (2.0, 0.5, 2.0))):
        chans.append(0.5 + 0.5 * torch.sign(torch.sin(2 * math.pi * (a * x + b * y) / period + ph) + 1e-6))
    return torch.stack(chans)[None]


def target_image(target: Any, like: torch.Tensor) -> torch.Tensor:
    """The target as a batch shaped like ``like`` (``[N,3,H,W]``), on its device."""
    n, _, h, w = like.shape
    if isinstance(target, torch.Tensor):
        t = target
        if t.shape[-2:] != (h, w):
            t = F.interpolate(t, size=(h, w), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    elif target == "gray":
        t = torch.full((1, 3, h, w), 0.5)
    elif target == "pattern":
        t = textural_pattern(h, w)
    else:
        raise ValueError(f"target {target!r} has no image")
    return t.to(device=like.device, dtype=torch.float32).expand(n, 3, h, w)
