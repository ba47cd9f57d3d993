"""Fixtures for the protect tests (the tiny random VAEs ``tiny_vae`` / ``tiny_vae_b`` are in tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture()
def images16() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 16, 16, generator=g)
