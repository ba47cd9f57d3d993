"""Fuzz the loader: thousands of mutated image files; only ImageLoadError may escape."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from latentguard.io import ImageLoadError, load_image


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    out = []
    for fmt, mode in (("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "P"), ("PNG", "L"), ("JPEG", "RGB"),
                      ("BMP", "RGB"), ("TIFF", "RGB"), ("WEBP", "RGB"), ("TIFF", "CMYK")):
        im = Image.fromarray(arr)
        im = im.quantize(8) if mode == "P" else im.convert(mode)
        b = io.BytesIO()
        im.save(b, format=fmt)
        out.append(b.getvalue())
    import struct
    import zlib

    a16 = rng.integers(0, 65536, (5, 6, 3)).astype(">u2")
    raw = b"".join(b"\x00" + a16[y].tobytes() for y in range(5))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    out.append(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 6, 5, 16, 2, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # 16-bit colour: the pypng path
    return out


SEEDS = _seeds()


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 10_000),
)
def test_loader_fuzz(tmp_path, seed, edits, cut):
    data = bytearray(SEEDS[seed])
    for pos, val in edits:
        data[pos % len(data)] = val
    if cut < len(data):
        data = data[: max(cut, 0) or len(data)]
    p = tmp_path / "f.img"
    p.write_bytes(bytes(data))
    try:
        t = load_image(p, max_pixels=4_000_000)
    except ImageLoadError as exc:
        assert "\n" not in str(exc)
        return
    assert t.ndim == 4 and t.shape[1] == 3 and float(t.min()) >= 0.0 and float(t.max()) <= 1.0
