"""Projected-gradient primitives: start, step, step decay, projection on the budget and on ``[0,1]``.

For images ``x`` in ``[0,1]`` and a perturbation ``delta``:

.. math::

    \\delta_0 = \\Pi(0 \\text{ or } U(-\\epsilon, \\epsilon)), \\qquad
    \\delta_{t+1} = \\Pi\\big(\\delta_t \\pm \\alpha_t\\, s(g_t)\\big), \\qquad
    \\Pi(\\delta) = m \\odot \\big(\\mathrm{clip}_{[0,1]}(x + P_\\epsilon(\\delta)) - x\\big)

with ``+`` to maximise and ``-`` to minimise, ``s(g) = sign(g)`` and ``P_eps`` the clip to ``[-eps, eps]`` for
``linf``, ``s(g) = g / ||g||_2`` and ``P_eps`` the per-image rescale into the L2 ball for ``l2``; ``m`` an
optional boolean mask (pixels outside stay exactly 0); ``alpha_t`` constant or decayed (:func:`step_size`).
Budgets are in ``[0,1]`` pixel units (``eps = 16/255``).

The pieces are what protect's engine (which adds EOT, tiles, ensembles and records on top), poison's
latent-shift poison and harden's SRL inner attack share. :func:`pgd` is the plain loop over them for a
differentiable loss of ``x + delta``: SRL-VAE's inner attack (``harden/attack.py``) and poison's latent shift
run on it, number for number the loops they had (tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from latentguard.ops.choices import NORMS, STEP_DECAYS
from latentguard.ops.runtime import rand, randn

__all__ = ["NORMS", "STEP_DECAYS", "per_image_norm", "project", "init_delta", "step_size", "pgd_step", "pgd"]


def per_image_norm(g: torch.Tensor) -> torch.Tensor:
    """L2 norm of each image of ``[N,...]``, shaped ``[N,1,1,1]``, at least 1e-12."""
    return g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


def project(x: torch.Tensor, delta: torch.Tensor, *, eps: float, norm: str = "linf",
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """``Pi(delta)``: into the ``eps`` ball (``linf``: clip; ``l2``: per-image rescale), then ``x + delta`` into
    ``[0,1]``, then zero outside ``mask`` (boolean, broadcastable to ``delta``)."""
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    elif norm == "l2":
        delta = delta * torch.clamp(eps / per_image_norm(delta), max=1.0)
    else:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    delta = (x + delta).clamp(0.0, 1.0) - x
    if mask is not None:
        delta = torch.where(mask, delta, torch.zeros_like(delta))
    return delta


def init_delta(x: torch.Tensor, *, eps: float, norm: str = "linf", random_start: bool = False,
               generator: torch.Generator | None = None, mask: torch.Tensor | None = None,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """The start: zeros, or (``random_start``) ``U(-eps, eps)`` per pixel (``linf``) / a uniformly random
    direction of length ``eps * U(0, 1)`` per image (``l2``), projected (:func:`project`).

    Draws come from ``generator``'s device (then moved to ``x``'s), in ``dtype`` (default float32).
    """
    if not random_start:
        return torch.zeros_like(x)
    dtype = dtype or torch.float32
    if norm == "linf":
        d = (rand(x.shape, generator, x.device, dtype) * 2.0 - 1.0) * eps
    else:
        g = randn(x.shape, generator, x.device, dtype)
        r = rand((x.shape[0], 1, 1, 1), generator, x.device, dtype)
        d = g / per_image_norm(g) * eps * r
    return project(x, d, eps=eps, norm=norm, mask=mask)


def step_size(alpha: float, t: int, steps: int, decay: str = "none", floor: float = 0.01) -> float:
    """``alpha_t`` at 0-based step ``t`` of ``steps``: constant, ``linear`` (PhotoGuard's
    ``alpha - (alpha - alpha*floor) t/T``) or ``cosine`` (from ``alpha`` towards ``alpha*floor``)."""
    if decay not in STEP_DECAYS:
        raise ValueError(f"step_decay must be one of {STEP_DECAYS}, got {decay!r}")
    if decay == "none" or steps <= 1:
        return alpha
    frac = t / steps
    lo = alpha * floor
    if decay == "linear":
        return alpha - (alpha - lo) * frac
    return lo + (alpha - lo) * 0.5 * (1.0 + math.cos(math.pi * frac))


def pgd_step(x: torch.Tensor, delta: torch.Tensor, grad: torch.Tensor, *, alpha: float, eps: float,
             norm: str = "linf", maximize: bool = True, mask: torch.Tensor | None = None) -> torch.Tensor:
    """One step: ``Pi(delta +- alpha * s(grad))`` (``s``: sign for ``linf``, per-image unit vector for ``l2``)."""
    step = torch.sign(grad) if norm == "linf" else grad / per_image_norm(grad)
    direction = 1.0 if maximize else -1.0
    return project(x, delta + direction * alpha * step, eps=eps, norm=norm, mask=mask)


def pgd(loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, eps: float, alpha: float, steps: int,
        norm: str = "linf", maximize: bool = True, random_start: bool = False,
        generator: torch.Generator | None = None, step_decay: str = "none", decay_floor: float = 0.01,
        mask: torch.Tensor | None = None) -> torch.Tensor:
    """The plain PGD loop; returns the final ``delta`` (detached; ``x + delta`` is in ``[0,1]``).

    Args:
        loss_fn: differentiable scalar loss of ``x + delta`` (sum the per-image losses; clip inside if wanted).
        x: images ``[N,C,H,W]`` in ``[0,1]`` (not modified).
        eps, alpha, steps, norm, maximize: budget, step, iterations, norm and direction.
        random_start, generator: start (:func:`init_delta`; draws in ``x``'s dtype).
        step_decay, decay_floor: :func:`step_size`.
        mask: boolean region allowed to change.
    """
    x = x.detach()
    delta = init_delta(x, eps=eps, norm=norm, random_start=random_start, generator=generator, mask=mask,
                       dtype=x.dtype).detach()
    for t in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(x + delta), delta)
        with torch.no_grad():
            delta = pgd_step(x, delta.detach(), grad, alpha=step_size(alpha, t, steps, step_decay, decay_floor),
                             eps=eps, norm=norm, maximize=maximize, mask=mask)
    return delta.detach()
