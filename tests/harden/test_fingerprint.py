"""Golden values of a tiny SRL-VAE run, so that numeric drift of the trainer is caught, not only threshold breaks.

Pinned on the code before the config / trainer / artifacts split (issue 15); the split was checked bit-identical
on this machine (sha256 of the state dicts, histories, probe, saved safetensors, logs, resumed and accelerate
runs). The tolerances leave room for other CPUs' float rounding only: any change of the recipe, of the order of
the random draws or of the loss moves these values by far more.
"""

from __future__ import annotations

import pytest
import torch

from latentguard.harden import SRLConfig, harden

TINY = dict(steps=4, batch_size=2, crop=16, attack_steps=2, warmup_steps=1, checkpoint_every=2, log_every=1,
            probe_size=2, probe_attack_steps=1, scales=(1.0, 0.5), clean_ratio=0.34, perceptual="grad-ssim")

LOSSES = [0.1349727362394333, 0.1568741351366043, 0.16198299825191498, 0.1614261120557785]
CLEAN = [False, False, True, False]
ENCODER_CHANGE_L1 = 2.5673660128770734
PROBE = {"original_clean_psnr": 13.176048278808594, "original_adv_psnr": 13.06429672241211,
         "hardened_clean_psnr": 13.211262702941895, "hardened_adv_psnr": 13.097841262817383}


def test_tiny_run_reproduces_its_pinned_values(tiny_vae, make_crops):
    before = {k: v.clone() for k, v in tiny_vae.model.state_dict().items()}
    res = harden(tiny_vae, make_crops(), SRLConfig(**TINY), progress=False)
    assert [r["clean"] for r in res.history] == CLEAN
    assert [r["loss"] for r in res.history] == pytest.approx(LOSSES, rel=1e-5)
    after = res.vae.model.state_dict()
    change = sum(float((after[k].double() - before[k].double()).abs().sum())
                 for k in after if k.startswith(("encoder.", "quant_conv.")))
    assert change == pytest.approx(ENCODER_CHANGE_L1, rel=1e-4)
    assert res.probe == pytest.approx(PROBE, rel=1e-5)
    assert all(torch.equal(after[k], before[k]) for k in after if k.startswith(("decoder.", "post_quant_conv.")))
