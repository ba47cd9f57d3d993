"""Fixtures of the harden tests: synthetic training images (the tiny frozen VAE ``tiny_vae_frozen`` is in
tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch


def synthetic_images(n: int = 3, size: int = 48, seed: int = 0) -> list[torch.Tensor]:
    """Smooth colour gradients with a few edges and mild noise (not photos; for wiring tests)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    out = []
    for _ in range(n):
        a = torch.rand(3, 1, 1, generator=g)
        b = torch.rand(3, 1, 1, generator=g)
        img = a * xx + b * yy
        img = img + 0.3 * (xx > torch.rand(1, generator=g)).float()
        img = img + 0.03 * torch.randn(3, size, size, generator=g)
        out.append((img / img.amax().clamp_min(1e-6)).clamp(0, 1))
    return out


@pytest.fixture(scope="session")
def make_crops():
    """``make_crops(seed=0, crop=16)`` -> fresh seeded :class:`ImageCrops` of the synthetic images."""
    from latentguard.harden import ImageCrops

    imgs = synthetic_images()
    return lambda seed=0, crop=16: ImageCrops(imgs, crop, seed=seed, scales=(1.0, 0.5))


@pytest.fixture()
def image_folder(tmp_path):
    from latentguard.io import save_image

    d = tmp_path / "data"
    d.mkdir()
    for i, im in enumerate(synthetic_images()):
        save_image(im, d / f"img{i}.png")
    return d


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests are CPU-bound small convolutions: one thread is faster than two on a shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
