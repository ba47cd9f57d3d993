"""Poison tests run single-threaded: on a shared, loaded CPU two OpenMP threads can be 50x slower than one."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
