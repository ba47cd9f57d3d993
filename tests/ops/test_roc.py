"""ROC metrics against scikit-learn on random data (ties included)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from latentguard.ops import roc


def _data(seed: int, n: int = 300, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1
    s = rng.normal(size=n) + 0.8 * y
    if ties:
        s = np.round(s, 1)
    return s, y


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_against_sklearn(seed, ties):
    s, y = _data(seed, ties=ties)
    assert roc.auroc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, thr = roc.roc_curve(s, y)
    f2, t2, th2 = sk_roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f2)
    np.testing.assert_allclose(tpr, t2)
    np.testing.assert_allclose(thr[1:], th2[1:])
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc.auroc(s, y), abs=1e-12)
    for x in (0.01, 0.001, 0.1):
        ok = f2 <= x
        assert roc.tpr_at_fpr(s, y, x) == pytest.approx(t2[ok].max())
    asr, thr_best = roc.best_balanced_accuracy(s, y)
    assert asr == pytest.approx(((t2 + 1 - f2) / 2).max())
    assert roc.balanced_accuracy_at(s, y, thr_best) == pytest.approx(asr)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.booleans()), min_size=2, max_size=40))
def test_auroc_property(pairs):
    s = np.array([p[0] for p in pairs], float)
    y = np.array([int(p[1]) for p in pairs])
    if y.min() == y.max():
        with pytest.raises(ValueError, match="member"):
            roc.auroc(s, y)
        return
    assert roc.auroc(s, y) == pytest.approx(roc_auc_score(y, s))
    assert roc.auroc(-s, y) == pytest.approx(1 - roc_auc_score(y, s))


def test_extremes_and_errors():
    y = np.array([0, 0, 1, 1])
    m = roc.membership_metrics(np.array([0.0, 1, 2, 3]), y)
    assert m.auroc == 1 and m.asr == 1 and m.tpr_at_1pct_fpr == 1 and m.tpr_at_01pct_fpr == 1
    assert set(m.as_dict()) == {"auroc", "asr", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"}
    m = roc.membership_metrics(np.array([3.0, 2, 1, 0]), y)
    assert m.auroc == 0 and m.tpr_at_1pct_fpr == 0
    with pytest.raises(ValueError, match="length"):
        roc.auroc([1, 2], [0, 1, 1])
    with pytest.raises(ValueError, match="labels"):
        roc.auroc([1, 2], [0, 2])
    with pytest.raises(ValueError, match="finite"):
        roc.auroc([np.nan, 2], [0, 1])


def test_privacy_reexports_the_shared_roc():
    import latentguard.privacy as privacy

    for name in ("auroc", "roc_curve", "tpr_at_fpr", "best_balanced_accuracy", "balanced_accuracy_at",
                 "membership_metrics", "MembershipMetrics"):
        assert getattr(privacy, name) is getattr(roc, name)


def test_poison_audit_auroc_is_the_shared_one():
    from latentguard.poison.audit import auroc as poison_auroc

    s, y = _data(3, ties=True)
    assert poison_auroc(s, y.astype(bool)) == roc.auroc(s, y)
    assert np.isnan(poison_auroc(s, np.ones(len(s), bool)))
