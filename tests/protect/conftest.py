"""Fixtures for the protect tests: a tiny random VAE (engine mechanics) and small real photos."""

from __future__ import annotations

import pytest
import torch


def make_tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    from latentguard.models import LatentVAE

    torch.manual_seed(seed)
    model = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4,
    ).eval()
    return LatentVAE(model, spec=f"tiny-{seed}")


@pytest.fixture(scope="session")
def tiny_vae():
    return make_tiny_vae(0)


@pytest.fixture(scope="session")
def tiny_vae_b():
    return make_tiny_vae(1)


@pytest.fixture()
def images16() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 16, 16, generator=g)
