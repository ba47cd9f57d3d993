"""Mist: textural (encoder) and semantic (AdvDM) losses fused.

Paper: C. Liang, X. Wu, "Mist: Towards Improved Adversarial Examples for Diffusion Models",
arXiv 2305.12683 (code: psyker-team/mist).

Loss (minimised), in the source's fused mode:

.. math::

    L(x') = \\underbrace{\\| s\\,\\mu_E(x') - s\\,\\mu_E(x_{target}) \\|^2}_{\\text{textural}}
            \\; - \\; r \\cdot \\underbrace{\\mathbb{E}_{t,n}\\|\\epsilon_\\theta(z_t,t,c) - n\\|^2}_{\\text{semantic (AdvDM)}}

``s`` the scaling factor, ``c`` the prompt (source: "a painting" for styles, "a photo" for objects; ours:
``prompt``, default ``""``). ``mode="textural"`` / ``"semantic"`` keep one term (semantic alone is
AdvDM). Differences from the source, all documented choices: the textural term uses the posterior
*mean* (the source a posterior sample; the mean has no sampling noise and SD's posterior std is tiny),
and is the **mean** over latent elements rather than the sum, so the fusion rate no longer depends on
the resolution: the source's ``rate = 10^(rate_arg+3) = 1e4`` with a summed MSE over SD's 4x64x64
latent at 512 px equals **r = 1e4 / 16384 = 0.61** per element, our default. The source's target is
its ``MIST.png`` texture (not shipped here); the default ``target="pattern"`` is a deterministic
high-contrast stripe texture (:func:`latentguard.protect.targets.textural_pattern`); an image tensor
can be given (resized to the input, per tile when tiled).

Source defaults (``mist_v3.py``): epsilon 16, alpha 1, on the 0-255 scale (their code multiplies by
2/255 for [-1,1] tensors; **16/255 and 1/255 here**), 100 steps, 512 px, fused mode, no random start.
Our defaults: the common comparison budget (16/255, 2/255, 40 steps); ``preset="source"`` for theirs.

**Objective** (``edit_objective = 2``): Mist's evaluation, like AdvDM's, scores the degradation of the
outputs of textual inversion, DreamBooth and img2img on protected images relative to the clean-image
outputs (FID / precision of the generations; the textural term imprints the target pattern), i.e.
``max d(f(x+delta), f(x))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from latentguard.protect.diffusion import DiffusionProtection
from latentguard.protect.engine import _check_int, register
from latentguard.protect.targets import check_target, target_image

MODES = ("fused", "textural", "semantic")


@register
@dataclass(frozen=True, kw_only=True)
class Mist(DiffusionProtection):
    """``mist``: minimise ``textural - rate * semantic`` (see the module docstring).

    Args:
        rate: weight of the semantic (AdvDM) term, >= 0.
        mode: ``"fused"`` (default), ``"textural"`` or ``"semantic"``.
        target: ``"pattern"`` (default), ``"gray"`` or an image tensor ``[3,H,W]`` in [0,1].
        mc_samples: (t, noise) draws of the semantic term per gradient step.
    """

    name: ClassVar[str] = "mist"
    edit_objective: ClassVar[int] = 2  # max d(f(x+delta), f(x)): see the module docstring
    SOURCE: ClassVar[dict[str, Any]] = {"eps": 16 / 255, "alpha": 1 / 255, "steps": 100, "random_start": False}
    maximize: bool = False
    rate: float = 1e4 / 16384
    mode: str = "fused"
    target: Any = field(default="pattern", compare=False)
    mc_samples: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) or not 0 <= self.rate < float("inf"):
            raise ValueError(f"rate must be a finite number >= 0, got {self.rate!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        _check_int("mc_samples", self.mc_samples, 1)
        object.__setattr__(self, "target", check_target("target", self.target, ("pattern", "gray")))
        super().__post_init__()

    def prepare(self, vae, x):
        mean, _ = vae.encode(target_image(self.target, x[:1]))
        return vae.to_pipeline_latent(mean.float()).detach()

    def _loss(self, vae, x, ctx, generator, draws: int) -> torch.Tensor:
        out = 0.0
        if self.mode != "semantic":
            mean, _ = vae.encode(x)
            out = ((vae.to_pipeline_latent(mean.float()) - ctx) ** 2).flatten(1).mean(1)
        if self.mode != "textural":
            sem = 0.0
            for _ in range(draws):
                loss, _ = self.noise_loss(self.latent(vae, x, generator), generator)
                sem = sem + loss
            weight = 1.0 if self.mode == "semantic" else float(self.rate)
            out = out - weight * sem / draws
        return out

    def objective(self, vae, x, ctx, generator):
        return self._loss(vae, x, ctx, generator, self.mc_samples)

    def measure(self, vae, x, ctx, generator):
        return self._loss(vae, x, ctx, generator, self.eval_samples)
