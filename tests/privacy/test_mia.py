"""Membership attacks on a trivially memorising toy, masking wiring, protocols and splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from latentguard.ops import roc
from latentguard.privacy import mia


class MemorisingUNet(torch.nn.Module):
    """The exact denoiser of the empirical distribution of ``members``: a perfect memoriser.

    ``E[z0 | z_t] = sum_i softmax_i(-|z_t - a x_i|^2 / 2 b^2) x_i`` and ``eps = (z_t - a E[z0|z_t]) / b``.
    """

    def __init__(self, members: torch.Tensor, abar: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("x", members.double())
        self.register_buffer("abar", abar.double())
        self.dummy = torch.nn.Parameter(torch.zeros(()))  # dtype probe

    def forward(self, z, t, encoder_hidden_states=None, return_dict=True):
        a = self.abar[t].sqrt().view(-1, 1)
        b = (1 - self.abar[t]).sqrt().view(-1, 1)
        zf = z.double().flatten(1)
        d2 = ((zf[:, None, :] - a[:, None] * self.x.flatten(1)[None]) ** 2).sum(-1)
        w = torch.softmax(-d2 / (2 * b**2), dim=1)
        x0 = w @ self.x.flatten(1)
        eps = ((zf - a * x0) / b).reshape(z.shape).to(z.dtype)
        return (eps,)


@pytest.fixture(scope="module")
def toy():
    sched = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          clip_sample=False, set_alpha_to_one=False)
    g = torch.Generator().manual_seed(0)
    members = torch.randn(40, 4, 4, 4, generator=g)
    nonmembers = torch.randn(40, 4, 4, 4, generator=g)
    unet = MemorisingUNet(members, sched.alphas_cumprod)
    z0 = torch.cat([members, nonmembers])
    labels = np.r_[np.ones(40), np.zeros(40)].astype(int)
    return unet, sched, z0, labels


def test_memorising_toy_members_score_higher(toy):
    unet, sched, z0, labels = toy
    cfg = mia.MIAConfig(timesteps=(10, 50, 100), batch_size=32)
    scorer = mia.ResidualScorer(unet, sched, cfg)
    powered = scorer.powered_residuals(z0, None)
    assert set(powered) == set(mia.ATTACKS)
    for a, v in powered.items():
        assert v.shape == (80, 3, 64)
    ms = mia.MembershipScores.build(labels, cfg.timesteps, powered)
    for a in mia.ATTACKS:
        s = ms.scores(a)
        au = max(roc.auroc(s[:, j], labels) for j in range(3))
        assert au > 0.9, (a, au)
        # members' statistic S is smaller on average at the best timestep
        j = int(np.argmax([roc.auroc(s[:, j], labels) for j in range(3)]))
        assert s[labels == 1, j].mean() > s[labels == 0, j].mean()


def test_residuals_batch_independent(toy):
    unet, sched, z0, _ = toy
    a = mia.ResidualScorer(unet, sched, mia.MIAConfig(timesteps=(10, 50), batch_size=7)).powered_residuals(z0[:20], None)
    b = mia.ResidualScorer(unet, sched, mia.MIAConfig(timesteps=(10, 50), batch_size=20)).powered_residuals(z0[:20], None)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-6)


def test_secmi_inverse_is_exact_for_consistent_model():
    """If eps_theta ignores z and t (a constant), DDIM inversion then denoising is exact: SecMI residual 0."""

    class Const(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.e = torch.nn.Parameter(torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(0)))

        def forward(self, z, t, encoder_hidden_states=None, return_dict=True):
            return (self.e.expand_as(z),)

    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    r = mia.ResidualScorer(Const(), sched, mia.MIAConfig(attacks=("secmi", "sima"), timesteps=(0, 20)))
    out = r.residuals(torch.randn(3, 4, 2, 2), None)
    assert out["secmi"].abs().max() < 1e-5
    assert out["sima"].shape == (2, 3, 16)


def test_pullback_mask_drops_noise_dims():
    """Residual dims with low contribution carry only noise: the pullback mask must raise AUROC, random not."""
    rng = np.random.default_rng(0)
    n, d = 200, 20
    labels = np.r_[np.ones(n // 2), np.zeros(n // 2)].astype(int)
    r = rng.normal(size=(n, 1, d))
    r[:, 0, 12:] *= np.where(labels == 1, 0.7, 1.0)[:, None]  # signal in dims 12..19
    r[:, 0, :12] *= 5.0  # loud noise in dims 0..11
    contrib = np.tile(np.arange(d, dtype=float), (n, 1))  # dims 0..7 lowest -> dropped at 40%
    contrib[:, :12] -= 100
    ms = mia.MembershipScores.build(labels, (10,), {"loss": r**2}, contrib=contrib, drop=0.6)
    assert ms.masks["pullback"].sum(1).tolist() == [8] * n and not ms.masks["pullback"][:, :12].any()
    au = {mk: roc.auroc(ms.scores("loss", mk)[:, 0], labels) for mk in mia.MASKS}
    assert au["pullback"] > au["none"] + 0.1
    assert au["pullback"] > au["random"] + 0.1


def test_protocols_and_splits():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(100), np.zeros(100)].astype(int)
    s = rng.normal(size=(200, 3))
    s[:, 1] += 1.0 * labels  # timestep index 1 is informative
    paper = mia.paper_protocol(s, labels, (10, 50, 100))
    assert paper["timestep"] == 50 and paper["auroc"] > 0.7
    cal, ev = mia.stratified_split(labels, 0.5, seed=0)
    assert len(set(cal) & set(ev)) == 0 and len(cal) + len(ev) == 200 and labels[cal].sum() == 50
    honest = mia.honest_protocol(s, labels, (10, 50, 100), cal, ev)
    assert honest["timestep"] == 50 and honest["n_evaluation"] == 100
    # the honest figures use the evaluation labels only for scoring: permuting them changes nothing upstream
    lab2 = labels.copy()
    lab2[ev] = rng.permutation(lab2[ev])
    h2 = mia.honest_protocol(s, lab2, (10, 50, 100), cal, ev)
    assert h2["timestep"] == honest["timestep"] and h2["threshold"] == honest["threshold"]
    assert abs(h2["auroc"] - 0.5) < 0.15
    lv = rng.normal(size=200)
    q = mia.distortion_split(lv, "quartiles")
    assert [len(i) for _, i in q] == [50, 50, 50, 50]
    assert lv[q[0][1]].max() <= lv[q[3][1]].min()
    m = mia.distortion_split(lv, "median")
    assert len(m[0][1]) == 100
    with pytest.raises(ValueError, match="calib_fraction"):
        mia.stratified_split(labels, 1.0)


def test_evaluate_summary_shape(toy):
    unet, sched, z0, labels = toy
    cfg = mia.MIAConfig(attacks=("loss", "sima"), timesteps=(10, 50))
    powered = mia.ResidualScorer(unet, sched, cfg).powered_residuals(z0, None)
    contrib = np.random.default_rng(0).normal(size=(80, 64))
    ms = mia.MembershipScores.build(labels, cfg.timesteps, powered, contrib=contrib,
                                    log_volume=np.random.default_rng(1).normal(size=80))
    summ = mia.evaluate(ms)
    for a in ("loss", "sima"):
        for mk in mia.MASKS:
            for proto in ("paper", "honest"):
                r = summ["attacks"][a][mk][proto]
                assert {"auroc", "asr", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "timestep"} <= set(r)
    assert set(summ["distortion"]["quartiles"]) == {"Q1", "Q2", "Q3", "Q4"}


def test_config_validation():
    with pytest.raises(ValueError, match="attacks"):
        mia.MIAConfig(attacks=("nope",))
    with pytest.raises(ValueError, match="secmi_interval"):
        mia.MIAConfig(timesteps=(15,), secmi_interval=10)
    with pytest.raises(ValueError, match="increasing"):
        mia.MIAConfig(timesteps=(50, 10))
    with pytest.raises(ValueError, match="powers"):
        mia.MIAConfig(powers={"loss": -1})


def test_items_roundtrip_reproduces_summary(toy, tmp_path):
    from latentguard.privacy import audit

    unet, sched, z0, labels = toy
    cfg = mia.MIAConfig(attacks=("pia", "secmi"), timesteps=(10, 50))
    powered = mia.ResidualScorer(unet, sched, cfg).powered_residuals(z0, None)
    ms = mia.MembershipScores.build(labels, cfg.timesteps, powered, contrib=np.random.default_rng(0).normal(size=(80, 64)),
                                    log_volume=np.random.default_rng(1).normal(size=80))
    summ = mia.evaluate(ms)
    audit.write_membership_report(ms, [f"s{i}" for i in range(80)], summ, tmp_path, "toy")
    back = mia.evaluate(mia.ScoreTable.from_items(tmp_path / "items.jsonl"))
    for a in ("pia", "secmi"):
        for mk in mia.MASKS:
            for proto in ("paper", "honest"):
                assert back["attacks"][a][mk][proto]["auroc"] == pytest.approx(summ["attacks"][a][mk][proto]["auroc"])
    assert back["distortion"]["quartiles"]["Q2"]["per_timestep"]["pia/pullback"] == pytest.approx(
        summ["distortion"]["quartiles"]["Q2"]["per_timestep"]["pia/pullback"])
    assert (tmp_path / "index.html").read_text().count("<tr>") > 12

