"""Privacy audits of latent diffusion models (arXiv 2511.20592).

* :mod:`latentguard.privacy.pullback` decoder pullback geometry: per-sample log-volume, per-latent-dimension
  contributions, keep-masks and the random-drop control.
* AUROC, ASR, TPR at fixed FPR, ROC curves: :mod:`latentguard.ops.roc` (shared), re-exported here.
* :mod:`latentguard.privacy.mia` score-based membership inference (loss, PIA, SecMI, SimA) with latent
  dimension masking, two selection protocols and the distortion split.
"""

from latentguard.ops.roc import (
    MembershipMetrics,
    auroc,
    balanced_accuracy_at,
    best_balanced_accuracy,
    membership_metrics,
    roc_curve,
    tpr_at_fpr,
)
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
    "MembershipMetrics", "auroc", "balanced_accuracy_at", "best_balanced_accuracy", "membership_metrics", "roc_curve",
    "tpr_at_fpr",
    "PullbackConfig", "PullbackResult", "analyze_pullback", "decoder_jacobian", "hutchinson_diag", "keep_mask",
    "log_volume", "per_dim_contribution", "random_keep_mask", "rank_dims", "topk_singular_values",
]
