"""Shared fixtures: real bundled models and photos (skipped with a reason when the zoo is not built), and the
one tiny random VAE that the mechanics tests use (always available)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(int(os.environ.get("LATENTGUARD_TEST_THREADS", "2")))


from latentguard.testing import require_zoo  # noqa: E402  (re-exported for fixtures below)


# ----------------------------------------------------------------------------------------------------
# the tiny random VAE (random weights, seeded; seconds on one core)
# ----------------------------------------------------------------------------------------------------
TINY_VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4,
    sample_size=16,  # only the tiling threshold of diffusers (tiling is never enabled): no effect on numbers
)


def make_tiny_vae(seed: int = 0, *, train: bool = False, frozen: bool = False):
    """The tests' tiny diffusers ``AutoencoderKL`` (f=2, 4 latent channels, widths 8/16, mid-block attention),
    weights drawn after ``torch.manual_seed(seed)``, wrapped as a :class:`~latentguard.models.LatentVAE`
    with ``spec="tiny-{seed}"``.

    Variants (same weights for the same seed, only the module state differs):
        train: leave the model in train mode (default: eval), as the poison tests need.
        frozen: ``requires_grad_(False)`` on every parameter, as the harden tests use it.
    ``make_tiny_vae(seed).model`` is the bare ``AutoencoderKL`` (e.g. to ``save_pretrained`` a folder).
    """
    from diffusers import AutoencoderKL

    from latentguard.models import LatentVAE

    torch.manual_seed(seed)
    model = AutoencoderKL(**TINY_VAE_CONFIG)
    model.train(train)
    if frozen:
        model.requires_grad_(False)
    return LatentVAE(model, spec=f"tiny-{seed}")


@pytest.fixture(scope="session")
def tiny_vae_factory():
    """``tiny_vae_factory(seed=0, train=False, frozen=False)`` -> a fresh :func:`make_tiny_vae`."""
    return make_tiny_vae


@pytest.fixture(scope="session")
def tiny_vae():
    """Seed 0, eval mode, trainable parameters (tests that change its state restore it)."""
    return make_tiny_vae(0)


@pytest.fixture(scope="session")
def tiny_vae_b():
    """Seed 1: a second surrogate of the same architecture (ensembles, transfer)."""
    return make_tiny_vae(1)


@pytest.fixture(scope="session")
def tiny_vae_frozen():
    """Seed 0 with every parameter frozen (the harden tests' VAE); a separate object from ``tiny_vae``."""
    return make_tiny_vae(0, frozen=True)


# ----------------------------------------------------------------------------------------------------
# the bundled zoo
# ----------------------------------------------------------------------------------------------------
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
