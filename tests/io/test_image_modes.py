"""Alpha, bit depth and colour modes survive the loader and the writer (issue 22, item 8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from latentguard.io import load_image, read_image, read_provenance, save_image

RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)
A8 = RNG.integers(0, 256, (9, 11), dtype=np.uint8)


def _png16(path, arr: np.ndarray) -> None:
    import png

    h, w, c = arr.shape
    png.Writer(w, h, greyscale=c in (1, 2), alpha=c in (2, 4), bitdepth=16).write(
        open(path, "wb"), arr.reshape(h, w * c).tolist())


def test_rgba_keeps_the_colour_and_the_alpha_apart(tmp_path):
    p = tmp_path / "a.png"
    Image.fromarray(np.dstack([RGB8, A8]), "RGBA").save(p)
    im = read_image(p)
    assert im.mode == "RGBA" and im.bits == 8 and im.notes == []
    assert torch.equal((im.rgb[0].permute(1, 2, 0) * 255).round().to(torch.uint8), torch.from_numpy(RGB8))
    assert torch.equal((im.alpha[0, 0] * 255).round().to(torch.uint8), torch.from_numpy(A8))
    # load_image still composites over the background, as before
    a = A8[..., None] / 255.0
    expected = RGB8 / 255.0 * a + (1 - a)
    np.testing.assert_allclose(load_image(p)[0].permute(1, 2, 0).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("mode", ["LA", "P-transparent"])
def test_gray_alpha_and_palette_transparency_give_an_alpha(tmp_path, mode):
    p = tmp_path / "x.png"
    if mode == "LA":
        Image.fromarray(np.dstack([RGB8[..., 0], A8]), "LA").save(p)
    else:
        q = Image.fromarray(RGB8).quantize(8)
        q.info["transparency"] = 0
        q.save(p, transparency=0)
    im = read_image(p)
    assert im.alpha is not None and im.rgb.shape == (1, 3, 9, 11)
    if mode == "LA":
        assert torch.equal((im.alpha[0, 0] * 255).round().to(torch.uint8), torch.from_numpy(A8))
        assert torch.equal(im.rgb[0, 0], im.rgb[0, 1])  # gray stays gray in all three channels


@pytest.mark.parametrize("planes", [3, 4, 2, 1])
def test_16_bit_pngs_are_read_at_16_bits(tmp_path, planes):
    arr = RNG.integers(0, 65536, (7, 5, planes)).astype(np.uint16)
    p = tmp_path / "x.png"
    _png16(p, arr)
    im = read_image(p)
    assert im.bits == 16
    colour = arr[..., :3] if planes >= 3 else np.repeat(arr[..., :1], 3, axis=-1)
    np.testing.assert_allclose(im.rgb[0].permute(1, 2, 0).numpy(), colour / 65535.0, atol=1e-6)
    if planes in (2, 4):
        np.testing.assert_allclose(im.alpha[0, 0].numpy(), arr[..., -1] / 65535.0, atol=1e-6)
    else:
        assert im.alpha is None


def test_cmyk_is_converted_and_says_so(tmp_path):
    p = tmp_path / "x.tif"
    Image.fromarray(RGB8).convert("CMYK").save(p)
    im = read_image(p)
    assert im.mode == "CMYK" and im.alpha is None and any("CMYK" in n for n in im.notes)


def test_writer_round_trips_16_bits_and_alpha_exactly(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 65536, (3, 6, 7), generator=g).float() / 65535
    a = torch.randint(0, 65536, (1, 1, 6, 7), generator=g).float() / 65535
    p = save_image(x, tmp_path / "o.png", alpha=a, bits=16, metadata={"method": "pca+", "source": "café ü 名.png"})
    back = read_image(p)
    assert back.bits == 16 and back.mode == "RGBA;16"
    assert torch.equal((back.rgb[0] * 65535).round(), (x * 65535).round())
    assert torch.equal((back.alpha * 65535).round(), (a * 65535).round())
    assert read_provenance(p) == {"method": "pca+", "source": "café ü 名.png"}
    p8 = save_image(x, tmp_path / "o8.png", alpha=a)
    assert Image.open(p8).mode == "RGBA"
    with pytest.raises(ValueError, match="no alpha"):
        save_image(x, tmp_path / "o.jpg", alpha=a, lossy=True)
    with pytest.raises(ValueError, match="PNG only"):
        save_image(x, tmp_path / "o.webp", bits=16, lossy=True)
