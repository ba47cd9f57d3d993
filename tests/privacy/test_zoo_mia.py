"""Behaviour on the real memorising target zoo:t2i-members (skipped when the zoo is not built)."""

from __future__ import annotations

from latentguard.ops import roc
from latentguard.privacy import mia
from latentguard.testing import require_zoo


def test_zoo_members_loss_attack_beats_chance():
    """On the real zoo:t2i-members, the loss and SimA attacks separate 30 members from 30 non-members
    (measured on 200+200: AUROC 0.992 / 0.998 at t=50; asserted > 0.85 on this small subset)."""
    require_zoo("t2i-members", "vae-a")
    from latentguard.models import load_pipeline
    from latentguard.privacy import audit

    pipe = load_pipeline("zoo:t2i-members", kind="text2img")
    mem, non, _ = audit.zoo_split_sets("zoo:t2i-members", 30, 30, seed=0)
    cfg = mia.MIAConfig(attacks=("loss", "sima"), timesteps=(50,), batch_size=60)
    ms, _ = audit.compute_membership_scores(pipe, mem, non, cfg, None, progress=False)
    for a in ("loss", "sima"):
        au = roc.auroc(ms.scores(a)[:, 0], ms.labels)
        assert au > 0.85, (a, au)


def test_zoo_members_ft_is_memorised_realistically():
    """zoo:t2i-members-ft, the masking study's target: the plain loss attack on all 500 members and 500
    non-members under the honest protocol is well above chance and far from saturated (measured: AUROC 0.734
    at t=50; zoo:t2i-members: 0.999). Asserted inside [0.65, 0.95], as the fidelity issue asks."""
    require_zoo("t2i-members-ft", "vae-a")
    from latentguard.models import load_pipeline
    from latentguard.privacy import audit

    pipe = load_pipeline("zoo:t2i-members-ft", kind="text2img")
    mem, non, _ = audit.zoo_split_sets("zoo:t2i-members-ft", None, None, seed=0)
    assert len(mem.images) == len(non.images) == 500
    cfg = mia.MIAConfig(attacks=("loss",), timesteps=(10, 50, 100, 200, 300), batch_size=100)
    ms, _ = audit.compute_membership_scores(pipe, mem, non, cfg, None, progress=False)
    honest = mia.evaluate(ms)["attacks"]["loss"]["none"]["honest"]
    assert 0.65 <= honest["auroc"] <= 0.95, honest
