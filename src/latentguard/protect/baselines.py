"""The two reference rows every comparison table needs: ``none`` and ``random-noise``.

Neither optimises anything; they are registered like every method so that benchmarks, the CLI and the
library look them up by name (``get("random-noise", vae=..., eps=16/255)``).

* ``none``: the unprotected image (a copy of the input).
* ``random-noise``: uniform random sign noise of L-inf size ``eps``, ``clip(x + eps * s, 0, 1)`` with ``s``
  uniform in {-1, +1} per pixel and channel: the same budget as a protection, no optimisation, the baseline
  a protection must beat.

Their records measure the same things as the engine's (KL and mean posterior variance of the first
surrogate before/after, norms, PSNR); ``loss_*`` is 0 (they have no objective).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from latentguard.ops.runtime import randint, torch_generator
from latentguard.models.padding import pad_to_multiple
from latentguard.protect.engine import (
    ProtectOutput,
    ProtectRecord,
    Protection,
    _as_vae,
    _check_images,
    _check_int,
    _multiple,
    _prepare_mask,
    kl_standard_normal,
    psnr,
)
from latentguard.protect.registry import register


@dataclass(frozen=True, kw_only=True)
class _Reference(Protection):
    """A protection without an objective: ``perturb`` makes the output, the engine's fields are kept for
    a uniform interface (``steps``, ``alpha``, ``transforms``, ... are accepted and unused)."""

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        if self.norm != "linf":
            raise ValueError(f"{self.name}: norm must be 'linf' (the only one it supports), got {self.norm!r}")
        eps = self.eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 <= float(eps) <= 1.0:
            raise ValueError(f"eps must be in [0, 1], got {eps!r}")
        set_("eps", float(eps))
        _check_int("steps", self.steps, 0)
        _check_int("seed", self.seed, 0)
        vae = self.vae
        if vae is None:
            raise ValueError(f"vae is required for {self.name!r} (e.g. vae='zoo:vae-a'): the records measure its posterior")
        vaes = tuple(_as_vae(v) for v in (vae if isinstance(vae, (list, tuple)) else [vae]))
        if not vaes:
            raise ValueError("vae must not be an empty sequence")
        set_("vae", vaes)
        set_("transforms", ())

    def perturb(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, *, mask: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """The reference output for ``images`` (``[N,3,H,W]`` in [0,1], never modified)."""
        _check_images(images)
        if generator is None:
            generator = torch_generator(self.seed, "cpu")
        out = self.perturb(images, generator)
        m = _prepare_mask(mask, images)
        if m is not None:
            out = torch.where(m.to(images.device), out, images)
        return out

    def protect(self, images: torch.Tensor, *, mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None, progress: bool = False,
                callback: Any = None) -> ProtectOutput:
        """The output with one :class:`~latentguard.protect.engine.ProtectRecord` per image (no steps: a
        ``callback`` is never called)."""
        t0 = time.perf_counter()
        out = self(images, mask=mask, generator=generator)
        dev = self.device
        x = images.detach().to(device=dev, dtype=torch.float32)
        y = out.detach().to(device=dev, dtype=torch.float32)
        multiple = _multiple(self.vaes)
        with torch.no_grad():
            stats = []
            for z in (x, y):
                mean, logvar = self.vaes[0].encode(pad_to_multiple(z, multiple)[0])
                stats.append((kl_standard_normal(mean, logvar), torch.exp(logvar.float()).flatten(1).mean(1)))
        secs = (time.perf_counter() - t0) / x.shape[0]
        diff = y - x
        linf, l2, ps = diff.flatten(1).abs().amax(1), diff.flatten(1).norm(dim=1), psnr(y, x)
        records = [
            ProtectRecord(method=self.name, index=i, maximize=self.maximize, loss_before=0.0, loss_after=0.0,
                          kl_before=float(stats[0][0][i]), kl_after=float(stats[1][0][i]),
                          sigma2_before=float(stats[0][1][i]), sigma2_after=float(stats[1][1][i]),
                          linf=float(linf[i]), l2=float(l2[i]), psnr=float(ps[i]), seconds=secs)
            for i in range(x.shape[0])
        ]
        return ProtectOutput(images=out, records=records, delta=out - images)


@register
@dataclass(frozen=True, kw_only=True)
class NoProtection(_Reference):
    """The unprotected image (the table's 'no protection' row): a copy of the input."""

    name: ClassVar[str] = "none"

    def perturb(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return images.clone()


@register
@dataclass(frozen=True, kw_only=True)
class RandomSignNoise(_Reference):
    """Uniform random sign noise of L-inf size ``eps``: ``clip(x + eps * s, 0, 1)``, ``s`` uniform in {-1, +1}.

    The baseline a protection must beat: the same L-inf budget, no optimisation. The signs are drawn on
    the generator's device, so a CPU generator gives the same noise for images on any device.
    """

    name: ClassVar[str] = "random-noise"

    def perturb(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        s = randint(2, images.shape, generator, images.device).to(images.dtype) * 2 - 1
        return (images + float(self.eps) * s).clamp(0, 1)
