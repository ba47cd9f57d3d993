"""PID: prompt-independent protection by posterior discrepancy.

Paper: A. Li, Y. Mo, M. Li, Y. Wang, "PID: Prompt-Independent Data Protection Against Latent
Diffusion Models", ICML 2024 (code: PKU-ML/Diffusion-PID-Protection).

PID needs only the VAE encoder and no prompt: it *maximises* a discrepancy between the posterior of
the perturbed image ``q(z|x') = N(mu', s'^2)`` and that of the clean one ``q(z|x) = N(mu, s^2)``
(fixed). The official script's default and ours (``loss="add-log"``), with means over latent elements:

.. math:: L(x') = \\mathrm{mean}_i (\\ln s_i'^2 - \\ln s_i^2)^2 + \\mathrm{mean}_i (\\mu'_i - \\mu_i)^2 .

Other choices of the source: ``"mean"`` (second term only), ``"var"`` (``mean (s'^2 - s^2)^2``),
``"add"`` (``mean (s' - s)^2 + mean (mu' - mu)^2``), ``"KL"`` (``mean_i KL(q_i(z|x) || q_i(z|x'))``,
per-element KL, clean posterior first as in the source).

The discrepancy and its gradient vanish at ``x' = x``, so sign-PGD from ``delta = 0`` cannot move
(``sign(0) = 0``); ``pid`` therefore defaults to a random start ``U(-eps, eps)`` (our choice).

Source defaults (``PID.sh``): eps 12.75 on the 0-255 scale with images in [0,1] (**12.75/255 = 0.05
here**), step 1/255, sign-gradient ascent, 1000 optimisation steps shared by a folder of
instance images (one image per step: 250 per image for its 4-image instances).
 Our default is the
common comparison budget (16/255, 2/255, 40 steps); ``preset="source"`` gives eps 0.05, alpha 1/255, 250.

**Objective** (``edit_objective = 2``): the paper protects against fine-tuning (DreamBooth, LoRA) with any
prompt and evaluates the images the fine-tuned model generates by their quality and their distance from
those of a model fine-tuned on the clean images (FID and no-reference quality scores such as BRISQUE,
LIQE, CLIP-IQA), i.e.
``max d(f(x+delta), f(x))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from latentguard.protect.engine import Protection, register

LOSSES = ("add-log", "mean", "var", "add", "KL")


def pid_loss(mean: torch.Tensor, logvar: torch.Tensor, mean0: torch.Tensor, logvar0: torch.Tensor,
             kind: str = "add-log") -> torch.Tensor:
    """PID's discrepancy per image ``[N]`` between ``q(z|x') = (mean, logvar)`` and the clean ``(mean0, logvar0)``."""
    mean, logvar = mean.float(), logvar.float()

    def m(t):
        return t.flatten(1).mean(1)

    if kind == "add-log":
        return m((logvar - logvar0) ** 2) + m((mean - mean0) ** 2)
    if kind == "mean":
        return m((mean - mean0) ** 2)
    if kind == "var":
        return m((torch.exp(logvar) - torch.exp(logvar0)) ** 2)
    if kind == "add":
        return m((torch.exp(0.5 * logvar) - torch.exp(0.5 * logvar0)) ** 2) + m((mean - mean0) ** 2)
    if kind == "KL":  # KL(N(mean0, s0^2) || N(mean, s^2)) per element
        kl = 0.5 * (logvar - logvar0) - 0.5 + (torch.exp(logvar0) + (mean0 - mean) ** 2) / (2 * torch.exp(logvar))
        return m(kl)
    raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")


@register
@dataclass(frozen=True, kw_only=True)
class PID(Protection):
    """``pid``: maximise the posterior discrepancy to the clean image (see the module docstring).

    Args:
        loss: ``"add-log"`` (default, the source's default), ``"mean"``, ``"var"``, ``"add"`` or ``"KL"``.
    """

    name: ClassVar[str] = "pid"
    edit_objective: ClassVar[int] = 2  # max d(f(x+delta), f(x)): see the module docstring
    SOURCE: ClassVar[dict[str, Any]] = {"eps": 12.75 / 255, "alpha": 1 / 255, "steps": 250, "random_start": True}
    maximize: bool = True
    random_start: bool = True
    loss: str = "add-log"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        super().__post_init__()

    def prepare(self, vae, x):
        mean, logvar = vae.encode(x)
        return mean.float().detach(), logvar.float().detach()

    def objective(self, vae, x, ctx, generator):
        mean, logvar = vae.encode(x)
        return pid_loss(mean, logvar, ctx[0], ctx[1], self.loss)
