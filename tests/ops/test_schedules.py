"""ops.schedules: the warm-up cosine is the libraries' exactly; the zoo's schedule and EMA are not, and stay as they were."""

from __future__ import annotations

import math

import pytest
import torch

from latentguard.ops.schedules import ema_update_, set_lr, warmup_cosine, zoo_cosine_lr


def _lambda(make, **kw):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return make(opt, **kw).lr_lambdas[0]


@pytest.mark.parametrize("warmup,total", [(50, 1000), (0, 10), (7, 13)])
def test_warmup_cosine_is_diffusers_and_transformers(warmup, total):
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup

    d = _lambda(get_cosine_schedule_with_warmup, num_warmup_steps=warmup, num_training_steps=total)
    assert all(warmup_cosine(s, warmup=warmup, total=total) == d(s) for s in range(total + 1))
    for f in (0.1, 0.02, 0.3):
        t = _lambda(get_cosine_with_min_lr_schedule_with_warmup, num_warmup_steps=warmup, num_training_steps=total,
                    min_lr_rate=f)
        assert all(warmup_cosine(s, warmup=warmup, total=total, min_ratio=f) == t(s) for s in range(total + 1))


def test_zoo_schedule_is_the_recipes_one():
    """The formula zoo/train/recipes.py used inline before (kept: a rebuild must reproduce the bundled weights)."""
    def old(base, step, total, warmup=200):
        lr = base * (step + 1) / warmup if step < warmup else \
            base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
        return max(lr, base * 0.02)

    for total, warmup in ((5000, 200), (1100, 50)):
        assert all(zoo_cosine_lr(s, 3e-4, total, warmup) == old(3e-4, s, total, warmup) for s in range(1, total + 1))
    assert zoo_cosine_lr(5000, 3e-4, 5000) == 3e-4 * 0.02  # floored, where diffusers' schedule reaches 0
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    set_lr(opt, 0.5)
    assert opt.param_groups[0]["lr"] == 0.5


def test_ema_is_constant_decay_not_emamodel():
    from diffusers.training_utils import EMAModel

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8))
    ema = {k: v.detach().clone() for k, v in m.state_dict().items()}
    start = {k: v.clone() for k, v in ema.items()}
    lib = EMAModel(m.parameters(), decay=0.999)
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        m(torch.randn(16, 8)).pow(2).mean().backward()
        opt.step()
        ref = {k: v.clone() for k, v in ema.items()}
        ema_update_(ema, m.state_dict(), 0.999)
        for k, v in m.state_dict().items():
            if v.dtype.is_floating_point:
                assert torch.equal(ema[k], ref[k].mul(0.999).add(v, alpha=1 - 0.999))
            else:
                assert torch.equal(ema[k], start[k])  # num_batches_tracked: left alone
        lib.step(m.parameters())
    # EMAModel warms its decay up ((1 + t) / (10 + t)): it has followed the weights most of the way, the
    # constant-decay average has hardly left its start
    moved_lib = (lib.shadow_params[0] - start["0.weight"]).norm()
    assert (ema["0.weight"] - lib.shadow_params[0]).norm() > 0.8 * moved_lib
