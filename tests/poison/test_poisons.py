"""Poisons: dirty-label / concept-swap bookkeeping and the optimised latent poison's budget and effect."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentguard.poison.dataset import PairSet
from latentguard.poison.poisons import NightshadeConfig, concept_swap, dirty_label, latent_shift, nightshade, poison_plan


def _pairs(per=10, concepts=("cat", "dog", "bird", "fish"), size=16):
    g = torch.Generator().manual_seed(0)
    con = [c for c in concepts for _ in range(per)]
    x = (torch.rand(len(con), 3, size, size, generator=g) * 255).round() / 255  # 8-bit, as read from PNG
    caps = [f"a photo of a {c}" if i % 2 else f"a {c}" for i, c in enumerate(con)]
    return PairSet.from_lists(x, caps, con, extra={"id": list(range(len(con)))})


def test_dirty_label_relabel():
    ps = _pairs()
    x0 = ps.images.clone()
    out = dirty_label(ps, "cat", "dog", fraction=0.5, seed=1)
    assert out.poisoned.sum() == 5 and not ps.poisoned.any()
    idx = np.flatnonzero(out.poisoned)
    assert all(ps.source_concepts[i] == "dog" for i in idx)
    assert all(out.concepts[i] == "cat" and out.captions[i] in {"a cat", "a photo of a cat"} for i in idx)
    assert all(out.source_concepts[i] == "dog" for i in idx)
    assert len(out) == len(ps) and torch.equal(ps.images, x0)
    # untouched pairs identical
    clean = ~out.poisoned
    assert [c for c, m in zip(out.captions, clean) if m] == [c for c, m in zip(ps.captions, clean) if m]


def test_dirty_label_add():
    ps = _pairs()
    out = dirty_label(ps, "cat", "dog", n_poison=3, mode="add")
    assert len(out) == len(ps) + 3 and out.poisoned[-3:].all() and not out.poisoned[:-3].any()
    assert out.extra["id"][-3:] == tuple(ps.extra["id"][i] for i in out.extra["id"][-3:])
    assert torch.equal(out.images[-1], ps.images[out.extra["id"][-1]])


def test_concept_swap_cycles():
    ps = _pairs()
    out = concept_swap(ps, ["cat", "dog", "bird"], fraction=0.3)
    idx = np.flatnonzero(out.poisoned)
    assert len(idx) == 9
    pairs = {(out.source_concepts[i], out.concepts[i]) for i in idx}
    assert pairs == {("cat", "dog"), ("dog", "bird"), ("bird", "cat")}
    with pytest.raises(ValueError, match="at least 2"):
        concept_swap(ps, ["cat"], fraction=0.3)


@pytest.mark.parametrize("kw,match", [
    (dict(fraction=0.5, n_poison=2), "exactly one"),
    (dict(fraction=1.5), "fraction"),
    (dict(n_poison=50), "only 10 candidate"),
])
def test_dirty_label_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        dirty_label(_pairs(), "cat", "dog", **kw)


def test_unknown_concept():
    with pytest.raises(ValueError, match="no clean pairs"):
        dirty_label(_pairs(), "cat", "zebra", n_poison=1)


def test_poison_plan():
    plan = poison_plan([f"c{i}" for i in range(10)], 4, seed=0)
    assert len(plan) == 4
    targets, sources = {t for t, _ in plan}, {s for _, s in plan}
    assert not targets & sources
    assert poison_plan([f"c{i}" for i in range(10)], 0) == []


def test_nightshade_config_validation():
    with pytest.raises(ValueError, match="eps"):
        NightshadeConfig(eps=0)
    with pytest.raises(ValueError, match="steps"):
        NightshadeConfig(steps=0)


def test_latent_shift_budget_and_effect(tiny_vae_factory):
    vae = tiny_vae_factory(0, train=True)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 16, 16, generator=g)
    anchors = torch.rand(4, 3, 16, 16, generator=g)
    x0 = x.clone()
    cfg = NightshadeConfig(eps=8 / 255, steps=20)
    xa, before, after = latent_shift(vae, x, anchors, cfg)
    assert torch.equal(x, x0)
    assert (xa - x).abs().max() <= cfg.eps + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    # measured on this tiny random VAE: distance falls by 15-25%; assert at least 5% per image
    assert (after < 0.95 * before).all(), (before, after)
    assert vae.model.training  # state restored
    assert all(p.requires_grad for p in vae.model.parameters())


def test_nightshade_pairs(tiny_vae_factory):
    vae = tiny_vae_factory(0, train=True)
    ps = _pairs()
    out, stats = nightshade(ps, "cat", "dog", vae, n_poison=3, cfg=NightshadeConfig(steps=5))
    idx = np.flatnonzero(out.poisoned)
    assert len(idx) == 3 and all(ps.source_concepts[i] == "cat" for i in idx)
    assert out.captions == ps.captions  # captions kept
    assert all(out.extra["latent_target"][i] == "dog" for i in idx)
    assert (out.images - ps.images).abs().max() <= 8 / 255 + 1e-6
    assert torch.equal(out.images[~torch.from_numpy(out.poisoned)], ps.images[~torch.from_numpy(out.poisoned)])
    assert torch.allclose(out.images[idx] * 255, (out.images[idx] * 255).round(), atol=1e-4)  # 8-bit
    assert len(stats["dist_after"]) == 3


def test_ad_grows_with_k_on_fashion_with_zoo_embed():
    """The paper's claim on the bundled data: AD of dirty-label-poisoned Fashion-MNIST sets grows with k, with
    zoo:embed's own similarity calibration (not the paper's CLIP constants, which saturate here), and both
    terms move: D_fea (mismatched pairs) and D_stru (the distorted text graph)."""
    from latentguard.poison.alignment import alignment_difficulty
    from latentguard.poison.dataset import fashion_pairs
    from latentguard.poison.embed import embed_pairs, load_pair_embedder, similarity_calibration
    from latentguard.testing import require_data, require_zoo
    from latentguard.io.datasets import FASHION_CLASSES, fashion_mnist

    require_zoo("embed")
    require_data(fashion_mnist, "test")
    emb = load_pair_embedder("zoo:embed")
    cal = similarity_calibration("zoo:embed")
    assert "ad_calibration.json" in cal.source
    x, caps, con, _, _ = fashion_pairs(300, split="test", seed=0)
    clean = PairSet.from_lists(x, caps, con)
    ads, feas, strus = [], [], []
    for k in (0, 1, 2, 4):
        ps = clean
        for l, (a, b) in enumerate(poison_plan(list(FASHION_CLASSES), k)):
            ps = dirty_label(ps, a, b, fraction=0.5, seed=l)
        r = alignment_difficulty(*embed_pairs(emb, ps.images, list(ps.captions)), sim_offset=cal.offset,
                                 sim_scale=cal.scale)
        ads.append(r.ad)
        feas.append(r.feature)
        strus.append(r.structure)
        raw = (r.cosine - cal.offset) * cal.scale
        # measured: clipped at 0 for 0.000-0.020 of the pairs, at 1 for 0.053 (paper constants: up to 0.187 and 0.98)
        assert (raw <= 0).mean() < 0.1 and (raw >= 1).mean() < 0.1, (k, (raw <= 0).mean(), (raw >= 1).mean())
    # measured (calibrated): AD 0.082, 0.117, 0.162, 0.214; D_fea 0.041, 0.081, 0.129, 0.191;
    # D_stru 0.245, 0.262, 0.293, 0.307 (steps 0.017, 0.031, 0.014)
    assert all(b - a > 0.02 for a, b in zip(ads, ads[1:])), ads
    assert all(b - a > 0.02 for a, b in zip(feas, feas[1:])), feas
    assert all(b - a > 0.008 for a, b in zip(strus, strus[1:])), strus
    assert strus[-1] - strus[0] > 0.04, strus
