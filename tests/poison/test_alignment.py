"""Alignment Difficulty: blocked vs naive, sampled interval coverage, contributions, growth with k.

Margins measured (seeded; see the comments at each assertion).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentguard.poison.alignment import (
    alignment_difficulty,
    naive_alignment_difficulty,
    structure_row_sums,
    normalize_pairs,
)


def synthetic_pairs(k: int, *, n_concepts: int = 10, per_concept: int = 40, dim: int = 32, noise: float = 0.35,
                    poison_frac: float = 0.5, seed: int = 0):
    """Clustered image/text embeddings; the first k concepts get poison_frac of their images from concept c+5."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_concepts, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_concepts), per_concept)
    img_concept = labels.copy()
    poisoned = np.zeros(len(labels), bool)
    for a in range(k):
        idx = np.flatnonzero(labels == a)[: int(poison_frac * per_concept)]
        img_concept[idx] = (a + n_concepts // 2) % n_concepts
        poisoned[idx] = True
    u = centers[img_concept] + noise * rng.standard_normal((len(labels), dim)) / math.sqrt(dim)
    v = centers[labels] + noise * rng.standard_normal((len(labels), dim)) / math.sqrt(dim)
    return u, v, labels, poisoned


def test_blocked_equals_naive_float32_and_float64():
    rng = np.random.default_rng(1)
    u = rng.standard_normal((157, 24))
    v = u + 0.8 * rng.standard_normal((157, 24))
    ad, fea, stru = naive_alignment_difficulty(u, v)
    for dtype, bs in ((torch.float64, 16), (torch.float32, 16), (torch.float32, 50), (torch.float32, 1000)):
        r = alignment_difficulty(u, v, block_size=bs, dtype=dtype)
        assert abs(r.structure - stru) < 1e-6, (dtype, bs)
        assert abs(r.feature - fea) < 1e-6
        assert abs(r.ad - ad) < 1e-6
        # contributions split AD exactly over pairs
        assert abs(r.contributions.sum() - r.ad) < 1e-6
    r64 = alignment_difficulty(torch.from_numpy(u), torch.from_numpy(v), block_size=7, dtype=torch.float64)
    assert abs(r64.structure - stru) < 1e-12


def test_row_sums_match_dense():
    rng = np.random.default_rng(2)
    u, v = normalize_pairs(rng.standard_normal((60, 8)), rng.standard_normal((60, 8)), dtype=torch.float64)
    d = (u @ u.T - v @ v.T).abs()
    d.fill_diagonal_(0)
    assert torch.allclose(structure_row_sums(u, v, block_size=13), d.sum(1), atol=1e-12)


def test_inputs_not_mutated_and_scale_invariant():
    rng = np.random.default_rng(3)
    u = rng.standard_normal((30, 8)).astype(np.float32)
    v = rng.standard_normal((30, 8)).astype(np.float32)
    u0, v0 = u.copy(), v.copy()
    r1 = alignment_difficulty(u, v)
    r2 = alignment_difficulty(u * 7.0, v * 0.1)  # L2-normalised inside
    assert np.array_equal(u, u0) and np.array_equal(v, v0)
    assert abs(r1.ad - r2.ad) < 1e-6


def test_perfectly_aligned_set_has_zero_feature_term():
    rng = np.random.default_rng(4)
    u = rng.standard_normal((50, 16))
    r = alignment_difficulty(u, u.copy())
    assert r.feature == 0.0
    assert r.structure < 1e-6  # identical graphs: the structure term vanishes too
    assert np.all(r.similarity == 1.0)


def test_sampled_interval_covers_exact():
    u, v, _, _ = synthetic_pairs(3, per_concept=30)
    exact = alignment_difficulty(u, v)
    covered, estimates = 0, []
    trials = 40
    for seed in range(trials):
        r = alignment_difficulty(u, v, method="sampled", num_samples=3000, seed=seed)  # 10 partners per row
        assert r.samples_per_row == 10
        lo, hi = r.structure_ci
        covered += lo <= exact.structure <= hi
        estimates.append(r.structure)
        assert r.feature == exact.feature
    # 95% intervals: measured coverage 37/40 here (188/200 over seeds 0-199); P(< 34 of 40 at 94%) ~ 0.3%.
    assert covered >= 34, covered
    # unbiased: mean of 40 estimates within 4 standard errors of the mean
    se_mean = np.std(estimates, ddof=1) / math.sqrt(trials)
    assert abs(np.mean(estimates) - exact.structure) < 4 * se_mean


def test_sampled_iid_branch_covers_exact():
    u, v, _, _ = synthetic_pairs(2, per_concept=30)
    exact = alignment_difficulty(u, v)
    covered = 0
    for seed in range(30):
        r = alignment_difficulty(u, v, method="sampled", num_samples=400, seed=seed)  # fewer than 2n: i.i.d.
        assert r.row_structure is None and r.samples_per_row is None
        covered += r.structure_ci[0] <= exact.structure <= r.structure_ci[1]
    assert covered >= 25, covered  # measured 30/30


def test_ad_grows_with_poisoned_concepts():
    ads, feas, strus = [], [], []
    for k in (0, 1, 2, 4, 6):
        u, v, _, _ = synthetic_pairs(k)
        r = alignment_difficulty(u, v)
        ads.append(r.ad), feas.append(r.feature), strus.append(r.structure)
    # measured: AD 0.017, 0.062, 0.106, 0.195, 0.280 for k = 0,1,2,4,6 (steps >= 0.044); structure 0.085 -> 0.200
    assert all(b - a > 0.01 for a, b in zip(ads, ads[1:])), ads
    assert all(b > a for a, b in zip(strus, strus[1:])), strus


def test_ranking_finds_poisoned_pairs_and_concepts():
    u, v, labels, poisoned = synthetic_pairs(2)
    r = alignment_difficulty(u, v)
    top = r.ranking()[: poisoned.sum()]
    assert poisoned[top].mean() == 1.0
    rows = r.by_concept([f"c{c}" for c in labels])
    assert {rows[0]["concept"], rows[1]["concept"]} == {"c0", "c1"}
    assert abs(sum(x["share"] for x in rows) - 1.0) < 1e-9
    assert abs(r.pair_scores.mean() - r.ad) < 1e-9


@pytest.mark.parametrize("bad", [
    dict(alpha=1.5), dict(method="fast"), dict(block_size=0), dict(sim_scale=0.0),
])
def test_bad_parameters(bad):
    u = np.eye(4)
    with pytest.raises(ValueError):
        alignment_difficulty(u, u, **bad)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        alignment_difficulty(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="all-zero"):
        alignment_difficulty(np.zeros((3, 4)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        alignment_difficulty(np.full((3, 4), np.nan), np.ones((3, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        alignment_difficulty(np.ones((1, 4)), np.ones((1, 4)))
    with pytest.raises(ValueError, match="one label per pair"):
        alignment_difficulty(np.eye(3), np.eye(3)).by_concept(["a"])
