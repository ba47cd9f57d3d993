"""Learning-rate schedules and the weight EMA of the project's training loops, with why they are (not) the libraries'.

* :func:`warmup_cosine` -- linear warm-up, then cosine decay from 1 to ``min_ratio`` (a factor of the peak lr).
  With ``min_ratio = 0`` it is diffusers' ``get_cosine_schedule_with_warmup`` lambda, and with any
  ``min_ratio`` transformers' ``get_cosine_with_min_lr_schedule_with_warmup(min_lr_rate=min_ratio)`` lambda,
  exactly (same floats for every step in ``[0, total]``; tested). SRL-VAE's schedule (``harden/trainer.py``'s
  ``lr_at``: warm-up 50, floor 0.1) is ``warmup_cosine(..., base=lr)``, float for float. (A library
  ``LambdaLR`` would give ``lr * (step / warmup)`` in the warm-up, which rounds 1 ulp away from
  ``lr * step / warmup`` on 404 of 6 000 steps over four settings: why SRL keeps calling this function.)
* :func:`zoo_cosine_lr` -- the zoo recipes' schedule (``zoo/train/recipes.py``: vae-a, vae-b, t2i, t2i-members,
  embed). It is **not** diffusers': the warm-up is one step ahead (``(step + 1) / warmup``) and the decay
  goes to 0 but the lr is floored at ``floor * base`` (2%) by a ``max``, not rescaled; diffusers' schedule
  ends at 0. Rebuilding a bundled model must reproduce its weights, so the recipes keep this schedule.
* :func:`ema_update_` -- the constant-decay EMA of the t2i recipe (``ema <- d * ema + (1 - d) * w`` on every
  floating-point tensor of the ``state_dict``, from the first step). It is **not** diffusers' ``EMAModel``:
  that one always warms its decay up, ``min(decay, (1 + t) / (10 + t))`` (its first update copies the
  weights: decay 0), writes ``ema - (1 - d)(ema - w)`` (other rounding), and tracks parameters only, not
  buffers. Measured with the t2i recipe's decay 0.999 on a 64x64 linear layer trained by SGD for 100 steps:
  the two averages differ by 2.7% (relative L2); ``EMAModel`` is 0.4% from the live weights, the constant
  EMA 3.1% (``tests/ops/test_schedules.py`` asserts they differ), so using ``EMAModel`` would change what a
  rebuild of zoo:t2i produces. (``zoo/train/ldm_photo.py`` uses
  ``EMAModel`` with its warm-up on purpose.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

__all__ = ["warmup_cosine", "zoo_cosine_lr", "set_lr", "ema_update_"]


def warmup_cosine(step: int, *, warmup: int, total: int, min_ratio: float = 0.0, base: float = 1.0) -> float:
    """The lr at ``step`` for a peak ``base`` (``base=1``: the factor a ``LambdaLR`` wants): ``base * step / warmup``
    up to ``warmup``, then ``base * (min_ratio + (1 - min_ratio) * (1 + cos(pi * t)) / 2)`` with
    ``t = (step - warmup) / (total - warmup)`` (clipped at 1 past ``total``)."""
    if warmup > 0 and step <= warmup:
        return base * step / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def zoo_cosine_lr(step: int, base: float, total: int, warmup: int = 200, floor: float = 0.02) -> float:
    """The zoo recipes' lr at ``step``: ``base * (step + 1) / warmup`` during warm-up, then
    ``base * (1 + cos(pi * (step - warmup) / (total - warmup))) / 2``, never below ``floor * base``."""
    if step < warmup:
        lr = base * (step + 1) / warmup
    else:
        lr = base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    return max(lr, base * floor)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate to ``lr``."""
    for g in optimizer.param_groups:
        g["lr"] = lr


@torch.no_grad()
def ema_update_(ema: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], decay: float) -> None:
    """In place, for every floating-point entry of ``state``: ``ema[k] <- decay * ema[k] + (1 - decay) * state[k]``.

    ``ema`` is a ``{name: tensor}`` copy of a ``state_dict`` (e.g. ``{k: v.detach().clone() for k, v in
    model.state_dict().items()}``); non-floating entries (counters) are left alone.
    """
    for k, v in state.items():
        if v.dtype.is_floating_point:
            ema[k].mul_(decay).add_(v, alpha=1 - decay)
