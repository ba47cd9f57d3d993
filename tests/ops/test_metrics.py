"""PSNR/SSIM against scikit-image; embedding stand-ins behave as declared; standard metrics say why not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from latentguard.ops import metrics as M
from latentguard.testing import require_zoo


def _pairs(seed: int = 0, n: int = 3, size: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, 3, size, size + 8, generator=g)
    t = torch.nn.functional.avg_pool2d(t, 3, stride=1, padding=1)  # some structure
    noise = torch.randn(t.shape, generator=g) * torch.linspace(0.01, 0.3, n).view(n, 1, 1, 1)
    return (t + noise).clamp(0, 1), t


def _sk_ssim(p: torch.Tensor, t: torch.Tensor) -> float:
    return structural_similarity(t.permute(1, 2, 0).double().numpy(), p.permute(1, 2, 0).double().numpy(),
                                 data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psnr_matches_skimage(seed):
    p, t = _pairs(seed)
    ours = M.psnr(p, t)
    ref = [peak_signal_noise_ratio(t[i].numpy().astype(np.float64), p[i].numpy().astype(np.float64), data_range=1.0)
           for i in range(len(p))]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_matches_skimage(seed):
    p, t = _pairs(seed)
    ours = M.ssim(p, t)
    ref = [_sk_ssim(p[i], t[i]) for i in range(len(p))]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-4, rtol=0)
    # the noisier images must score lower (the test pairs have increasing noise)
    assert ours[0] > ours[1] > ours[2]


def test_ssim_equals_skimage_in_float64():
    p, t = _pairs(4)
    ours = M.ssim(p.double(), t.double())
    ref = [_sk_ssim(p[i].double(), t[i].double()) for i in range(len(p))]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12, rtol=0)


def test_ssim_matches_skimage_on_photos(samples64):
    g = torch.Generator().manual_seed(3)
    p = (samples64 + 0.05 * torch.randn(samples64.shape, generator=g)).clamp(0, 1).float()
    ours = M.ssim(p, samples64)
    ref = [_sk_ssim(p[i], samples64[i]) for i in range(len(p))]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-4, rtol=0)


def test_identical_images_and_objects():
    p, t = _pairs(0)
    assert torch.all(M.psnr(t, t) == 100.0)
    np.testing.assert_allclose(M.ssim(t, t).numpy(), 1.0, atol=1e-12)
    m = M.PSNR()
    m.update(p[:2], t[:2])
    m.update(p[2:], t[2:])
    np.testing.assert_allclose(float(m.compute()), float(M.psnr(p, t).mean()), atol=1e-10)
    assert m.higher_is_better and M.SSIM.higher_is_better and not M.EmbedDistance.higher_is_better
    s = M.SSIM()
    val = s(p, t)
    np.testing.assert_allclose(float(val), float(M.ssim(p, t).mean()), atol=1e-10)
    s.reset()
    with pytest.raises(RuntimeError):
        s.compute()


def test_validation():
    p, t = _pairs(0)
    with pytest.raises(ValueError, match="shape"):
        M.psnr(p, t[:1])
    with pytest.raises(ValueError, match="kernel_size"):
        M.ssim(p, t, kernel_size=4)
    with pytest.raises(ValueError, match="smaller than the SSIM window"):
        M.ssim(p[..., :8, :8], t[..., :8, :8])
    with pytest.raises(ValueError, match="data_range"):
        M.PSNR(data_range=0)


def test_frechet_distance_properties():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    b = rng.normal(size=(200, 8))
    c = rng.normal(loc=2.0, size=(200, 8))
    assert M.frechet_distance(a, a) < 1e-6
    # closed form for equal covariances: ||mu_a - mu_c||^2 ~= 8 * 4 = 32
    assert M.frechet_distance(a, c) == pytest.approx(32.0, rel=0.15)
    assert M.frechet_distance(a, b) < 1.0
    with pytest.raises(ValueError):
        M.frechet_distance(a[:1], b)


@pytest.mark.parametrize("n,m,d", [(50, 40, 6), (5, 7, 12)])
def test_frechet_matches_sqrtm_reference(n, m, d):
    from scipy import linalg

    rng = np.random.default_rng(n)
    a, b = rng.normal(size=(n, d)), rng.normal(loc=0.3, scale=1.5, size=(m, d))
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * np.real(linalg.sqrtm(ca @ cb)))
    assert M.frechet_distance(a, b) == pytest.approx(ref, rel=1e-6, abs=1e-6)


class _FakeEmbedder:
    """Mean colour as a 3-d 'embedding' (unit-normalised)."""

    device = torch.device("cpu")

    def embed_images(self, x):
        return torch.nn.functional.normalize(x.mean((2, 3)) + 1e-3, dim=-1)

    def embed_texts(self, texts):
        return torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.0] if "red" in t else [0.0, 0.0, 1.0] for t in texts]), dim=-1)


def test_embed_standins_with_fake_embedder():
    red = torch.zeros(2, 3, 16, 16)
    red[:, 0] = 1
    blue = torch.zeros(2, 3, 16, 16)
    blue[:, 2] = 1
    d = M.embed_dist(_FakeEmbedder(), red, red)
    assert torch.allclose(d, torch.zeros(2, dtype=torch.float64), atol=1e-6)
    assert torch.all(M.embed_dist(_FakeEmbedder(), red, blue) > 0.9)
    cs = M.embed_clip_score(_FakeEmbedder(), red, ["a red thing", "a blue thing"])
    assert cs[0] > 0.99 and cs[1] < 0.01
    fid = M.EmbedFID(_FakeEmbedder())
    g = torch.Generator().manual_seed(0)
    fid.update(torch.rand(6, 3, 8, 8, generator=g), real=True)
    fid.update(torch.rand(6, 3, 8, 8, generator=g), real=False)
    assert float(fid.compute()) >= 0


def test_standard_metric_status_offline():
    st = M.standard_metric_status()
    assert set(st) == {"lpips", "fid", "clip-score"}
    for name, s in st.items():
        assert isinstance(s["available"], bool) and s["reason"]
        assert s["stand_in"] in M.REGISTRY and M.REGISTRY[s["stand_in"]].stands_in_for == name
    # this machine has neither lpips nor torchvision: the reason must say so, not pretend
    try:
        import lpips  # noqa: F401
    except ImportError:
        assert not st["lpips"]["available"] and "lpips" in st["lpips"]["reason"]


def test_embed_dist_on_zoo_embedder(samples64):
    from latentguard.models import load_embedder

    require_zoo("embed")

    emb = load_embedder("zoo:embed")
    d_same = M.embed_dist(emb, samples64, samples64)
    g = torch.Generator().manual_seed(0)
    noisy = (samples64 + 0.3 * torch.randn(samples64.shape, generator=g)).clamp(0, 1)
    d_noisy = M.embed_dist(emb, noisy, samples64)
    assert torch.all(d_same < 1e-5)
    assert torch.all(d_noisy > d_same)


def test_registry_dispatch():
    assert M.get("psnr") is M.REGISTRY["psnr"] and M.get("psnr").higher_is_better
    with pytest.raises(ValueError, match="unknown metric 'psrn'"):
        M.get("psrn")
    assert M.names("set") == ("embed-fid", "fid")
    assert set(M.names()) == set(M.REGISTRY)
    p, t = _pairs(0)
    for name in M.names("pair"):
        info = M.get(name)
        if info.needs:  # embedder / weights: covered by the stand-in tests
            continue
        obj = info.metric()
        obj.update(p, t)
        torch.testing.assert_close(obj.compute(), info.functional(p, t).mean())
        assert obj.higher_is_better == info.higher_is_better and obj.name == name
    for info in M.REGISTRY.values():
        assert (info.functional is None) == (info.needs == "weights")
    with pytest.raises(ValueError, match="kind"):
        M.MetricInfo("x", True, "pairs", None, "")
