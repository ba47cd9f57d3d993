"""SRL-VAE's inner attack: ``l_inf`` sign-PGD on the input, maximising the VAE's reconstruction loss.

.. math:: L_{in}(\\delta) = \\mathrm{MSE}(D(\\mu_E(x+\\delta)), x) + \\lambda_{in}\\, d_p(D(\\mu_E(x+\\delta)), x),
          \\quad \\lVert\\delta\\rVert_\\infty \\le \\epsilon,\\ x+\\delta \\in [0,1]

``mu_E`` is the posterior mean of the *current* encoder, ``d_p`` the perceptual distance (LPIPS in the paper;
here the named weight-free substitute ``grad-ssim``, see :mod:`latentguard.harden.perceptual`). The trainer
calls :func:`reconstruction_attack` once per adversarial step; the end-of-run probe and the tests score a VAE
with :func:`adversarial_psnr`.

The projected-gradient loop (random start ``U(-eps, eps)``, sign step, ``l_inf`` projection, ``[0,1]`` clamp) is the
shared :func:`latentguard.ops.pgd.pgd` (the same primitives as protect's engine and poison's latent shift);
:func:`reconstruction_attack` only adds the objective.
"""

from __future__ import annotations

import torch

from latentguard.harden.perceptual import perceptual_distance
from latentguard.models.vae import LatentVAE
from latentguard.ops.pgd import pgd


def reconstruction_objective(vae: LatentVAE, x_in: torch.Tensor, target: torch.Tensor, perceptual: str,
                             perceptual_weight: float) -> torch.Tensor:
    """Per-image ``MSE(D(mu_E(x_in)), target) + w * d_p(D(mu_E(x_in)), target)``, shape ``[N]``."""
    mean, _ = vae.encode(x_in)
    rec = vae.decode(mean)
    loss = (rec - target).pow(2).flatten(1).mean(1)
    if perceptual_weight > 0 and perceptual != "none":
        loss = loss + perceptual_weight * perceptual_distance(perceptual, rec, target)
    return loss


def reconstruction_attack(
    vae: LatentVAE,
    x: torch.Tensor,
    *,
    eps: float = 15 / 255,
    steps: int = 5,
    alpha: float | None = None,
    perceptual: str = "none",
    perceptual_weight: float = 0.1,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SRL-VAE's inner maximisation: ``l_inf`` sign-PGD on ``x`` maximising the reconstruction loss.

    Args:
        vae: the (current) VAE; its parameters and train/eval state are left as they are.
        x: clean images ``[N,3,H,W]`` in ``[0,1]`` (not mutated).
        eps: budget in ``[0,1]`` pixel units.
        steps: PGD iterations.
        alpha: step size (``None``: ``2.5 * eps / steps``).
        perceptual, perceptual_weight: the perceptual term of the objective (see :func:`reconstruction_objective`).
        random_start: start from ``U(-eps, eps)``.
        generator: RNG of the random start (on ``x.device``).

    Returns:
        ``x_adv = clip(x + delta, 0, 1)`` with ``||delta||_inf <= eps``, detached.
    """
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1], got {eps!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    alpha = 2.5 * eps / steps if alpha is None else alpha
    x = x.detach()
    delta = pgd(lambda xa: reconstruction_objective(vae, xa, x, perceptual, perceptual_weight).sum(), x,
                eps=eps, alpha=alpha, steps=steps, norm="linf", maximize=True, random_start=random_start,
                generator=generator)
    return (x + delta).detach()


@torch.no_grad()
def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of images in ``[0,1]`` (both clamped to ``[0,1]``; MSE floored at ``1e-12``)."""
    mse = (a.clamp(0, 1) - b.clamp(0, 1)).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(1.0 / mse)


def adversarial_psnr(vae: LatentVAE, x: torch.Tensor, *, eps: float = 15 / 255, steps: int = 10,
                     perceptual: str = "none", perceptual_weight: float = 0.1,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image PSNR of ``D(mu_E(x_adv))`` vs ``x`` under the reconstruction attack (white-box on ``vae``)."""
    x_adv = reconstruction_attack(vae, x, eps=eps, steps=steps, perceptual=perceptual,
                                  perceptual_weight=perceptual_weight, generator=generator)
    with torch.no_grad():
        return psnr(vae.reconstruct(x_adv), x)
