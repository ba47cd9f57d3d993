"""A trained feed-forward protector: a small fully convolutional network ``G`` that maps an image to a perturbation.

``G(x) = eps * tanh(f(x))``, so ``||G(x)||_inf <= eps`` by construction (no projection needed); the protected
image is ``clip(x + m * G(x), 0, 1)`` with ``m`` an optional binary mask (pixels outside stay bit-identical).
``f`` is a two-level U-Net (full, 1/2 and 1/4 resolution, residual blocks, skip connections, no normalisation
layers, so an image's output does not depend on the other images of its batch or on its size beyond the
receptive field). Any size and aspect ratio: the input is padded (reflect) to a multiple of 4 and the output
cropped back; images larger than ``tile_size`` on either side run as overlapping tiles whose outputs are
blended with linear ramps over the overlap (a convex combination of values within ``[-eps, eps]`` stays
within it), so memory is bounded by one tile.

The model is a diffusers ``ModelMixin``/``ConfigMixin`` (``config.json`` +
``diffusion_pytorch_model.safetensors``); its config records what it was trained for (the base protection,
the surrogate VAEs, the budget), which the ``fast`` protection (:mod:`latentguard.protect.fast`) reads.
This module imports diffusers at the top; :func:`latentguard.models.load_protector` imports it on first use.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

MULTIPLE = 4  # two stride-2 levels
TANH_LEAK = 0.1  # training-time gradient leak through tanh (see Protector.raw)
PRE_BOUND = 3.0  # training penalises |pre-activation| beyond this (tanh(3) = 0.995)


class _Res(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(F.silu(self.a(F.silu(x))))


def blend_tiles(h: int, w: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles ``(y0, y1, x0, x1)`` covering ``h x w`` (one tile when it fits); sizes multiples of
    ``multiple`` when ``h`` and ``w`` are."""
    if tile <= 0 or (h <= tile and w <= tile):
        return [(0, h, 0, w)]
    tile = max(multiple, tile - tile % multiple)
    overlap = max(0, overlap - overlap % multiple)
    stride = max(multiple, tile - overlap)

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        s = list(range(0, n - tile, stride)) + [n - tile]
        return sorted(set(s))

    ys = [(y, min(y + tile, h)) for y in starts(h)]
    xs = [(x, min(x + tile, w)) for x in starts(w)]
    return [(y0, y1, x0, x1) for (y0, y1) in ys for (x0, x1) in xs]


def _ramp(n: int, lo_edge: bool, hi_edge: bool, overlap: int, device, dtype) -> torch.Tensor:
    """1-D blending weights of a tile of length ``n``: linear ramps over ``overlap`` at interior edges."""
    r = torch.ones(n, device=device, dtype=dtype)
    k = min(overlap, n // 2)
    if k > 0:
        up = (torch.arange(k, device=device, dtype=dtype) + 1) / (k + 1)
        if lo_edge:
            r[:k] = up
        if hi_edge:
            r[n - k:] = up.flip(0)
    return r


class Protector(ModelMixin, ConfigMixin):
    """The protector ``G`` (see the module docstring).

    Args:
        channels: widths at full, 1/2 and 1/4 resolution.
        blocks: residual blocks at 1/4 resolution (one at 1/2).
        eps: the L-inf budget it was trained at ([0,1] units); :meth:`perturbation` may rescale.
        base: the registered protection whose objective it was trained on (``pca+``, ``pca-``, ...).
        maximize: whether training ascended that objective (the base method's direction).
        vaes: the surrogate VAE specs it was trained against (it protects against those).
        tile_size: images larger than this (either side) run as overlapping tiles; 0 disables.
        tile_overlap: overlap of neighbouring tiles (pixels), blended linearly.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, channels: Sequence[int] = (16, 32, 64), blocks: int = 2, eps: float = 16 / 255,
                 base: str = "pca+", maximize: bool = True, vaes: Sequence[str] = ("zoo:vae-a",),
                 tile_size: int = 512, tile_overlap: int = 64) -> None:
        super().__init__()
        c0, c1, c2 = (int(c) for c in channels)
        self.stem = nn.Conv2d(3, c0, 3, padding=1)
        self.down1 = nn.Conv2d(c0, c1, 3, stride=2, padding=1)
        self.res1 = _Res(c1)
        self.down2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.res2 = nn.Sequential(*[_Res(c2) for _ in range(int(blocks))])
        self.up2 = nn.Conv2d(c2, c1, 3, padding=1)
        self.res3 = _Res(c1)
        self.up1 = nn.Conv2d(c1, c0, 3, padding=1)
        self.head = nn.Conv2d(c0, 3, 3, padding=1)

    # ---------------------------------------------------------------------------------------------
    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """``tanh(f(x))`` in ``[-1, 1]`` for ``x`` ``[N,3,H,W]`` in [0,1] with ``H, W`` multiples of 4."""
        h0 = F.silu(self.stem(x * 2.0 - 1.0))
        h1 = self.res1(F.silu(self.down1(h0)))
        h2 = self.res2(F.silu(self.down2(h1)))
        u1 = self.res3(F.interpolate(self.up2(F.silu(h2)), scale_factor=2.0, mode="nearest") + h1)
        u0 = F.interpolate(self.up1(F.silu(u1)), scale_factor=2.0, mode="nearest") + h0
        pre = self.head(F.silu(u0))
        out = torch.tanh(pre)
        if self.training and torch.is_grad_enabled():
            # Training only: a gradient leak through the saturated tanh (the forward value is unchanged, the
            # added term is exactly 0) so that pixels stuck at +-eps can still flip sign; ``pre`` is kept for
            # the trainer's penalty on |pre| > PRE_BOUND. A first run without it froze (tanh saturated
            # everywhere, the held-out objective identical to 7 digits from step 150 to 450).
            out = out + TANH_LEAK * (pre - pre.detach())
            self.last_pre = pre
        return out

    def forward(self, x: torch.Tensor, eps: float | None = None) -> torch.Tensor:
        """The perturbation ``eps * tanh(f(x))`` of a batch of any size (padded to 4, no tiling): training's path."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % MULTIPLE, (-w) % MULTIPLE
        if ph or pw:
            mode = "reflect" if (ph < h and pw < w) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        e = float(self.config.eps if eps is None else eps)
        return e * self.raw(x)[..., :h, :w]

    @torch.no_grad()
    def perturbation(self, x: torch.Tensor, eps: float | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The perturbation for images of any size, tiled above ``tile_size`` (memory: one tile), masked.

        ``x``: ``[N,3,H,W]`` in [0,1] (not modified). ``eps``: budget (default: the trained one).
        ``mask``: boolean or {0,1} ``[N,1,H,W]`` (broadcastable); outside it the perturbation is exactly 0.
        The result ``d`` satisfies ``|d| <= eps`` and ``x + d`` in [0,1].
        """
        e = float(self.config.eps if eps is None else eps)
        h, w = x.shape[-2:]
        tile, overlap = int(self.config.tile_size), int(self.config.tile_overlap)
        dtype = next(self.parameters()).dtype
        xin = x.to(dtype)
        tiles = blend_tiles(h, w, tile, overlap, 1)
        if len(tiles) == 1:
            d = e * self.raw_any(xin)
        else:
            d = torch.zeros_like(xin)
            wsum = torch.zeros((1, 1, h, w), device=x.device, dtype=dtype)
            for y0, y1, x0, x1 in tiles:
                wy = _ramp(y1 - y0, y0 > 0, y1 < h, overlap, x.device, dtype)
                wx = _ramp(x1 - x0, x0 > 0, x1 < w, overlap, x.device, dtype)
                wt = wy[:, None] * wx[None, :]
                d[..., y0:y1, x0:x1] += wt * self.raw_any(xin[..., y0:y1, x0:x1])
                wsum[..., y0:y1, x0:x1] += wt
            d = e * (d / wsum).clamp(-1.0, 1.0)
        d = d.to(x.dtype)
        d = (x + d).clamp(0.0, 1.0) - x
        if mask is not None:
            d = torch.where(mask.to(torch.bool), d, torch.zeros_like(d))
        return d

    def raw_any(self, x: torch.Tensor) -> torch.Tensor:
        """``tanh(f(x))`` for any ``H, W`` (padded to a multiple of 4, cropped back)."""
        return self.forward(x, eps=1.0)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
