"""Shared fixtures: real bundled models and photos (skipped with a reason when the zoo is not built)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(int(os.environ.get("LATENTGUARD_TEST_THREADS", "2")))


from latentguard.testing import require_zoo  # noqa: E402  (re-exported for fixtures below)


@pytest.fixture(scope="session")
def vae_a():
    require_zoo("vae-a")
    from latentguard.models import load_vae

    return load_vae("zoo:vae-a")


@pytest.fixture(scope="session")
def vae_b():
    require_zoo("vae-b")
    from latentguard.models import load_vae

    return load_vae("zoo:vae-b")


@pytest.fixture(scope="session")
def samples64() -> torch.Tensor:
    from latentguard.samples import sample_images

    return sample_images(64)[:4]


@pytest.fixture(scope="session")
def t2i_pipe():
    require_zoo("t2i", "vae-a")
    from latentguard.models import load_pipeline

    return load_pipeline("zoo:t2i", kind="img2img")


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("privacy_tables")`` -> the module ``benchmarks/privacy_tables.py`` (not a package)."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "benchmarks"

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", root / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load
