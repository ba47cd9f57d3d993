"""Tiny models for the privacy tests (random weights, seeded; seconds on one core)."""

from __future__ import annotations

import pytest
import torch


def make_tiny_vae(seed: int = 0):
    """A random diffusers AutoencoderKL (f=2, 4 latent channels, mid attention) wrapped as a LatentVAE."""
    from diffusers import AutoencoderKL

    from latentguard.models import LatentVAE

    torch.manual_seed(seed)
    model = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
        latent_channels=4, norm_num_groups=4, sample_size=16,
    )
    return LatentVAE(model.eval(), spec="tiny-random")


@pytest.fixture(scope="module")
def tiny_vae():
    return make_tiny_vae(0)
