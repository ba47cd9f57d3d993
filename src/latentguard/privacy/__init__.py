"""Privacy audits of latent diffusion models (arXiv 2511.20592).

* :mod:`latentguard.privacy.pullback` decoder pullback geometry: per-sample log-volume, per-latent-dimension
  contributions, keep-masks and the random-drop control.
* AUROC, ASR, TPR at fixed FPR, ROC curves: :mod:`latentguard.ops.roc` (shared), re-exported here.
* :mod:`latentguard.privacy.mia` score-based membership inference (loss, PIA, SecMI, SimA) with latent
  dimension masking, two selection protocols and the distortion split.
"""

# Loaded on first use: these modules import torch.
from latentguard.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "latentguard.ops.roc": (
        "MembershipMetrics", "auroc", "balanced_accuracy_at", "best_balanced_accuracy", "membership_metrics",
        "roc_curve", "tpr_at_fpr",
    ),
    "latentguard.privacy.pullback": (
        "PullbackConfig", "PullbackResult", "analyze_pullback", "decoder_jacobian", "hutchinson_diag",
        "keep_mask", "log_volume", "per_dim_contribution", "random_keep_mask", "rank_dims",
        "topk_singular_values",
    ),
})
