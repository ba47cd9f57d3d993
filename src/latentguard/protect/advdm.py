"""AdvDM: adversarial examples that maximise the diffusion model's training loss.

Paper: C. Liang et al., "Adversarial Example Does Good: Preventing Painting Imitation from Diffusion
Models via Adversarial Examples", ICML 2023 (arXiv 2302.04578).

Loss (maximised), a Monte-Carlo estimate of the LDM training loss of the perturbed image:

.. math::

    L(x') = \\mathbb{E}_{t \\sim U\\{0..T-1\\},\\, n \\sim N(0,I)}
            \\big\\| \\epsilon_\\theta(z_t, t, c) - n \\big\\|^2, \\qquad
    z_t = \\sqrt{\\bar\\alpha_t}\\, z_0 + \\sqrt{1-\\bar\\alpha_t}\\, n, \\quad z_0 = s\\,E(x') ,

with ``E(x')`` a reparameterised posterior sample and ``s`` the pipeline's scaling factor; the gradient
flows through the UNet *and* the encoder (mean over latent elements; ``mc_samples`` draws per step).
``c`` is the prompt's embedding (``""`` by default; a caption of the image is the paper's setting).

Source defaults (the AdvDM/"semantic" mode of the Mist code base, and Diff-Protect's ``advdm``
config): eps = 16 on the 0-255 scale (their [-1,1] tensors use ``16/255*2``; here 16/255), step 1/255,
100 iterations, no random start. Our default is the common comparison budget (eps 16/255, alpha 2/255,
40 steps); ``get("advdm", preset="source")`` gives the source values.

**Objective** (``edit_objective = 2``): the paper's experiments measure how far the outputs of the mimicry
pipelines (textual inversion; SDEdit-style style transfer) on protected images fall from what they produce on
clean ones (FID of the generated images against the clean set; higher = better protection), i.e.
``max d(f(x+delta), f(x))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from latentguard.protect.diffusion import DiffusionProtection
from latentguard.protect.engine import _check_int, register


@register
@dataclass(frozen=True, kw_only=True)
class AdvDM(DiffusionProtection):
    """``advdm``: maximise ``E_t ||eps_theta(z_t,t,c) - eps||^2`` through UNet and encoder.

    Args:
        mc_samples: (t, noise) draws averaged per gradient step.
        (and ``pipe``, ``prompt`` of :class:`~latentguard.protect.diffusion.DiffusionProtection`, and the engine's)
    """

    name: ClassVar[str] = "advdm"
    edit_objective: ClassVar[int] = 2  # max d(f(x+delta), f(x)): see the module docstring
    SOURCE: ClassVar[dict[str, Any]] = {"eps": 16 / 255, "alpha": 1 / 255, "steps": 100, "random_start": False}
    maximize: bool = True
    mc_samples: int = 1

    def __post_init__(self) -> None:
        _check_int("mc_samples", self.mc_samples, 1)
        super().__post_init__()

    def _loss(self, vae, x, generator, draws: int) -> torch.Tensor:
        total = 0.0
        for _ in range(draws):
            z0 = self.latent(vae, x, generator)
            loss, _ = self.noise_loss(z0, generator)
            total = total + loss
        return total / draws

    def objective(self, vae, x, ctx, generator):
        return self._loss(vae, x, generator, self.mc_samples)

    def measure(self, vae, x, ctx, generator):
        return self._loss(vae, x, generator, self.eval_samples)
