"""Protect: make images un-editable by latent diffusion models.

Every method is a registered, validated, frozen dataclass on one projected-gradient engine
(:mod:`latentguard.protect.engine`)::

    from latentguard.protect import get, available
    pca = get("pca+", vae="zoo:vae-a", eps=16/255, steps=40)
    protected = pca(images)                      # [N,3,H,W] in [0,1]
    out = pca.protect(images)                    # .images, .delta, .records (loss/KL before/after, ...)

Methods: ``none`` and ``random-noise`` (the reference rows), ``pca+``, ``pca-``, ``pca-adaptive`` (Posterior Collapse Attack) and the baselines
``photoguard-enc``, ``photoguard-diff``, ``advdm``, ``mist``, ``sds+``, ``sds-``, ``pid``.
See docs/protect.md.
"""

from latentguard.core.lazy import lazy_exports

# Torch-free: names and lookup. Everything else loads on first use (it imports torch).
from latentguard.protect.registry import available, get, get_class, register

_LAZY, __getattr__, __dir__ = lazy_exports(__name__, {
    "latentguard.protect.engine": ("ProtectOutput", "ProtectRecord", "Protection", "StepInfo", "frozen", "kl_standard_normal",
                                   "run_protection", "tile_grid"),
    "latentguard.protect.baselines": ("NoProtection", "RandomSignNoise"),
    "latentguard.protect.pca": ("PCAAdaptive", "PCAMinus", "PCAPlus", "PosteriorCollapse", "pca_loss"),
    "latentguard.protect.photoguard": ("PhotoGuardDiffusion", "PhotoGuardEncoder"),
    "latentguard.protect.pid": ("PID", "pid_loss"),
    "latentguard.protect.diffusion": ("DiffusionProtection",),
    "latentguard.protect.advdm": ("AdvDM",),
    "latentguard.protect.mist": ("Mist",),
    "latentguard.protect.sds": ("SDSMinus", "SDSPlus", "ScoreDistillation"),
    "latentguard.ops.transforms": ("parse_transforms",),
})
__all__ = ["available", "get", "get_class", "register", *_LAZY]
