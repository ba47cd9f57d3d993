"""ops.pgd: budgets hold, masks hold, starts are seeded, decays end where they say; the loop is SRL's and poison's."""

from __future__ import annotations

import pytest
import torch

from latentguard.ops import pgd


class _FakeVAE:
    """A differentiable stand-in with the LatentVAE surface the attacks use (encode -> (mean, logvar), decode)."""

    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model = torch.nn.ModuleDict({"enc": torch.nn.Conv2d(3, 8, 4, stride=4),
                                          "dec": torch.nn.ConvTranspose2d(4, 3, 4, stride=4)}).eval()

    def encode(self, x):
        h = self.model["enc"](x * 2 - 1)
        return h[:, :4], h[:, 4:].clamp(-6, 2)

    def decode(self, z):
        return (torch.tanh(self.model["dec"](z)) + 1) / 2


def _x(seed=0, shape=(2, 3, 16, 16)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("norm", pgd.NORMS)
def test_project_budget_range_mask(norm):
    x = _x()
    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    mask[..., :8, :] = True
    p = pgd.project(x, d, eps=0.1, norm=norm, mask=mask.expand_as(x))
    if norm == "linf":
        assert float(p.abs().max()) <= 0.1 + 1e-7
    else:
        assert float(pgd.per_image_norm(p).max()) <= 0.1 + 1e-6
    assert float((x + p).min()) >= -1e-7 and float((x + p).max()) <= 1 + 1e-7
    assert torch.equal(p[..., 8:, :], torch.zeros_like(p[..., 8:, :]))
    with pytest.raises(ValueError, match="norm"):
        pgd.project(x, d, eps=0.1, norm="l1")


@pytest.mark.parametrize("norm", pgd.NORMS)
def test_init_delta_seeded_and_in_budget(norm):
    x = _x()
    assert torch.equal(pgd.init_delta(x, eps=0.1, norm=norm), torch.zeros_like(x))
    a = pgd.init_delta(x, eps=0.1, norm=norm, random_start=True, generator=torch.Generator().manual_seed(5))
    b = pgd.init_delta(x, eps=0.1, norm=norm, random_start=True, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.abs().sum() > 0
    assert torch.equal(a, pgd.project(x, a, eps=0.1, norm=norm))


def test_step_size_decays():
    assert pgd.step_size(0.1, 5, 10) == 0.1
    assert pgd.step_size(0.1, 0, 10, "linear") == pytest.approx(0.1)
    assert pgd.step_size(0.1, 10, 10, "linear", 0.01) == pytest.approx(0.001)
    assert pgd.step_size(0.1, 10, 10, "cosine", 0.01) == pytest.approx(0.001)
    assert pgd.step_size(0.1, 0, 1, "cosine") == 0.1
    with pytest.raises(ValueError, match="step_decay"):
        pgd.step_size(0.1, 0, 10, "exp")


def test_pgd_step_directions():
    x = torch.full((1, 3, 4, 4), 0.5)
    g = torch.ones_like(x)
    up = pgd.pgd_step(x, torch.zeros_like(x), g, alpha=0.01, eps=0.05)
    down = pgd.pgd_step(x, torch.zeros_like(x), g, alpha=0.01, eps=0.05, maximize=False)
    assert torch.allclose(up, torch.full_like(x, 0.01)) and torch.allclose(down, torch.full_like(x, -0.01))


def test_pgd_is_srl_reconstruction_attack():
    """harden's inner attack runs on ops.pgd: number for number the loop it had (random start U(-eps, eps), sign
    ascent, l_inf clip, [0,1] clamp), replayed here."""
    from latentguard.harden.attack import reconstruction_attack, reconstruction_objective

    vae = _FakeVAE()
    x = _x(3)
    for rs in (True, False):
        ref = reconstruction_attack(vae, x, eps=8 / 255, steps=4, alpha=2 / 255, random_start=rs,
                                    generator=torch.Generator().manual_seed(7))
        d = pgd.pgd(lambda xa: reconstruction_objective(vae, xa, x, "none", 0.0).sum(), x, eps=8 / 255,
                    alpha=2 / 255, steps=4, random_start=rs, generator=torch.Generator().manual_seed(7))
        assert torch.equal(x + d, ref)
        # the loop harden/attack.py had before it called ops.pgd
        g = torch.Generator().manual_seed(7)
        old = (torch.rand(x.shape, generator=g) * 2 - 1) * (8 / 255) if rs else torch.zeros_like(x)
        old = ((x + old).clamp(0, 1) - x).detach()
        for _ in range(4):
            old.requires_grad_(True)
            (grad,) = torch.autograd.grad(reconstruction_objective(vae, x + old, x, "none", 0.0).sum(), old)
            with torch.no_grad():
                old = (old + 2 / 255 * grad.sign()).clamp(-8 / 255, 8 / 255)
                old = (x + old).clamp(0, 1) - x
        assert torch.equal(ref, (x + old).detach())


def test_poison_latent_shift_is_the_old_loop():
    from latentguard.poison.poisons import NightshadeConfig, latent_shift

    vae = _FakeVAE(1)
    x, anchors = _x(4), _x(5)
    cfg = NightshadeConfig(eps=8 / 255, steps=5, batch_size=2)
    xa, before, after = latent_shift(vae, x, anchors, cfg)
    # the in-place loop latent_shift had before it called ops.pgd
    with torch.no_grad():
        target = vae.encode(anchors)[0]
    delta = torch.zeros_like(x, requires_grad=True)
    for _ in range(cfg.steps):
        loss = (vae.encode((x + delta).clamp(0, 1))[0] - target).pow(2).flatten(1).sum(1).sum()
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta -= cfg.alpha * grad.sign()
            delta.clamp_(-cfg.eps, cfg.eps)
            delta.copy_((x + delta).clamp(0, 1) - x)
    assert torch.equal(xa, (x + delta).clamp(0, 1).detach())
    assert bool((after < before).all())
