"""Privacy audits of latent diffusion models (arXiv 2511.20592).

* :mod:`latentguard.privacy.pullback` decoder pullback geometry: per-sample log-volume, per-latent-dimension
  contributions, keep-masks and the random-drop control.
* :mod:`latentguard.privacy.roc` AUROC, ASR, TPR at fixed FPR, ROC curves.
* :mod:`latentguard.privacy.mia` score-based membership inference (loss, PIA, SecMI, SimA) with latent
  dimension masking, two selection protocols and the distortion split.
"""

from latentguard.privacy.pullback import (
    PullbackConfig,
    PullbackResult,
    analyze_pullback,
    decoder_jacobian,
    hutchinson_diag,
    keep_mask,
    log_volume,
    per_dim_contribution,
    random_keep_mask,
    rank_dims,
    topk_singular_values,
)

__all__ = [
    "PullbackConfig", "PullbackResult", "analyze_pullback", "decoder_jacobian", "hutchinson_diag", "keep_mask",
    "log_volume", "per_dim_contribution", "random_keep_mask", "rank_dims", "topk_singular_values",
]
