"""Fixtures of the serve tests: one app with the bundled models (loaded once per session), tiny images."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed (pip install 'latentguard[web]')")


def png_bytes(w: int = 32, h: int = 32, seed: int = 0) -> bytes:
    """A real RGB PNG of a smooth random picture."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.random((4, 4, 3))
    img = Image.fromarray((base * 255).astype("uint8")).resize((w, h), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(w: int, h: int) -> bytes:
    """A valid PNG header announcing ``w x h`` pixels (IHDR), then a few bytes of pixel data: a bomb's opening."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")


@pytest.fixture(scope="session")
def serve_config(tmp_path_factory):
    from latentguard.serve import ServeConfig
    from latentguard.testing import require_zoo

    require_zoo("vae-a", "t2i")
    return ServeConfig(data_dir=tmp_path_factory.mktemp("serve-data"), models=["zoo:vae-a"], editor="zoo:t2i",
                       default_steps=1, max_steps=5, preview_steps=4, preview_size=128, sync_wait_s=300.0,
                       queue_size=8, max_upload_bytes=2 * 1024 * 1024, max_pixels=512 * 512)


@pytest.fixture(scope="session")
def pool(serve_config):
    """One worker pool (its models load once) shared by the TestClient app and the live server."""
    from latentguard.serve.jobs import WorkerPool

    p = WorkerPool(serve_config)
    yield p
    p.stop()


@pytest.fixture(scope="session")
def client(serve_config, pool):
    from fastapi.testclient import TestClient

    from latentguard.serve.app import create_app

    with TestClient(create_app(serve_config, pool=pool)) as c:
        yield c


@pytest.fixture(scope="session")
def live_url(serve_config, pool):
    """The same service on a real uvicorn server on 127.0.0.1 (a port the system picks)."""
    from latentguard.serve.app import create_app
    from latentguard.serve.server import background_server

    with background_server(create_app(serve_config, pool=pool)) as url:
        yield url
