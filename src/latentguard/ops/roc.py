"""Detection metrics: ROC curve, AUROC, ASR (best balanced accuracy), TPR at a fixed FPR, on scikit-learn.

One copy for the whole project: membership inference (``latentguard.privacy``), poison detection
(``latentguard.poison.audit``) and the benchmarks use it.

Convention: ``scores`` are detection scores, higher means "positive" (member, poisoned); ``labels`` are 1 for
positives, 0 for negatives. (Residual statistics ``S`` are turned into membership scores by negation.)

* ROC: for every distinct score threshold ``tau`` (descending), ``TPR(tau) = P(s >= tau | member)``,
  ``FPR(tau) = P(s >= tau | non-member)``, starting at ``(0, 0)`` with ``tau = +inf``:
  ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)``.
* AUROC: ``sklearn.metrics.roc_auc_score`` (the trapezoidal area under the ROC curve, which equals the
  Mann-Whitney statistic ``P(s_member > s_non) + 1/2 P(=)``; the rank formula used before agrees to 1e-15).
* ASR: ``max_tau (TPR + 1 - FPR) / 2``, the best balanced accuracy (SecMI/PIA/paper convention).
* TPR@x%FPR: the largest TPR among ROC points with ``FPR <= x`` (0 if none). With ``n`` non-members the
  FPR resolution is ``1/n``: below it the value is the TPR at FPR = 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "roc_curve", "auroc", "tpr_at_fpr", "best_balanced_accuracy", "balanced_accuracy_at", "MembershipMetrics",
    "membership_metrics",
]


def _check(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} vs {y.shape[0]}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (non-member) or 1 (member)")
    y = y.astype(np.int64)
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError("need at least one member (label 1) and one non-member (label 0)")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return s, y


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)``, thresholds descending, first point ``(0, 0, +inf)`` (every distinct score)."""
    s, y = _check(scores, labels)
    from sklearn.metrics import roc_curve as sk_roc_curve  # deferred: scikit-learn (and scipy) import in seconds

    return sk_roc_curve(y, s, drop_intermediate=False)  # scikit-learn >= 1.3: the first threshold is +inf


def auroc(scores, labels) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``; ties count one half)."""
    s, y = _check(scores, labels)
    from sklearn.metrics import roc_auc_score  # deferred: scikit-learn (and scipy) import in seconds

    return float(roc_auc_score(y, s))


def tpr_at_fpr(scores, labels, max_fpr: float) -> float:
    """Largest TPR with FPR <= ``max_fpr`` on the ROC curve."""
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be in [0, 1], got {max_fpr!r}")
    fpr, tpr, _ = roc_curve(scores, labels)
    ok = fpr <= max_fpr + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def best_balanced_accuracy(scores, labels) -> tuple[float, float]:
    """``(ASR, threshold)``: the best ``(TPR + TNR) / 2`` over thresholds; predict member when ``s >= thr``."""
    fpr, tpr, thr = roc_curve(scores, labels)
    acc = (tpr + 1.0 - fpr) / 2.0
    i = int(np.argmax(acc))
    return float(acc[i]), float(thr[i])


def balanced_accuracy_at(scores, labels, threshold: float) -> float:
    """``(TPR + TNR) / 2`` of the rule "member iff ``s >= threshold``" (a threshold fixed elsewhere)."""
    s, y = _check(scores, labels)
    pred = s >= threshold
    return float((pred[y == 1].mean() + (~pred[y == 0]).mean()) / 2.0)


@dataclass(frozen=True)
class MembershipMetrics:
    """The reported attack figures (names as in ``summary.json``)."""

    auroc: float
    asr: float
    tpr_at_1pct_fpr: float
    tpr_at_01pct_fpr: float

    def as_dict(self) -> dict:
        d = asdict(self)
        d["tpr_at_0.1pct_fpr"] = d.pop("tpr_at_01pct_fpr")
        return d


def membership_metrics(scores, labels) -> MembershipMetrics:
    """AUROC, ASR (best balanced accuracy), TPR at 1% and 0.1% FPR of membership ``scores``."""
    return MembershipMetrics(
        auroc=auroc(scores, labels),
        asr=best_balanced_accuracy(scores, labels)[0],
        tpr_at_1pct_fpr=tpr_at_fpr(scores, labels, 0.01),
        tpr_at_01pct_fpr=tpr_at_fpr(scores, labels, 0.001),
    )
