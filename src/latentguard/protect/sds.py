"""SDS(+) and SDS(-): AdvDM with the score-distillation gradient (UNet Jacobian dropped).

Paper: H. Xue, C. Liang, X. Wu, Y. Chen, "Toward Effective Protection Against Diffusion-Based Mimicry
through Score Distillation", ICLR 2024 (code: Diff-Protect).

AdvDM's gradient w.r.t. the scaled latent is ``2 sqrt(abar_t) J_theta^T (eps_hat - n)`` with ``J_theta``
the UNet's Jacobian. Score distillation drops the Jacobian (and the constant), giving

.. math::

    g_{z_0} = \\epsilon_\\theta(z_t, t, c) - n, \\qquad
    g_x = \\Big(\\frac{\\partial z_0}{\\partial x}\\Big)^{\\!T} g_{z_0},

i.e. the UNet runs without a graph and ``g_{z_0}`` is pushed back through the encoder only; here as the
surrogate objective ``sum(stopgrad(eps_hat - n) * z_0)``. ``sds+`` ascends (increases the AdvDM loss),
``sds-`` descends (the paper finds minimising stronger: the latent is pulled to where the model's
prediction is already good, which smooths/blurs the edited images). The recorded loss is the AdvDM
loss ``||eps_hat - n||^2`` (fixed noise before/after), so ``sds+`` should raise it and ``sds-`` lower it.

Source defaults (Diff-Protect ``configs/attack/base.yaml``): eps = 16 and alpha = 1 on the 0-255 scale
(here 16/255 and 1/255), 100 steps, ``g_mode "-"``, no random start, PhotoGuard's linear step decay to
alpha/100. Our default is the common budget (16/255, 2/255, 40 steps, no decay); ``preset="source"``
gives theirs.

**Objective** (``edit_objective = 2``, both signs): the paper evaluates SDEdit, inpainting and textual
inversion on protected images by how much their outputs degrade against the outputs on clean images (FID,
SSIM, PSNR and similar scores of the generations; the minus sign wins by blurring the edits), i.e.
``max d(f(x+delta), f(x))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from latentguard.protect.diffusion import DiffusionProtection
from latentguard.protect.engine import _check_int, register

_SOURCE: dict[str, Any] = {"eps": 16 / 255, "alpha": 1 / 255, "steps": 100, "random_start": False,
                           "step_decay": "linear", "decay_floor": 0.01}


@dataclass(frozen=True, kw_only=True)
class ScoreDistillation(DiffusionProtection):
    """Encoder-only score-distillation attack (see the module docstring).

    Args:
        mc_samples: (t, noise) draws averaged per gradient step.
    """

    name: ClassVar[str] = "sds"
    edit_objective: ClassVar[int] = 2  # max d(f(x+delta), f(x)), both signs: see the module docstring
    mc_samples: int = 1

    def __post_init__(self) -> None:
        _check_int("mc_samples", self.mc_samples, 1)
        super().__post_init__()

    def objective(self, vae, x, ctx, generator):
        total = 0.0
        for _ in range(self.mc_samples):
            z0 = self.latent(vae, x, generator)
            _, resid = self.noise_loss(z0, generator, detach_unet=True)
            total = total + (resid.detach() * z0).flatten(1).sum(1)
        return total / self.mc_samples

    def measure(self, vae, x, ctx, generator):
        total = 0.0
        for _ in range(self.eval_samples):
            loss, _ = self.noise_loss(self.latent(vae, x, generator), generator)
            total = total + loss
        return total / self.eval_samples


@register
@dataclass(frozen=True, kw_only=True)
class SDSPlus(ScoreDistillation):
    """``sds+``: ascend the AdvDM loss with the SDS gradient."""

    name: ClassVar[str] = "sds+"
    SOURCE: ClassVar[dict[str, Any]] = _SOURCE
    maximize: bool = True


@register
@dataclass(frozen=True, kw_only=True)
class SDSMinus(ScoreDistillation):
    """``sds-``: descend the AdvDM loss with the SDS gradient (the paper's stronger variant)."""

    name: ClassVar[str] = "sds-"
    SOURCE: ClassVar[dict[str, Any]] = _SOURCE
    maximize: bool = False
