"""ops.transforms: the differentiable JPEG follows PIL's default JPEG; one kernel per transform for purifier and EOT."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from latentguard.samples import sample_images
from latentguard.ops import transforms as T
from latentguard.ops.filters import gaussian_blur, gaussian_kernel1d, gaussian_window2d

# Measured by benchmarks/ops_jpeg.py on the 8 bundled 256 px photos (mean absolute error, 8-bit levels):
# 0.42 / 0.48 / 0.60 / 0.66 and mean PSNR 46.9 / 47.5 / 47.3 / 47.3 dB at q 50 / 75 / 90 / 95.
JPEG_BOUNDS = {50: 0.50, 75: 0.55, 90: 0.70, 95: 0.75}  # mean absolute error bound per quality
JPEG_MIN_PSNR = 46.5  # mean over the photos, dB


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(1 / ((a.detach() - b) ** 2).flatten(1).mean(1))


@pytest.fixture(scope="module")
def photos():
    return sample_images(256)


def test_quality_tables_are_the_ones_pil_writes():
    arr = np.zeros((16, 16, 3), np.uint8)
    for q in range(1, 101):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=q)
        tables = Image.open(io.BytesIO(buf.getvalue())).quantization
        np.testing.assert_array_equal(np.array(tables[0]).reshape(8, 8), T.quality_table(T._Q_LUMA, q).numpy())
        np.testing.assert_array_equal(np.array(tables[1]).reshape(8, 8), T.quality_table(T._Q_CHROMA, q).numpy())


@pytest.mark.parametrize("quality", sorted(JPEG_BOUNDS))
def test_diff_jpeg_matches_pil_default_jpeg(photos, quality):
    ref = T.jpeg_pil(photos, quality)  # PIL's default: 4:2:0
    y = T.diff_jpeg(photos, quality)
    mae = float((y - ref).abs().mean() * 255)
    assert mae < JPEG_BOUNDS[quality], f"q{quality}: mean error {mae:.3f} levels"
    assert float(_psnr(y, ref).mean()) > JPEG_MIN_PSNR
    # full-resolution chroma is a different codec: at least 8 dB further from what PIL writes
    y444 = T.diff_jpeg(photos, quality, subsampling="4:4:4")
    assert float(_psnr(y444, ref).mean()) < float(_psnr(y, ref).mean()) - 8
    # and the model is much closer to PIL's output than the input is
    assert float(_psnr(photos, ref).mean()) < float(_psnr(y, ref).mean()) - 9


def test_diff_jpeg_444_matches_pil_444(photos):
    x = photos[:2]
    ref = T.jpeg_pil(x, 75, subsampling="4:4:4")
    assert float(_psnr(T.diff_jpeg(x, 75, subsampling="4:4:4"), ref).min()) > 44


def test_jpeg_pil_default_is_420_and_validates():
    x = sample_images(32)[:1]
    assert torch.equal(T.jpeg_pil(x, 60), T.jpeg_pil(x, 60, subsampling="4:2:0"))
    assert not torch.equal(T.jpeg_pil(x, 60), T.jpeg_pil(x, 60, subsampling="4:4:4"))
    with pytest.raises(ValueError, match="quality"):
        T.jpeg_pil(x, 0)
    with pytest.raises(ValueError, match="subsampling"):
        T.diff_jpeg(x, 50, subsampling="4:2:2")


def test_diff_jpeg_differentiable_any_size():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 37, 53, generator=g).requires_grad_(True)
    y = T.diff_jpeg(x, 67.5)
    assert y.shape == x.shape and float(y.detach().min()) >= 0 and float(y.detach().max()) <= 1
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # uniform noise (the worst case for JPEG): 36.6 dB to PIL's output where the input itself is at 12.4 dB
    ref = T.jpeg_pil(x.detach(), 67)
    assert float(_psnr(T.diff_jpeg(x.detach(), 67), ref).min()) > 35
    assert float(_psnr(x, ref).max()) < 15


def test_eot_jpeg_uses_the_pil_matched_codec():
    x = sample_images(64)[:2]
    t = T.JPEG(quality=(80.0, 80.0))
    assert torch.equal(t(x), T.diff_jpeg(x, 80.0))
    assert torch.equal(T.JPEG((80.0, 80.0), subsampling="4:4:4")(x), T.diff_jpeg(x, 80.0, subsampling="4:4:4"))
    with pytest.raises(ValueError, match="subsampling"):
        T.JPEG(subsampling="420")


def test_one_gaussian_window():
    g = gaussian_kernel1d(11, 1.5, dtype=torch.float64)
    assert g.sum().item() == pytest.approx(1.0, abs=1e-15) and torch.equal(g, g.flip(0))
    w = gaussian_window2d(11, 1.5, 3, dtype=torch.float64)
    assert w.shape == (3, 1, 11, 11) and torch.equal(w[0, 0], g[:, None] * g[None, :])
    x = torch.rand(1, 3, 20, 20, dtype=torch.float64)
    assert torch.equal(gaussian_blur(x, 0.0), x)
    # the separable blur equals the 2-D window applied on the reflect-padded image
    r = 3
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (r, r, r, r), mode="reflect"),
                                     gaussian_window2d(2 * r + 1, 1.0, 3, dtype=torch.float64), groups=3)
    torch.testing.assert_close(gaussian_blur(x, 1.0), ref, rtol=0, atol=1e-14)
    assert T.Blur((1.0, 1.0))(x).equal(gaussian_blur(x, 1.0))


def test_resize_and_noise_kernels_shared():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 30, 40, generator=g)
    assert torch.equal(T.Resize((0.5, 0.5))(x), T.resize_roundtrip(x, 0.5, mode="bilinear"))
    assert not torch.equal(T.resize_roundtrip(x, 0.5, mode="bilinear"), T.resize_roundtrip(x, 0.5, mode="bicubic"))
    a = T.Noise((0.1, 0.1))(x, torch.Generator().manual_seed(3))
    b = T.gaussian_noise(x, 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert T.gaussian_noise(x, 0.0) is x


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_resize_center_crop(mode):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 48, 80, generator=g)
    y = T.resize_center_crop(x, 32, mode=mode)
    assert y.shape == (1, 3, 32, 32) and float(y.min()) >= 0 and float(y.max()) <= 1
    ref = torch.nn.functional.interpolate(x, size=(32, 53), mode=mode, antialias=True, align_corners=False)
    assert torch.equal(y, ref[..., :, 10:42].clamp(0, 1))
    assert torch.equal(T.resize_center_crop(x, 48, mode=mode), x[..., :, 16:64])  # short side fits: a crop
    with pytest.raises(ValueError, match="mode"):
        T.resize_center_crop(x, 32, mode="nearest")
