"""Engine mechanics on a tiny random VAE: budgets, range, input safety, determinism, masks, model state,
padding, tiles, ensembles, EOT, validation. (Behaviour on real models: test_zoo_*.py.)"""

from __future__ import annotations

import pytest
import torch

from latentguard.ops.pgd import step_size
from latentguard.protect import available, get, kl_standard_normal, pca_loss, tile_grid
from latentguard.protect.pid import pid_loss

ENCODER_METHODS = ["pca+", "pca-", "pca-adaptive", "photoguard-enc", "pid"]
ALL_METHODS = ENCODER_METHODS + ["photoguard-diff", "advdm", "mist", "sds+", "sds-"]


def test_registry_lists_every_method():
    assert set(available()) == set(ALL_METHODS) | {"none", "random-noise", "fast"}  # + the reference rows, fast
    with pytest.raises(ValueError, match="unknown protection method 'nope'"):
        get("nope", vae=None)


# PCA's two objectives (official README): 1 = the edit stays close to the input, 2 = it moves away from the clean edit
EXPECTED_OBJECTIVE = {"pca+": 1, "pca-": 2, "pca-adaptive": 2, "photoguard-enc": 2, "photoguard-diff": 2,
                      "advdm": 2, "mist": 2, "sds+": 2, "sds-": 2, "pid": 2,
                      "fast": 1}  # fast: its protector's base method (zoo:protector-a: pca+)
CONTROLS = ("none", "random-noise")  # no protection and random noise: no objective


def test_every_registered_method_declares_its_objective():
    import inspect

    from latentguard.protect import get_class
    from latentguard.protect.engine import Protection

    assert Protection.edit_objective is None
    for name in available():
        cls = get_class(name)
        if name in CONTROLS:
            assert cls.edit_objective is None, name
            continue
        assert cls.edit_objective in (1, 2), (name, cls.edit_objective)
        assert cls.edit_objective == EXPECTED_OBJECTIVE[name], name
        assert "Objective" in (inspect.getmodule(cls).__doc__ or ""), f"{name}: the module docstring cites the paper"


@pytest.mark.parametrize("name", ENCODER_METHODS)
def test_linf_budget_range_and_input_untouched(name, tiny_vae, images16):
    x = images16.clone()
    eps = 8 / 255
    out = get(name, vae=tiny_vae, eps=eps, alpha=2 / 255, steps=6, random_start=True).protect(images16)
    assert torch.equal(images16, x), "input was modified"
    d = (out.images - x).abs()
    assert float(d.max()) <= eps + 1e-6
    assert float(d.max()) > eps / 2, "the attack did not use its budget"
    assert out.images.min() >= 0 and out.images.max() <= 1
    assert out.images.shape == x.shape and out.images.dtype == x.dtype
    assert len(out.records) == 2
    r = out.records[0]
    assert abs(r.linf - float(d[0].max())) < 1e-6 and r.seconds > 0 and r.psnr > 20


def test_l2_budget(tiny_vae, images16):
    eps = 0.5
    out = get("pca+", vae=tiny_vae, norm="l2", eps=eps, alpha=0.2, steps=6).protect(images16)
    norms = (out.images - images16).flatten(1).norm(dim=1)
    assert (norms <= eps + 1e-5).all() and (norms > 0.25).all()


def test_same_seed_identical_other_seed_differs(tiny_vae, images16):
    p = get("pca+", vae=tiny_vae, steps=4, random_start=True, transforms="noise,blur", seed=3)
    a, b = p(images16), p(images16)
    assert torch.equal(a, b)
    c = p.replace(seed=4)(images16)
    assert not torch.equal(a, c)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(p(images16, generator=g1), p(images16, generator=g2))


def test_mask_keeps_outside_pixels_bit_identical(tiny_vae, images16):
    mask = torch.zeros(16, 16)
    mask[4:12, 2:10] = 1
    out = get("pca+", vae=tiny_vae, steps=4, random_start=True).protect(images16, mask=mask).images
    outside = (mask == 0).expand_as(images16)
    assert torch.equal(out[outside], images16[outside])
    assert (out[~outside] != images16[~outside]).float().mean() > 0.5
    with pytest.raises(ValueError, match="mask"):
        get("pca+", vae=tiny_vae, steps=1)(images16, mask=torch.ones(8, 8))


def test_model_state_and_requires_grad_restored(tiny_vae, images16):
    model = tiny_vae.model
    model.train()
    model.decoder.eval()
    flags = {n: (i % 3 != 0) for i, (n, _) in enumerate(model.named_parameters())}
    for n, p in model.named_parameters():
        p.requires_grad_(flags[n])
        p.grad = None
    modes = {n: m.training for n, m in model.named_modules()}
    get("pca+", vae=tiny_vae, steps=2)(images16)
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters()), "the attack accumulated parameter gradients"
    model.eval()
    model.requires_grad_(True)


def test_odd_sizes_are_padded_and_cropped_back(tiny_vae):
    x = torch.rand(1, 3, 17, 23, generator=torch.Generator().manual_seed(1))
    out = get("pca+", vae=tiny_vae, steps=3).protect(x)
    assert out.images.shape == x.shape
    assert float((out.images - x).abs().max()) <= 16 / 255 + 1e-6
    assert out.records[0].loss_after > out.records[0].loss_before


def test_tile_grid_covers_image_with_aligned_tiles():
    tiles = tile_grid(100, 60, tile=32, overlap=8, multiple=4)
    cover = torch.zeros(100, 60)
    for y0, y1, x0, x1 in tiles:
        assert (y1 - y0) == 32 and (x1 - x0) == 32 and y0 % 4 == 0 and x0 % 4 == 0
        cover[y0:y1, x0:x1] += 1
    assert (cover >= 1).all()
    assert tile_grid(30, 30, tile=32, overlap=8) == [(0, 30, 0, 30)]
    assert tile_grid(300, 300, tile=0, overlap=0) == [(0, 300, 0, 300)]


def test_tiled_attack_respects_budget_and_improves(tiny_vae):
    x = torch.rand(1, 3, 40, 24, generator=torch.Generator().manual_seed(2))
    out = get("pca+", vae=tiny_vae, steps=3, tile_size=16, tile_overlap=4).protect(x)
    assert out.images.shape == x.shape
    assert float((out.images - x).abs().max()) <= 16 / 255 + 1e-6
    assert out.records[0].loss_after > out.records[0].loss_before


def test_ensemble_loss_is_the_mean(tiny_vae, tiny_vae_b, images16):
    la = get("pca+", vae=tiny_vae, steps=0).protect(images16).records[0].loss_before
    lb = get("pca+", vae=tiny_vae_b, steps=0).protect(images16).records[0].loss_before
    ens = get("pca+", vae=[tiny_vae, tiny_vae_b], steps=2).protect(images16)
    assert ens.records[0].loss_before == pytest.approx((la + lb) / 2, rel=1e-5)
    assert ens.records[0].loss_after > ens.records[0].loss_before


def test_eot_transforms_run_within_budget(tiny_vae, images16):
    p = get("pca+", vae=tiny_vae, steps=3, transforms="jpeg:50-90,resize:0.5-0.9,blur,noise,identity", eot_samples=2)
    assert len(p.transforms) == 5
    out = p.protect(images16)
    assert float((out.images - images16).abs().max()) <= 16 / 255 + 1e-6


def _alpha_at(p, t):  # the step the engine takes at 0-based step t (ops.pgd.step_size on the protection's fields)
    return step_size(p.alpha, t, p.steps, p.step_decay, p.decay_floor)


def test_step_decay_schedules(tiny_vae):
    p = get("pca+", vae=tiny_vae, steps=10, step_decay="linear", decay_floor=0.01)
    assert _alpha_at(p, 0) == pytest.approx(p.alpha)
    assert _alpha_at(p, 9) == pytest.approx(p.alpha - (p.alpha - p.alpha / 100) * 0.9)
    c = p.replace(step_decay="cosine")
    assert _alpha_at(c, 0) == pytest.approx(p.alpha) and _alpha_at(c, 9) < 0.05 * p.alpha


def test_pca_loss_matches_kl_to_n0v():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(3, 4, 5, 5, generator=g), torch.randn(3, 4, 5, 5, generator=g) - 2
    assert torch.allclose(pca_loss(mean, logvar, 1.0), kl_standard_normal(mean, logvar), rtol=1e-5)
    v = 0.3
    q = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.full_like(mean, v**0.5))
    kl = torch.distributions.kl_divergence(q, p).flatten(1).sum(1)
    d = mean[0].numel()
    assert torch.allclose(pca_loss(mean, logvar, v), kl - 0.5 * d * torch.log(torch.tensor(v)), rtol=1e-4)


def test_pid_kl_matches_torch():
    g = torch.Generator().manual_seed(1)
    m, lv, m0, lv0 = (torch.randn(2, 4, 3, 3, generator=g) for _ in range(4))
    q0 = torch.distributions.Normal(m0, torch.exp(0.5 * lv0))
    q = torch.distributions.Normal(m, torch.exp(0.5 * lv))
    ref = torch.distributions.kl_divergence(q0, q).flatten(1).mean(1)
    assert torch.allclose(pid_loss(m, lv, m0, lv0, "KL"), ref, rtol=1e-4)
    assert torch.allclose(pid_loss(m0, lv0, m0, lv0, "add-log"), torch.zeros(2))


def test_source_preset(tiny_vae):
    p = get("photoguard-enc", vae=tiny_vae, preset="source")
    assert p.eps == pytest.approx(7.65 / 255) and p.alpha == pytest.approx(2.55 / 255) and p.random_start
    assert get("pca+", vae=tiny_vae, preset="source", steps=3).steps == 3
    assert get("pid", vae=tiny_vae, preset="source").eps == pytest.approx(12.75 / 255)


@pytest.mark.parametrize("name,kwargs,param", [
    ("pca+", {"eps": 0}, "eps"),
    ("pca+", {"eps": 1.5}, "eps"),
    ("pca+", {"eps": float("nan")}, "eps"),
    ("pca+", {"alpha": -1.0}, "alpha"),
    ("pca+", {"steps": -1}, "steps"),
    ("pca+", {"steps": 2.5}, "steps"),
    ("pca+", {"norm": "l3"}, "norm"),
    ("pca+", {"step_decay": "exp"}, "step_decay"),
    ("pca+", {"decay_floor": 0}, "decay_floor"),
    ("pca+", {"random_start": "yes"}, "random_start"),
    ("pca+", {"eot_samples": 0}, "eot_samples"),
    ("pca+", {"transforms": "jpeg:200"}, "transforms"),
    ("pca+", {"transforms": "sharpen"}, "transforms"),
    ("pca+", {"tile_size": 64, "tile_overlap": 40}, "tile_overlap"),
    ("pca+", {"seed": -1}, "seed"),
    ("pca+", {"v": 0.0}, "v"),
    ("pca+", {"vae": None}, "vae"),
    ("pca+", {"bogus": 1}, "bogus"),
    ("pid", {"loss": "l7"}, "loss"),
    ("photoguard-enc", {"target": "blue"}, "target"),
    ("photoguard-enc", {"target": torch.ones(3, 8, 8) * 2}, "target"),
    ("advdm", {}, "pipe"),
])
def test_bad_parameters_raise_valueerror_naming_them(name, kwargs, param, tiny_vae):
    kw = {"vae": tiny_vae, **kwargs}
    with pytest.raises(ValueError, match=param):
        get(name, **kw)


@pytest.mark.parametrize("bad", [torch.rand(3, 16, 16), torch.rand(1, 4, 16, 16), torch.rand(1, 3, 8, 8) * 2 - 0.5,
                                 torch.full((1, 3, 8, 8), float("nan"))])
def test_bad_images(bad, tiny_vae):
    with pytest.raises(ValueError, match="images"):
        get("pca+", vae=tiny_vae, steps=1)(bad)


def test_step_callback_reports_every_step_and_leaves_the_result_bit_identical(tiny_vae, images16):
    """Issue 22 item 10: one callback per step with steps x tiles x EOT; the output does not depend on it."""
    from latentguard.protect import StepInfo

    p = get("pca+", vae=tiny_vae, eps=8 / 255, steps=5, tile_size=16, tile_overlap=4, eot_samples=2,
            transforms="noise")
    big = torch.nn.functional.interpolate(images16, size=(24, 40), mode="bilinear").clamp(0, 1)
    seen: list[StepInfo] = []
    with_cb = p.protect(big, callback=seen.append)
    without = p.protect(big)
    assert torch.equal(with_cb.images, without.images)
    assert [i.step for i in seen] == [1, 2, 3, 4, 5] and {i.steps for i in seen} == {5}
    assert {i.tiles for i in seen} == {len(tile_grid(24, 40, 16, 4, 2))} and seen[0].tiles > 1
    assert seen[0].eot_samples == 2 and seen[0].passes == 2 * seen[0].tiles and seen[0].images == 2
    assert all(b.elapsed >= a.elapsed for a, b in zip(seen, seen[1:])) and seen[-1].eta == 0
    assert seen[0].eta == pytest.approx(seen[0].step_seconds * 4)


def test_step_callback_can_stop_the_run(tiny_vae, images16):
    class Stop(Exception):
        pass

    def stop_at_2(info):
        if info.step == 2:
            raise Stop

    x = images16.clone()
    with pytest.raises(Stop):
        get("pca+", vae=tiny_vae, steps=10).protect(images16, callback=stop_at_2)
    assert torch.equal(images16, x)
    with pytest.raises(TypeError, match="callback must be callable"):
        get("pca+", vae=tiny_vae, steps=1).protect(images16, callback=3)
