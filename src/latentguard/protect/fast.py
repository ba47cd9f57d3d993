"""``fast``: protection in one forward pass of a trained protector network, optionally refined by a few steps.

A protector ``G`` (:class:`latentguard.models.protector.Protector`, ``zoo:protector-a`` by default) was trained to
maximise (or minimise) the objective of an encoder-only protection (its *base* method, ``pca+`` for the
bundled one) averaged over a set of surrogate VAEs (``latentguard protector train``,
:mod:`latentguard.zoo.train.protector`). Protecting is then one pass: ``delta = m * G(x)`` with
``||delta||_inf <= eps`` by construction (``eps * tanh``), any size (tiles above the protector's tile size).

``refine=K`` continues with ``K`` projected-gradient steps of the base method *starting from G's output*
(the engine of :mod:`latentguard.protect.engine`, same budget, mask and records): near-iterative strength for
a fraction of the iterative cost. ``refine=0`` (default) is the pure feed-forward pass.

**A protector protects against the VAEs it was trained against.** The records' objective (``loss_before`` /
``loss_after``) is the base method's, measured on ``vae`` (default: the protector's training VAEs). Against
Stable Diffusion, train a protector on SD's VAE (``latentguard protector train --vae stabilityai/sd-vae-ft-mse``).

**Objective** (``edit_objective = 1`` for the bundled ``zoo:protector-a``): a protector targets its base
method's objective; the bundled one is trained on ``pca+``, whose official README states Objective 1 (the edit of
the protected image stays close to the input). A protector trained on ``pca-``, ``pca-adaptive``, ``photoguard-enc``
or ``pid`` targets Objective 2; :attr:`FastProtection.edit_objective_of` gives the instance's.

This is amortised protection in the spirit of FastProtect (arXiv 2412.11423) and DiffVax; it is neither
paper's method: ``G`` here is a small two-level U-Net trained directly on the base method's objective (no
mixture-of-perturbations, no adaptive inference, no diffusion-loss term).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from latentguard.ops import pgd
from latentguard.protect.engine import Protection, register
from latentguard.protect.registry import get as get_protection

# The registered protections whose objective needs only the VAE encoder (what a protector can be trained on).
ENCODER_ONLY = ("pca+", "pca-", "pca-adaptive", "photoguard-enc", "pid")
DEFAULT_PROTECTOR = "zoo:protector-a"


def build_base(name: str, vaes: Any, eps: float, **params: Any) -> Protection:
    """The base protection ``name`` (encoder-only) on ``vaes`` at budget ``eps`` (its objective and direction)."""
    if name not in ENCODER_ONLY:
        raise ValueError(f"a protector's base method must be an encoder-only protection ({', '.join(ENCODER_ONLY)}), "
                         f"got {name!r}")
    return get_protection(name, vae=vaes, eps=eps, **params)


def _as_protector(spec: Any, device):
    # deferred: diffusers (the protector is a ModelMixin), via models.loading
    from latentguard.models.loading import load_protector
    from latentguard.models.protector import Protector

    if isinstance(spec, Protector):
        return spec.to(device)
    if isinstance(spec, str):
        return load_protector(spec, device=device)
    raise ValueError(f"protector must be a spec string (zoo:NAME, a folder) or a Protector, got {type(spec).__name__}")


@register
@dataclass(frozen=True, kw_only=True)
class FastProtection(Protection):
    """``fast``: one pass of a trained protector ``G``, then ``refine`` steps of its base method.

    Args:
        protector: ``zoo:protector-a`` (default), a folder written by ``latentguard protector train``, or a
            :class:`~latentguard.models.protector.Protector`.
        refine: projected-gradient steps of the base method after ``G`` (0: none). ``steps`` is ignored:
            the engine runs ``refine`` steps.
        vae: surrogate(s) for the records and for ``refine``; default: the VAEs the protector was trained on.
        eps: budget; ``G``'s ``tanh`` output is scaled to it (the protector was trained at its config's ``eps``).
        alpha: step of the refinement (default ``eps / 2``, 8/255 at 16/255; ``benchmarks/bench_fast.py --parts
            refine`` swept 1-12/255 for ``refine=5`` on the bundled protector: 8/255 reaches 97.1% of pca+ T=40's
            gain, the best step 6/255 97.4%, the earlier default 1/255 83.1%).
        (and every engine argument of :class:`~latentguard.protect.engine.Protection`)
    """

    name: ClassVar[str] = "fast"
    # The bundled protector's base method is pca+ (Objective 1). A protector trained on another base method
    # targets that method's objective: ``edit_objective_of`` reads it from the instance.
    edit_objective: ClassVar[int] = 1
    protector: Any = field(default=DEFAULT_PROTECTOR, compare=False)
    refine: int = 0
    alpha: float | None = None
    steps: int = 0

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        if isinstance(self.refine, bool) or not isinstance(self.refine, int) or self.refine < 0:
            raise ValueError(f"refine must be an int >= 0, got {self.refine!r}")
        if self.norm != "linf":
            raise ValueError("fast: the protector's budget is L-inf (eps * tanh); norm must be 'linf'")
        dev = self.vae[0].device if isinstance(self.vae, (list, tuple)) and self.vae and hasattr(self.vae[0], "device") \
            else getattr(self.vae, "device", "cpu")
        g = _as_protector(self.protector, dev)
        set_("protector", g)
        if self.vae is None:
            set_("vae", list(g.config.vaes))
        set_("steps", int(self.refine))
        if self.alpha is None:  # the refinement's step: half the budget (see the class docstring)
            eps_ok = isinstance(self.eps, (int, float)) and not isinstance(self.eps, bool)
            set_("alpha", float(self.eps) / 2 if eps_ok else 1 / 255)  # a bad eps is refused just below
        super().__post_init__()
        g.to(self.device)
        base = build_base(str(g.config.base), self.vaes, self.eps, alpha=self.alpha, steps=self.refine)
        set_("maximize", bool(base.maximize))
        set_("base", base)

    # the base method's objective and constants: the records and the refinement use them
    def prepare(self, vae, x):
        return self.base.prepare(vae, x)

    def objective(self, vae, x, ctx, generator):
        return self.base.objective(vae, x, ctx, generator)

    def measure(self, vae, x, ctx, generator):
        return self.base.measure(vae, x, ctx, generator)

    @property
    def base_method(self) -> str:
        return str(self.protector.config.base)

    @property
    def edit_objective_of(self) -> int | None:
        """The edit objective of this instance's base method (1 for the bundled protector)."""
        return type(self.base).edit_objective

    def start(self, x: torch.Tensor, mask: torch.Tensor | None, generator) -> torch.Tensor:
        """The engine's starting perturbation: ``G``'s output (masked, within ``eps`` and ``[0,1]``)."""
        d = self.protector.perturbation(x, eps=self.eps, mask=mask)
        return pgd.project(x, d.to(x.dtype), eps=self.eps, norm="linf", mask=mask)
