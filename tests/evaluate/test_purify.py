"""Purifications: deterministic under a seed, change the image as declared, never mutate the input."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from latentguard.evaluate import purify as P
from latentguard.evaluate.edits import ModelCache, Unavailable
from latentguard.ops.filters import gaussian_blur
from latentguard.ops.metrics import psnr


@pytest.fixture(scope="module")
def imgs(samples64):
    return samples64[:2].float()


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _tv(x):
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def _highpass_energy(x):
    return (x - gaussian_blur(x, 2.0)).pow(2).mean()


SIMPLE = [P.NoPurification(), P.JPEG(50), P.Resize(0.5), P.GaussianBlur(1.0), P.GaussianNoise(0.05)]


@pytest.mark.parametrize("pur", SIMPLE, ids=lambda p: p.name)
def test_deterministic_and_not_mutating(pur, imgs):
    before = imgs.clone()
    a = pur(imgs, generator=_gen(1))
    b = pur(imgs, generator=_gen(1))
    assert torch.equal(a, b) and a.shape == imgs.shape and a.dtype == imgs.dtype
    assert torch.equal(imgs, before)
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_none_is_identity(imgs):
    out = P.NoPurification()(imgs)
    assert torch.equal(out, imgs) and out.data_ptr() != imgs.data_ptr()


def test_jpeg_matches_pil_and_quality_orders(imgs):
    out = P.JPEG(30)(imgs)
    arr = (imgs[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=30)
    ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.float32) / 255
    np.testing.assert_allclose(out[0].permute(1, 2, 0).numpy(), ref, atol=1e-6)
    p = [psnr(P.JPEG(q)(imgs), imgs) for q in (10, 50, 95)]
    assert torch.all(p[0] < p[1]) and torch.all(p[1] < p[2])
    with pytest.raises(ValueError, match="quality"):
        P.JPEG(0)


def test_resize_removes_detail(imgs):
    e0 = _highpass_energy(imgs)
    e_half = _highpass_energy(P.Resize(0.5)(imgs))
    e_quarter = _highpass_energy(P.Resize(0.25)(imgs))
    assert e_quarter < e_half < 0.7 * e0
    with pytest.raises(ValueError, match="scale"):
        P.Resize(1.0)


def test_blur_smooths_more_with_sigma(imgs):
    tv = [_tv(P.GaussianBlur(s)(imgs)) for s in (0.5, 1.0, 2.0)]
    assert _tv(imgs) > tv[0] > tv[1] > tv[2]
    with pytest.raises(ValueError, match="sigma"):
        P.GaussianBlur(0)


def test_noise_has_declared_std():
    gray = torch.full((2, 3, 64, 64), 0.5)
    out = P.GaussianNoise(0.05)(gray, generator=_gen(0))
    r = out - gray
    assert abs(float(r.std()) - 0.05) < 0.002 and abs(float(r.mean())) < 0.002
    assert not torch.equal(out, P.GaussianNoise(0.05)(gray, generator=_gen(1)))


def test_noisy_upscale_unavailable_without_upscaler():
    out = P.build_purifications({"kind": "noisy-upscale", "std": [0.05, 0.1]}, "zoo:t2i", ModelCache())
    assert len(out) == 2 and all(isinstance(o, Unavailable) for o in out)
    assert "upscaler" in out[0].reason


def test_build_purifications_sweeps():
    out = P.build_purifications({"kind": "jpeg", "quality": [90, 50]}, "zoo:t2i", ModelCache())
    assert [o.name for o in out] == ["jpeg-q90", "jpeg-q50"] and [o.strength for o in out] == [90.0, 50.0]
    with pytest.raises(ValueError, match="purification kind"):
        P.build_purifications({"kind": "sharpen"}, "zoo:t2i", ModelCache())
    with pytest.raises(TypeError):
        P.build_purifications({"kind": "blur", "radius": 2}, "zoo:t2i", ModelCache())


def test_impress_improves_consistency_within_bound(vae_a, imgs):
    x0 = imgs[:1]
    g = _gen(0)
    x0 = (x0 + (8 / 255) * torch.randn(x0.shape, generator=g).sign()).clamp(0, 1)  # a 'protected' image
    imp = P.Impress(vae_a, eps=8 / 255, steps=8, lr=0.005)
    out = imp(x0)
    assert torch.equal(out, imp(x0))  # deterministic
    assert float((out - x0).abs().max()) <= 8 / 255 + 1e-6
    assert float(imp.consistency(out)) < float(imp.consistency(x0))


def test_diffpure_deterministic_and_stronger_moves_more(t2i_pipe, imgs):
    weak, strong = P.DiffPure(t2i_pipe, t_star=0.1, steps=20), P.DiffPure(t2i_pipe, t_star=0.6, steps=20)
    a, b = weak(imgs, generator=_gen(3)), weak(imgs, generator=_gen(3))
    assert torch.equal(a, b)
    c = strong(imgs, generator=_gen(3))
    assert torch.all(psnr(a, imgs) > psnr(c, imgs))
