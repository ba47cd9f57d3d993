"""The reference rows ``none`` and ``random-noise`` and the torch-free registry table."""

from __future__ import annotations

import importlib

import pytest
import torch

from latentguard.protect import get, registry


def test_builtin_table_names_the_module_that_registers_each_method():
    for name, module in registry.BUILTIN.items():
        mod = importlib.import_module(module)
        cls = registry.get_class(name)
        assert cls.name == name and cls.__module__ == mod.__name__
    assert set(registry.available()) >= set(registry.BUILTIN)
    with pytest.raises(ValueError, match="unknown protection method 'pca'"):
        registry.check_name("pca")


def test_random_sign_noise_budget_and_determinism(tiny_vae):
    x = torch.rand(2, 3, 16, 16)
    before = x.clone()
    f = get("random-noise", vae=tiny_vae, eps=8 / 255)
    a = f(x, generator=torch.Generator().manual_seed(0))
    b = f(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.equal(x, before)
    d = (a - x).abs()
    assert float(d.max()) <= 8 / 255 + 1e-7
    interior = (x > 8 / 255) & (x < 1 - 8 / 255)
    assert torch.allclose(d[interior], torch.full_like(d[interior], 8 / 255), atol=1e-6)  # every pixel at the budget
    assert torch.equal(get("none", vae=tiny_vae, eps=0.0)(x), x)
    with pytest.raises(ValueError, match="eps"):
        get("random-noise", vae=tiny_vae, eps=2.0)


def test_random_sign_noise_draws_what_the_bench_drew(tiny_vae):
    """The signs the evaluate harness drew before the method moved here, for the same generator."""
    x = torch.rand(2, 3, 16, 16)
    s = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(3), device="cpu").to(x.dtype) * 2 - 1
    old = (x + 8 / 255 * s).clamp(0, 1)
    new = get("random-noise", vae=tiny_vae, eps=8 / 255)(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(new, old)


def test_reference_rows_have_records_and_respect_the_mask(tiny_vae):
    x = torch.rand(2, 3, 16, 16)
    mask = torch.zeros(16, 16)
    mask[:8] = 1
    out = get("random-noise", vae=tiny_vae, eps=4 / 255).protect(x, mask=mask)
    assert torch.equal(out.images[..., 8:, :], x[..., 8:, :])
    assert not torch.equal(out.images[..., :8, :], x[..., :8, :])
    r = out.records[0]
    assert r.method == "random-noise" and r.linf <= 4 / 255 + 1e-7 and r.kl_before > 0 and r.loss_after == 0.0
    none = get("none", vae=tiny_vae, eps=0.0).protect(x)
    assert torch.equal(none.images, x) and none.records[0].kl_before == none.records[0].kl_after
    with pytest.raises(ValueError, match="vae is required"):
        get("none")
