"""Scale tests: one local Ray instance for the whole session (2 CPUs, a small object store), started only
by the tests that need it; the local-engine tests need no Ray."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def ray_local():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'latentguard[scale]')")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, object_store_memory=128 * 1024**2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory, vae_a):
    """Four 64 px copies of the bundled photos and one corrupt file, in a folder."""
    from latentguard.io import save_image
    from latentguard.samples import sample_images

    src = tmp_path_factory.mktemp("photos")
    x = sample_images(64)[:4]
    for i in range(4):
        save_image(x[i], src / f"im{i}.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return src
