"""Membership-inference metrics: ROC curve, AUROC, ASR (best balanced accuracy), TPR at a fixed FPR.

Convention: ``scores`` are *membership* scores, higher means "member"; ``labels`` are 1 for members,
0 for non-members. (Residual statistics ``S`` are turned into membership scores by negation.)

* ROC: for every distinct score threshold ``tau`` (descending), ``TPR(tau) = P(s >= tau | member)``,
  ``FPR(tau) = P(s >= tau | non-member)``, starting at ``(0, 0)`` with ``tau = +inf`` (scikit-learn's
  ``roc_curve(drop_intermediate=False)`` points).
* AUROC: the Mann-Whitney statistic ``P(s_member > s_non) + 1/2 P(=)``, equal to the trapezoidal area.
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
    """``(fpr, tpr, thresholds)``, thresholds descending, first point ``(0, 0, +inf)``."""
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / y.sum()]
    fpr = np.r_[0.0, fps / (len(y) - y.sum())]
    thr = np.r_[np.inf, s[last]]
    return fpr, tpr, thr


def auroc(scores, labels) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties)."""
    s, y = _check(scores, labels)
    from scipy.stats import rankdata

    r = rankdata(s)  # average ranks
    n1 = y.sum()
    n0 = len(y) - n1
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


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
