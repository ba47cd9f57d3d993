"""Posterior Collapse Attack (PCA): ``pca+``, ``pca-``, ``pca-adaptive``.

Paper: arXiv 2408.10901, "A Gray-box Attack against Latent Diffusion Model-based Image Editing by
Posterior Collapse" (2024). It attacks only the VAE encoder (< 4% of an LDM's
parameters), which is why it transfers across LDMs that share an encoder family.

The VAE encoder gives ``q(z|x) = N(mu, diag(sigma^2))``. With a target ``p* = N(0, v I)``:

.. math::

    L(x) = \\tfrac12 \\sum_i \\Big( -\\ln \\sigma_i^2 - 1 + \\frac{\\mu_i^2 + \\sigma_i^2}{v} \\Big)
         = \\mathrm{KL}(q \\,\\|\\, p^*) - \\tfrac{d}{2} \\ln v,

summed over the ``d`` latent elements of an image and averaged over the batch (the engine sums per-image
losses, which has the same sign gradient). The official README states two protection objectives, with ``f``
an LDM edit and ``d`` a perceptual distance, and the setting that reaches each:

* **Objective 1**, ``min d(f(x + delta), x)``: the edit of the protected image stays close to the *input*
  (the editor is neutralised; some distance to ``x`` remains as a side effect). Reached by ``pca+``
  (``v = 1``, gradient *ascent* on L): the paper's **diffusion collapse**.
* **Objective 2**, ``max d(f(x + delta), f(x))``: the edit is pushed away from the edit the editor would have
  made of the clean image. Reached by ``pca-`` (``v = 1e-8``, gradient *descent*): the paper's
  **concentration collapse** (the loss is dominated by ``mu^2 / v``, so descent drives ``mu`` towards 0).

The paper's claims are edit-level (PSNR/SSIM/LPIPS/FID of SD img2img edits), and each class declares its
objective in ``edit_objective``. What the attack does to the posterior is a diagnostic, not the claim. In
particular ``pca+`` does not widen the posterior: with ``sigma^2 << v``,
``dL/d ln sigma_i^2 = (sigma_i^2 / v - 1) / 2 < 0``, so ascent *shrinks* sigma^2 (measured on zoo:vae-a, 8 photos
at 64 px: mean ln sigma^2 -1.49 lower, 54-100% of the elements' sigma^2 down per photo,
``benchmarks/pca_mean_vs_sample.py``). These posteriors are so narrow (ln sigma^2 about -10) that decoding the
mean or a sample gives the same image (within 0.04 dB for every input measured there, clean or protected), so
the reconstruction damage of ``pca+`` (2.6 dB at 64 px) is a shift of the mean, not noise in sampled latents.

``pca-adaptive`` is the official code's adaptive setting (``--v -1``): ``v = sigma^2`` of the *clean* image,
per latent element, fixed during the attack, and, as in the official code's default (no ``--reverse_direct``),
L is *minimised*. That is PCA-'s direction with a per-element target, so we class it under Objective 2; the
paper text names no objective for it (our inference). Earlier versions of latentguard maximised it.

Optimiser (paper and official code): projected sign-gradient, delta starting at 0,
``delta <- clip(delta + alpha * sign(grad), -eps, eps)``, ``x_adv = clip(x + delta, 0, 1)``,
``T = 40``, ``alpha = 2/255``, ``eps = 16/255`` in [0,1] pixel units (the paper writes "alpha=2, eps=16"
on the 0-255 scale; the same numbers divided by 255 here, no other conversion). The official code
saves JPEG at quality 100; we save PNG. Surrogate in the paper: SD 1.5's VAE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from latentguard.protect.engine import ROBUST_PRESET, Protection, register


def pca_loss(mean: torch.Tensor, logvar: torch.Tensor, v: float | torch.Tensor) -> torch.Tensor:
    """PCA's loss per image ``[N]``: ``1/2 sum_i(-ln s_i^2 - 1 + (mu_i^2 + s_i^2)/v)`` over latent elements.

    ``v`` is a positive float or a tensor broadcastable to ``mean`` (the adaptive target).
    """
    mean = mean.float()
    logvar = logvar.float()
    v = v.float() if isinstance(v, torch.Tensor) else float(v)
    per = -logvar - 1.0 + (mean**2 + torch.exp(logvar)) / v
    return 0.5 * per.flatten(1).sum(1)


@dataclass(frozen=True, kw_only=True)
class PosteriorCollapse(Protection):
    """PCA with a fixed target variance ``v`` (see the module docstring for the paper and the math).

    Args:
        v: target variance of ``p* = N(0, v I)``; > 0.
        (and every engine argument of :class:`~latentguard.protect.engine.Protection`)
    """

    name: ClassVar[str] = "pca"
    v: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.v, bool) or not isinstance(self.v, (int, float)) or not (0 < float(self.v) < math.inf):
            raise ValueError(f"v must be a positive finite number, got {self.v!r}")
        object.__setattr__(self, "v", float(self.v))
        super().__post_init__()

    def objective(self, vae, x, ctx, generator):
        mean, logvar = vae.encode(x)
        return pca_loss(mean, logvar, self.v)


@register
@dataclass(frozen=True, kw_only=True)
class PCAPlus(PosteriorCollapse):
    """``pca+``: diffusion collapse, maximise L with ``v = 1`` (arXiv 2408.10901); targets Objective 1 (the edit
    of the protected image stays close to the input), per the official README.

    Defaults = paper: T=40, alpha=2/255, eps=16/255, delta_0=0, L-inf. Units: the paper's 0-255
    integers divided by 255.
    """

    name: ClassVar[str] = "pca+"
    edit_objective: ClassVar[int] = 1  # min d(f(x+delta), x)
    ROBUST: ClassVar[dict[str, Any] | None] = ROBUST_PRESET
    SOURCE: ClassVar[dict[str, Any]] = {"eps": 16 / 255, "alpha": 2 / 255, "steps": 40, "random_start": False}
    v: float = 1.0
    maximize: bool = True


@register
@dataclass(frozen=True, kw_only=True)
class PCAMinus(PosteriorCollapse):
    """``pca-``: concentration collapse, minimise L with ``v = 1e-8`` (arXiv 2408.10901); targets Objective 2
    (the edit is pushed away from the clean edit), per the official README.

    Defaults = paper: T=40, alpha=2/255, eps=16/255, delta_0=0, L-inf.
    """

    name: ClassVar[str] = "pca-"
    edit_objective: ClassVar[int] = 2  # max d(f(x+delta), f(x))
    ROBUST: ClassVar[dict[str, Any] | None] = ROBUST_PRESET
    SOURCE: ClassVar[dict[str, Any]] = {"eps": 16 / 255, "alpha": 2 / 255, "steps": 40, "random_start": False}
    v: float = 1e-8
    maximize: bool = False


@register
@dataclass(frozen=True, kw_only=True)
class PCAAdaptive(Protection):
    """``pca-adaptive``: PCA with ``v`` = the clean image's posterior variance, per latent element.

    ``L = 1/2 sum_i(-ln s_i^2 - 1 + (mu_i^2 + s_i^2)/s0_i^2)`` with ``s0^2`` from ``q(z|x_clean)``
    (fixed during the attack); minimised by default, as the official code's default (``--v -1`` without
    ``--reverse_direct``) does; ``maximize=True`` ascends it. Objective 2 (our inference from the direction:
    descent concentrates ``mu`` towards 0 like PCA-; the paper names no objective for this setting).
    Defaults as PCA.
    """

    name: ClassVar[str] = "pca-adaptive"
    edit_objective: ClassVar[int] = 2  # max d(f(x+delta), f(x))
    ROBUST: ClassVar[dict[str, Any] | None] = ROBUST_PRESET
    SOURCE: ClassVar[dict[str, Any]] = {"eps": 16 / 255, "alpha": 2 / 255, "steps": 40, "random_start": False}
    maximize: bool = False

    def prepare(self, vae, x):
        _, logvar = vae.encode(x)
        return torch.exp(logvar.float()).detach()

    def objective(self, vae, x, ctx, generator):
        mean, logvar = vae.encode(x)
        return pca_loss(mean, logvar, ctx)
