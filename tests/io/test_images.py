"""Safe image I/O: every mode and format round-trips, bad files give the one-line error, writes are atomic."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentguard.io import (
    ImageLoadError,
    LossyFormatWarning,
    collect_inputs,
    iter_images,
    load_image,
    read_provenance,
    save_image,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
_yy, _xx = np.mgrid[0:24, 0:32]
SMOOTH = np.stack([_xx * 8, _yy * 10, (_xx + _yy) * 4], -1).astype(np.uint8)


@pytest.mark.parametrize("fmt,suffix,exact", [
    ("PNG", ".png", True), ("BMP", ".bmp", True), ("TIFF", ".tif", True),
    ("WEBP", ".webp", False), ("JPEG", ".jpg", False),
])
def test_formats_round_trip(tmp_path, fmt, suffix, exact):
    p = tmp_path / f"x{suffix}"
    kw = {"lossless": True} if fmt == "WEBP" else {}
    src = RGB if exact or fmt == "WEBP" else SMOOTH
    Image.fromarray(src).save(p, format=fmt, **kw)
    t = load_image(p)
    assert t.shape == (1, 3, 24, 32) and t.dtype == torch.float32
    ref = torch.from_numpy(src).permute(2, 0, 1)[None].float() / 255
    if exact or fmt == "WEBP":
        assert (t - ref).abs().max().item() < 1e-6
    else:
        assert (t - ref).abs().mean().item() < 0.03


def test_grayscale_palette_cmyk(tmp_path):
    g = RNG.integers(0, 256, (10, 12), dtype=np.uint8)
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    t = load_image(tmp_path / "g.png")
    assert torch.equal(t[0, 0], t[0, 1]) and abs(t[0, 0, 3, 4].item() - g[3, 4] / 255) < 1e-6

    pal = Image.fromarray(RGB).quantize(16)
    pal.save(tmp_path / "p.png")
    t = load_image(tmp_path / "p.png")
    ref = np.asarray(pal.convert("RGB"), dtype=np.float32) / 255
    assert np.allclose(t[0].permute(1, 2, 0).numpy(), ref, atol=1e-6)

    Image.fromarray(RGB).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    t = load_image(tmp_path / "c.jpg")
    assert t.shape == (1, 3, 24, 32) and (t - torch.from_numpy(RGB).permute(2, 0, 1).float() / 255).abs().mean() < 0.08


def test_16bit_is_scaled_not_clipped(tmp_path):
    a = (np.arange(200, dtype=np.uint16).reshape(10, 20) * 300)  # up to 59700 > 255
    Image.fromarray(a).save(tmp_path / "g16.png")
    t = load_image(tmp_path / "g16.png")
    assert abs(t[0, 0, 9, 19].item() - 59700 / 65535) < 1e-6
    assert t.max().item() < 1.0  # not clipped to 1 as an 8-bit misread would do


def test_alpha_composited_on_declared_background(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red
    rgba[..., 3] = 128  # half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    white = load_image(tmp_path / "a.png")
    black = load_image(tmp_path / "a.png", background=(0.0, 0.0, 0.0))
    a = 128 / 255
    assert abs(white[0, 1, 0, 0].item() - (1 - a)) < 1e-5  # green channel shows the white background
    assert abs(black[0, 1, 0, 0].item()) < 1e-6
    assert abs(black[0, 0, 0, 0].item() - a) < 1e-5
    la = Image.fromarray(np.full((3, 3), 200, np.uint8), "L").convert("LA")
    la.putalpha(0)
    la.save(tmp_path / "la.png")
    assert torch.allclose(load_image(tmp_path / "la.png"), torch.ones(1, 3, 3, 3))


def test_exif_orientation_applied(tmp_path):
    im = Image.fromarray(RGB)  # 32 wide, 24 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "r.jpg", exif=exif, quality=100)
    t = load_image(tmp_path / "r.jpg")
    assert t.shape == (1, 3, 32, 24)


@pytest.mark.parametrize("content,match", [
    (b"", "empty file"),
    (b"this is not an image at all", "not a recognised image"),
])
def test_bad_bytes(tmp_path, content, match):
    p = tmp_path / "bad.png"
    p.write_bytes(content)
    with pytest.raises(ImageLoadError, match=match) as ei:
        load_image(p)
    assert str(p) in str(ei.value) and "\n" not in str(ei.value)


def test_truncated_file(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(RGB).save(buf, format="PNG")
    p = tmp_path / "t.png"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="corrupt or truncated"):
        load_image(p)


def test_decompression_bomb(tmp_path):
    Image.new("L", (3000, 3000)).save(tmp_path / "big.png")
    with pytest.raises(ImageLoadError, match="decompression-bomb"):
        load_image(tmp_path / "big.png", max_pixels=1_000_000)


def test_format_allow_list(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "x.gif")
    with pytest.raises(ImageLoadError, match="not allowed"):
        load_image(tmp_path / "x.gif")


def test_batch_skips_and_reports_bad_files(tmp_path):
    good = tmp_path / "a_good.png"
    Image.fromarray(RGB).save(good)
    (tmp_path / "b_empty.png").write_bytes(b"")
    (tmp_path / "c_text.png").write_text("hello")
    Image.fromarray(RGB).save(tmp_path / "d_good.bmp")
    paths = collect_inputs([tmp_path])
    results = list(iter_images(paths))
    assert [r[0].name for r in results] == ["a_good.png", "b_empty.png", "c_text.png", "d_good.bmp"]
    assert [r[1] is not None for r in results] == [True, False, False, True]
    assert all(isinstance(r[2], ImageLoadError) for r in results if r[1] is None)


def test_collect_inputs_globs_and_missing(tmp_path):
    for n in ("x.png", "y.png", "z.txt"):
        (tmp_path / n).write_bytes(b"0")
    assert [p.name for p in collect_inputs([str(tmp_path / "*.png")])] == ["x.png", "y.png"]
    with pytest.raises(FileNotFoundError):
        collect_inputs([str(tmp_path / "nope.png")])
    with pytest.raises(FileNotFoundError):
        collect_inputs([str(tmp_path / "*.jpg")])


def test_save_png_with_provenance_and_lossy_flag(tmp_path):
    x = torch.rand(3, 16, 16)
    p = save_image(x, tmp_path / "o.png", metadata={"method": "pca+", "eps": 16 / 255})
    assert read_provenance(p) == {"method": "pca+", "eps": 16 / 255}
    assert (load_image(p)[0] - x).abs().max() <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match="lossy"):
        save_image(x, tmp_path / "o.jpg")
    with pytest.warns(LossyFormatWarning):
        save_image(x, tmp_path / "o.jpg", lossy=True)
    with pytest.raises(ValueError, match="one image"):
        save_image(torch.rand(2, 3, 4, 4), tmp_path / "b.png")
    with pytest.raises(ValueError, match="NaN"):
        save_image(torch.full((3, 4, 4), float("nan")), tmp_path / "n.png")


def test_atomic_write_leaves_no_partial_png(tmp_path):
    """Kill a writer in the middle of writing a big PNG: no partial file under the target name."""
    target = tmp_path / "big.png"
    script = textwrap.dedent(f"""
        import sys, torch, PIL.Image as I
        orig = I.Image.save
        def slow_save(self, fp, *a, **k):
            fp.write(b"\\x89PNG partial")
            fp.flush()
            print("writing", flush=True)
            import time; time.sleep(30)
        I.Image.save = slow_save
        from latentguard.io import save_image
        save_image(torch.rand(3, 64, 64), {str(target)!r})
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    assert proc.stdout.readline().strip() == b"writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    # a later successful write produces the complete file
    save_image(torch.rand(3, 8, 8), target)
    assert load_image(target).shape == (1, 3, 8, 8)


def _write_png16(path, a):
    """Minimal 16-bit colour PNG writer (Pillow cannot write them)."""
    import struct
    import zlib

    h, w, c = a.shape
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16bit_colour_png_at_full_depth(tmp_path):
    a = RNG.integers(0, 65536, (6, 7, 3)).astype(np.uint16)
    _write_png16(tmp_path / "rgb16.png", a)
    t = load_image(tmp_path / "rgb16.png")
    assert np.abs(t[0].permute(1, 2, 0).numpy() - a / 65535).max() < 1e-6  # 8-bit decoding would err ~4e-3
    rgba = np.concatenate([a, np.full((6, 7, 1), 0, np.uint16)], -1)  # fully transparent
    _write_png16(tmp_path / "rgba16.png", rgba)
    assert torch.allclose(load_image(tmp_path / "rgba16.png", background=(0.0, 0.5, 1.0)),
                          torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1).expand(1, 3, 6, 7))
