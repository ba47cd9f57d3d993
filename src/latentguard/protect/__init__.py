"""Protect: make images un-editable by latent diffusion models.

Every method is a registered, validated, frozen dataclass on one projected-gradient engine
(:mod:`latentguard.protect.engine`)::

    from latentguard.protect import get, available
    pca = get("pca+", vae="zoo:vae-a", eps=16/255, steps=40)
    protected = pca(images)                      # [N,3,H,W] in [0,1]
    out = pca.protect(images)                    # .images, .delta, .records (loss/KL before/after, ...)

Methods: ``pca+``, ``pca-``, ``pca-adaptive`` (Posterior Collapse Attack) and the baselines
``photoguard-enc``, ``photoguard-diff``, ``advdm``, ``mist``, ``sds+``, ``sds-``, ``pid``.
See docs/protect.md.
"""

from latentguard.protect.engine import (
    ProtectOutput,
    ProtectRecord,
    Protection,
    available,
    frozen,
    get,
    get_class,
    kl_standard_normal,
    register,
    run_protection,
    tile_grid,
)
from latentguard.protect.pca import PCAAdaptive, PCAMinus, PCAPlus, PosteriorCollapse, pca_loss
from latentguard.protect.photoguard import PhotoGuardDiffusion, PhotoGuardEncoder
from latentguard.protect.pid import PID, pid_loss
from latentguard.protect.diffusion import DiffusionProtection
from latentguard.protect.advdm import AdvDM
from latentguard.protect.mist import Mist
from latentguard.protect.sds import SDSMinus, SDSPlus, ScoreDistillation
from latentguard.ops.transforms import parse_transforms

__all__ = [
    "Protection", "ProtectOutput", "ProtectRecord", "available", "get", "get_class", "register", "run_protection",
    "frozen", "tile_grid", "kl_standard_normal", "pca_loss", "PosteriorCollapse", "PCAPlus", "PCAMinus",
    "PCAAdaptive", "parse_transforms", "PhotoGuardEncoder", "PhotoGuardDiffusion", "PID", "pid_loss",
    "DiffusionProtection", "AdvDM", "Mist", "SDSPlus", "SDSMinus", "ScoreDistillation",
]
