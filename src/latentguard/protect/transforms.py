"""Differentiable image transforms for Expectation over Transformation (EOT).

A protection that must survive re-encoding is optimised through random draws of the transforms a
platform applies to uploads (Athalye et al., "Synthesizing Robust Adversarial Examples", ICML 2018):
the gradient step averages ``grad_delta L(T(x + delta))`` over ``T`` drawn from a set. Every transform
here maps ``[N,3,H,W]`` in ``[0,1]`` to the same shape, is differentiable w.r.t. its input and draws its
random parameter from the ``torch.Generator`` it is given (so a seeded attack is reproducible).

* ``jpeg``: a differentiable JPEG approximation: RGB -> YCbCr (JPEG full range), 8x8 block DCT-II,
  division by the standard Annex-K quantisation tables scaled by the quality factor (IJG formula),
  rounding with a straight-through estimator (forward: ``round``; backward: identity), de-quantisation,
  inverse DCT, back to RGB. Chroma is not subsampled (4:4:4, like ``latentguard.io.save_image``), there
  is no entropy coding (lossless anyway) and the 8-bit clipping of the decoder is a plain clamp.
* ``resize``: bilinear, antialiased downscale by a factor in ``scale`` and back up to the original size.
* ``blur``: Gaussian blur, sigma (pixels) drawn from ``sigma``.
* ``noise``: additive Gaussian noise, std (in [0,1] units) drawn from ``std``.
* ``identity``: nothing (include it to keep some clean draws in the mixture).

Specs for :func:`parse_transforms`: ``"jpeg"``, ``"jpeg:50-90"``, ``"resize:0.5-0.9"``, ``"blur:0.5-1.5"``,
``"noise:0-0.03"``, ``"identity"``; a comma-separated list, e.g. ``"jpeg:60-90,resize,identity"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

# JPEG Annex K tables (ITU-T T.81), row-major 8x8.
_Q_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)
_Q_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
)


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    if hi == lo:
        return float(lo)
    dev = generator.device if generator is not None else "cpu"
    u = torch.rand((), generator=generator, device=dev).item()
    return float(lo + (hi - lo) * u)


def _check_range(name: str, rng: tuple[float, float], lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(rng[0]), float(rng[1]))
    except (TypeError, IndexError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair, got {rng!r}") from None
    if not (lo <= a <= b <= hi) or not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"{name} must satisfy {lo} <= low <= high <= {hi}, got {rng!r}")
    return (a, b)


def _dct_matrix(n: int = 8, device=None, dtype=torch.float32) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``D`` (``D @ x`` transforms a column)."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(device=device, dtype=dtype)


def quality_table(table: tuple[int, ...], quality: float) -> torch.Tensor:
    """IJG scaling of a base quantisation table for a (possibly fractional) quality in [1, 100]."""
    q = min(max(float(quality), 1.0), 100.0)
    scale = 5000.0 / q if q < 50 else 200.0 - 2.0 * q
    t = torch.tensor(table, dtype=torch.float32).view(8, 8)
    return torch.clamp(torch.floor((t * scale + 50.0) / 100.0), min=1.0)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round`` in the forward pass, identity in the backward pass (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def diff_jpeg(x: torch.Tensor, quality: float) -> torch.Tensor:
    """Differentiable JPEG (4:4:4) round trip of ``x`` in ``[0,1]`` at ``quality`` (see module docstring)."""
    n, c, h, w = x.shape
    if c != 3:
        raise ValueError(f"diff_jpeg needs RGB images [N,3,H,W], got {tuple(x.shape)}")
    ph, pw = (-h) % 8, (-w) % 8
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
    rgb = xp * 255.0
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128.0
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128.0
    ycc = torch.stack([y, cb, cr], dim=1) - 128.0  # [N,3,H',W']
    hh, ww = ycc.shape[-2:]
    blocks = ycc.reshape(n, 3, hh // 8, 8, ww // 8, 8).permute(0, 1, 2, 4, 3, 5)  # [N,3,bh,bw,8,8]
    d = _dct_matrix(8, device=x.device, dtype=x.dtype)
    coef = d @ blocks @ d.T
    ql = quality_table(_Q_LUMA, quality).to(device=x.device, dtype=x.dtype)
    qc = quality_table(_Q_CHROMA, quality).to(device=x.device, dtype=x.dtype)
    qt = torch.stack([ql, qc, qc]).view(1, 3, 1, 1, 8, 8)
    coef = round_ste(coef / qt) * qt
    blocks = d.T @ coef @ d
    ycc = blocks.permute(0, 1, 2, 4, 3, 5).reshape(n, 3, hh, ww) + 128.0
    y, cb, cr = ycc[:, 0], ycc[:, 1] - 128.0, ycc[:, 2] - 128.0
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    out = torch.stack([r, g, b], dim=1) / 255.0
    return out[..., :h, :w].clamp(0.0, 1.0)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (reflect padding), differentiable."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3.0 * sigma)))
    radius = min(radius, min(x.shape[-2:]) - 1) if min(x.shape[-2:]) > 1 else 0
    if radius < 1:
        return x
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    xp = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    xp = F.conv2d(xp, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(xp, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


class Transform:
    """A random differentiable transform: ``t(x, generator) -> x'`` (same shape, in [0,1])."""

    kind: ClassVar[str] = "transform"

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class Identity(Transform):
    kind: ClassVar[str] = "identity"

    def __call__(self, x, generator=None):
        return x


@dataclass(frozen=True)
class JPEG(Transform):
    """Differentiable JPEG at a quality drawn uniformly from ``quality`` (1-100)."""

    quality: tuple[float, float] = (50.0, 90.0)
    kind: ClassVar[str] = "jpeg"

    def __post_init__(self):
        object.__setattr__(self, "quality", _check_range("quality", self.quality, 1.0, 100.0))

    def __call__(self, x, generator=None):
        return diff_jpeg(x, _uniform(*self.quality, generator))


@dataclass(frozen=True)
class Resize(Transform):
    """Downscale by a factor drawn from ``scale`` (antialiased bilinear) and upscale back."""

    scale: tuple[float, float] = (0.5, 0.9)
    kind: ClassVar[str] = "resize"

    def __post_init__(self):
        s = _check_range("scale", self.scale, 0.0, 1.0)
        if s[0] <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale!r}")
        object.__setattr__(self, "scale", s)

    def __call__(self, x, generator=None):
        s = _uniform(*self.scale, generator)
        h, w = x.shape[-2:]
        size = (max(1, round(h * s)), max(1, round(w * s)))
        if size == (h, w):
            return x
        small = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(0.0, 1.0)


@dataclass(frozen=True)
class Blur(Transform):
    """Gaussian blur with sigma (pixels) drawn from ``sigma``."""

    sigma: tuple[float, float] = (0.5, 1.5)
    kind: ClassVar[str] = "blur"

    def __post_init__(self):
        object.__setattr__(self, "sigma", _check_range("sigma", self.sigma, 0.0, 50.0))

    def __call__(self, x, generator=None):
        return gaussian_blur(x, _uniform(*self.sigma, generator))


@dataclass(frozen=True)
class Noise(Transform):
    """Additive Gaussian noise with std drawn from ``std`` ([0,1] pixel units), clamped to [0,1]."""

    std: tuple[float, float] = (0.0, 0.03)
    kind: ClassVar[str] = "noise"

    def __post_init__(self):
        object.__setattr__(self, "std", _check_range("std", self.std, 0.0, 1.0))

    def __call__(self, x, generator=None):
        s = _uniform(*self.std, generator)
        if s == 0:
            return x
        dev = generator.device if generator is not None else x.device
        n = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype).to(x.device)
        return (x + s * n).clamp(0.0, 1.0)


TRANSFORMS: dict[str, type[Transform]] = {
    "identity": Identity, "jpeg": JPEG, "resize": Resize, "blur": Blur, "noise": Noise,
}
_FIELD = {"jpeg": "quality", "resize": "scale", "blur": "sigma", "noise": "std"}


def parse_transform(spec: str | Transform) -> Transform:
    """One transform from ``name`` or ``name:low-high`` (or ``name:value``)."""
    if isinstance(spec, Transform):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"transforms: expected a name like 'jpeg:50-90', got {spec!r}")
    name, _, arg = spec.strip().partition(":")
    name = name.strip().lower()
    if name not in TRANSFORMS:
        raise ValueError(f"transforms: unknown transform {name!r}; available: {', '.join(TRANSFORMS)}")
    if not arg:
        return TRANSFORMS[name]()
    if name == "identity":
        raise ValueError("transforms: 'identity' takes no parameter")
    parts = arg.split("-") if not arg.startswith("-") else [arg]
    try:
        vals = [float(p) for p in parts if p.strip()]
    except ValueError:
        raise ValueError(f"transforms: bad range in {spec!r} (use e.g. jpeg:50-90)") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2:
        raise ValueError(f"transforms: bad range in {spec!r} (use e.g. jpeg:50-90)")
    return TRANSFORMS[name](**{_FIELD[name]: (vals[0], vals[1])})


def parse_transforms(specs: str | Transform | tuple | list | None) -> tuple[Transform, ...]:
    """A tuple of transforms from a comma-separated string or a sequence of specs/objects."""
    if specs is None:
        return ()
    if isinstance(specs, (str, Transform)):
        specs = [s for s in specs.split(",")] if isinstance(specs, str) else [specs]
    out = []
    for s in specs:
        if isinstance(s, str) and not s.strip():
            continue
        out.append(parse_transform(s))
    return tuple(out)
