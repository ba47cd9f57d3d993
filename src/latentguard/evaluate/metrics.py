"""Image metrics for protection benchmarks: PSNR, SSIM, and labelled embedding stand-ins.

Every metric follows torchmetrics' object protocol (``update(preds, target)``, ``compute()``, ``reset()``,
``higher_is_better``) and has a functional twin returning one value per image. Images are float tensors
``[N,3,H,W]`` in ``[0,1]``.

**PSNR / SSIM** are written here in torch (torchmetrics' image extras need torchvision, which is optional)
and tested against scikit-image to 1e-4:

* PSNR (per image): :math:`10 \\log_{10}(R^2 / \\mathrm{MSE})` with ``R = data_range = 1``, the MSE over
  all channels and pixels of one image (``skimage.metrics.peak_signal_noise_ratio(t, p, data_range=1)``).
  Identical images give ``+inf``; :func:`psnr` caps it at ``max_db`` (default 100 dB) so means stay finite.
* SSIM (per image; Wang et al. 2004): Gaussian window of size 11 and sigma 1.5 (normalised to sum 1),
  ``K1=0.01, K2=0.03``, ``C1=(K1 R)^2, C2=(K2 R)^2``, population (not sample) covariances, the SSIM map
  taken over the *valid* region only (the 5-pixel border a padded filter would touch is dropped, as both
  torchmetrics and scikit-image do) and averaged over pixels and channels. This equals
  ``skimage.metrics.structural_similarity(t, p, data_range=1, channel_axis=-1, gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False)`` and torchmetrics' ``StructuralSimilarityIndexMeasure()``
  defaults.

**LPIPS, FID, CLIP score** need pretrained weights (AlexNet/VGG + LPIPS heads, Inception-v3, OpenAI CLIP).
:func:`standard_metric_status` says for each whether it can be computed here and, if not, why. Offline,
latentguard computes *stand-ins* with the bundled ``zoo:embed`` image-text embedder, always under their own
names (never as LPIPS/FID/CLIP score):

* ``embed-dist``: :math:`1 - \\cos(e(a), e(b))` of zoo:embed image embeddings (an LPIPS-like perceptual
  distance; 0 for identical images, higher = more different).
* ``embed-fid``: the Frechet distance :math:`\\lVert\\mu_a-\\mu_b\\rVert^2 + \\mathrm{Tr}(\\Sigma_a+\\Sigma_b -
  2(\\Sigma_a\\Sigma_b)^{1/2})` between Gaussians fitted to zoo:embed image features of two image sets
  (FID's formula on another feature extractor; with few images it is dominated by estimation noise).
* ``embed-clip-score``: :math:`\\cos(e(\\mathrm{image}), e(\\mathrm{text}))` (CLIP score's formula without
  the x100 and the clip at 0, on zoo:embed).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "psnr", "ssim", "embed_dist", "embed_clip_score", "frechet_distance",
    "PSNR", "SSIM", "EmbedDistance", "EmbedFID", "EmbedCLIPScore",
    "MetricInfo", "METRICS", "STANDARD_METRICS", "standard_metric_status",
]


def _check_pair(preds: torch.Tensor, target: torch.Tensor) -> None:
    if not isinstance(preds, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError("preds and target must be torch tensors")
    if preds.shape != target.shape:
        raise ValueError(f"preds and target must have one shape, got {tuple(preds.shape)} and {tuple(target.shape)}")
    if preds.ndim != 4:
        raise ValueError(f"images must be [N,C,H,W], got {tuple(preds.shape)}")


# ------------------------------------------------------------------------------------------- functional
def psnr(preds: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0, max_db: float = 100.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, ``[N]`` (dB), computed in float64.

    .. math:: \\mathrm{PSNR} = 10 \\log_{10} \\frac{R^2}{\\frac{1}{CHW}\\sum (p - t)^2}

    Args:
        preds: ``[N,C,H,W]`` images.
        target: ``[N,C,H,W]`` reference images.
        data_range: ``R``, the range of pixel values (1 for ``[0,1]`` images).
        max_db: value returned for identical images (the formula gives ``+inf``).
    """
    _check_pair(preds, target)
    if data_range <= 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    mse = (preds.double() - target.double()).pow(2).flatten(1).mean(1)
    out = 10.0 * torch.log10(data_range**2 / mse)
    return out.clamp(max=max_db).nan_to_num(nan=max_db, posinf=max_db)


def _gaussian_kernel(size: int, sigma: float, channels: int, dtype: torch.dtype, device) -> torch.Tensor:
    ax = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    g = torch.exp(-(ax**2) / (2.0 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(
    preds: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    kernel_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity per image, ``[N]`` (Wang et al. 2004), computed in float64.

    .. math:: \\mathrm{SSIM}(x,y) = \\frac{(2\\mu_x\\mu_y + C_1)(2\\sigma_{xy} + C_2)}
              {(\\mu_x^2+\\mu_y^2+C_1)(\\sigma_x^2+\\sigma_y^2+C_2)}

    with Gaussian-weighted local statistics (window ``kernel_size``, ``sigma``), averaged over the valid
    region, then over channels. Differentiable (used by the IMPRESS purifier).

    Raises:
        ValueError: images smaller than the window, an even window, or a non-positive data range.
    """
    _check_pair(preds, target)
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if data_range <= 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    if min(preds.shape[-2:]) < kernel_size:
        raise ValueError(f"images of size {tuple(preds.shape[-2:])} are smaller than the SSIM window {kernel_size}")
    dtype = torch.float64 if preds.device.type != "mps" else torch.float32
    p, t = preds.to(dtype), target.to(dtype)
    c = p.shape[1]
    w = _gaussian_kernel(kernel_size, sigma, c, dtype, p.device)
    mu_p, mu_t = F.conv2d(p, w, groups=c), F.conv2d(t, w, groups=c)
    s_pp = F.conv2d(p * p, w, groups=c) - mu_p**2
    s_tt = F.conv2d(t * t, w, groups=c) - mu_t**2
    s_pt = F.conv2d(p * t, w, groups=c) - mu_p * mu_t
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    smap = ((2 * mu_p * mu_t + c1) * (2 * s_pt + c2)) / ((mu_p**2 + mu_t**2 + c1) * (s_pp + s_tt + c2))
    return smap.flatten(1).mean(1)


def embed_dist(embedder: Any, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``embed-dist`` per image: ``1 - cos(e(preds), e(target))`` with ``embedder.embed_images`` (unit vectors)."""
    _check_pair(preds, target)
    with torch.no_grad():
        a = embedder.embed_images(preds.to(embedder.device).float())
        b = embedder.embed_images(target.to(embedder.device).float())
    return (1.0 - (a * b).sum(-1)).clamp_min(0.0).double().cpu()  # clamp: round-off can give -1e-7


def embed_clip_score(embedder: Any, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
    """``embed-clip-score`` per image: ``cos(e(image_i), e(text_i))`` on zoo:embed (not CLIP)."""
    if images.ndim != 4 or len(texts) != images.shape[0]:
        raise ValueError(f"need one text per image, got {len(texts)} texts for {tuple(images.shape)}")
    with torch.no_grad():
        a = embedder.embed_images(images.to(embedder.device).float())
        b = embedder.embed_texts(list(texts)).to(a.device)
    return (a * b).sum(-1).double().cpu()


def frechet_distance(feats_a: np.ndarray | torch.Tensor, feats_b: np.ndarray | torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets ``[N,D]`` and ``[M,D]`` (FID's formula).

    .. math:: d^2 = \\lVert\\mu_a-\\mu_b\\rVert^2 + \\mathrm{Tr}\\,\\Sigma_a + \\mathrm{Tr}\\,\\Sigma_b
              - 2\\,\\mathrm{Tr}\\big(\\Sigma_a\\Sigma_b\\big)^{1/2}

    Covariances are unbiased (``N-1``). The trace of the matrix square root is computed exactly without a
    ``D x D`` square root: with centred features ``A`` and ``B``, :math:`\\Sigma_a\\Sigma_b` has the non-zero
    eigenvalues of :math:`MM^\\top`, :math:`M = AB^\\top/\\sqrt{(N-1)(M-1)}`, so
    :math:`\\mathrm{Tr}(\\Sigma_a\\Sigma_b)^{1/2} = \\lVert M\\rVert_*` (the sum of its singular values).
    This equals the usual ``scipy.linalg.sqrtm`` route (tested) and costs ``O(NMD)``. Needs >= 2 samples per set.
    """
    a = np.asarray(feats_a.detach().cpu() if isinstance(feats_a, torch.Tensor) else feats_a, dtype=np.float64)
    b = np.asarray(feats_b.detach().cpu() if isinstance(feats_b, torch.Tensor) else feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be [N,D] and [M,D], got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"the Frechet distance needs >= 2 samples per set, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = a - mu_a, b - mu_b
    na, nb = len(a) - 1, len(b) - 1
    tr_a, tr_b = float((ca**2).sum() / na), float((cb**2).sum() / nb)
    cross = (ca @ cb.T) / np.sqrt(na * nb)
    tr_sqrt = float(np.linalg.svd(cross, compute_uv=False).sum())
    d2 = float(((mu_a - mu_b) ** 2).sum()) + tr_a + tr_b - 2.0 * tr_sqrt
    return max(d2, 0.0)


# ---------------------------------------------------------------------------------------------- objects
class _PerImageMetric:
    """Accumulates per-image values; ``compute()`` is their mean (torchmetrics' ``reduction='elementwise_mean'``)."""

    name: str = ""
    higher_is_better: bool = True

    def __init__(self) -> None:
        self._values: list[torch.Tensor] = []

    def _score(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self._values.append(self._score(preds, target).detach().double().cpu())

    @property
    def values(self) -> torch.Tensor:
        """All per-image values seen since the last reset, ``[N]``."""
        return torch.cat(self._values) if self._values else torch.zeros(0, dtype=torch.float64)

    def compute(self) -> torch.Tensor:
        if not self._values:
            raise RuntimeError(f"{type(self).__name__}.compute() called before update()")
        return self.values.mean()

    def reset(self) -> None:
        self._values = []

    def __call__(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Score one batch (and accumulate it), like torchmetrics' ``forward``."""
        v = self._score(preds, target).detach().double().cpu()
        self._values.append(v)
        return v.mean()


class PSNR(_PerImageMetric):
    """PSNR object (see :func:`psnr`); higher is better (closer images)."""

    name = "psnr"
    higher_is_better = True

    def __init__(self, data_range: float = 1.0, max_db: float = 100.0) -> None:
        super().__init__()
        if data_range <= 0:
            raise ValueError(f"data_range must be > 0, got {data_range}")
        self.data_range, self.max_db = data_range, max_db

    def _score(self, preds, target):
        return psnr(preds, target, data_range=self.data_range, max_db=self.max_db)


class SSIM(_PerImageMetric):
    """SSIM object (see :func:`ssim`); higher is better (closer images)."""

    name = "ssim"
    higher_is_better = True

    def __init__(self, data_range: float = 1.0, kernel_size: int = 11, sigma: float = 1.5) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.data_range, self.kernel_size, self.sigma = data_range, kernel_size, sigma

    def _score(self, preds, target):
        return ssim(preds, target, data_range=self.data_range, kernel_size=self.kernel_size, sigma=self.sigma)


class EmbedDistance(_PerImageMetric):
    """``embed-dist`` object (zoo:embed stand-in for LPIPS; not LPIPS); lower = closer images."""

    name = "embed-dist"
    higher_is_better = False

    def __init__(self, embedder: Any) -> None:
        super().__init__()
        self.embedder = embedder

    def _score(self, preds, target):
        return embed_dist(self.embedder, preds, target)


class EmbedCLIPScore:
    """``embed-clip-score`` object: mean image-text cosine on zoo:embed (a stand-in, not CLIP score)."""

    name = "embed-clip-score"
    higher_is_better = True

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self._values: list[torch.Tensor] = []

    def update(self, images: torch.Tensor, texts: Sequence[str]) -> None:
        self._values.append(embed_clip_score(self.embedder, images, texts))

    def compute(self) -> torch.Tensor:
        if not self._values:
            raise RuntimeError("EmbedCLIPScore.compute() called before update()")
        return torch.cat(self._values).mean()

    def reset(self) -> None:
        self._values = []


class EmbedFID:
    """``embed-fid`` object: Frechet distance of zoo:embed features (FID's formula; not FID); lower = closer sets.

    ``update(images, real=True|False)`` as torchmetrics' ``FrechetInceptionDistance``; ``update_features``
    takes precomputed features (the runner stores them in ``results.jsonl``).
    """

    name = "embed-fid"
    higher_is_better = False

    def __init__(self, embedder: Any | None = None) -> None:
        self.embedder = embedder
        self._real: list[torch.Tensor] = []
        self._fake: list[torch.Tensor] = []

    def update(self, images: torch.Tensor, real: bool) -> None:
        if self.embedder is None:
            raise ValueError("EmbedFID.update needs an embedder; use update_features for precomputed features")
        with torch.no_grad():
            f = self.embedder.embed_images(images.to(self.embedder.device).float()).double().cpu()
        self.update_features(f, real)

    def update_features(self, feats: torch.Tensor, real: bool) -> None:
        (self._real if real else self._fake).append(torch.as_tensor(feats, dtype=torch.float64).reshape(len(feats), -1))

    def compute(self) -> torch.Tensor:
        if not self._real or not self._fake:
            raise RuntimeError("EmbedFID.compute() needs real and fake features")
        return torch.tensor(frechet_distance(torch.cat(self._real), torch.cat(self._fake)), dtype=torch.float64)

    def reset(self) -> None:
        self._real, self._fake = [], []


# ------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class MetricInfo:
    """A metric the runner can report.

    Attributes:
        name: the name it is reported under.
        higher_is_better: direction of the metric itself (similarity vs distance).
        kind: ``pair`` (image vs reference image), ``text`` (image vs prompt) or ``set`` (two image sets).
        stands_in_for: the standard metric it approximates (``None`` for the real thing).
        description: one line for reports.
    """

    name: str
    higher_is_better: bool
    kind: str
    stands_in_for: str | None
    description: str

    @property
    def protection_arrow(self) -> str:
        """Arrow for *stronger protection* when comparing edit(protected) with edit(clean).

        A protection succeeds when the edit of the protected image is far from the edit of the clean
        one: low similarity (PSNR, SSIM, clip score) or high distance (embed-dist, FID)."""
        return "↓" if self.higher_is_better else "↑"


METRICS: dict[str, MetricInfo] = {
    "psnr": MetricInfo("psnr", True, "pair", None, "PSNR in dB (data range 1)"),
    "ssim": MetricInfo("ssim", True, "pair", None, "SSIM, Gaussian window 11, sigma 1.5"),
    "embed-dist": MetricInfo("embed-dist", False, "pair", "lpips",
                             "1 - cosine of zoo:embed image embeddings (LPIPS stand-in, not LPIPS)"),
    "embed-fid": MetricInfo("embed-fid", False, "set", "fid",
                            "Frechet distance of zoo:embed image features (FID stand-in, not FID)"),
    "embed-clip-score": MetricInfo("embed-clip-score", True, "text", "clip-score",
                                   "cosine of zoo:embed image and prompt embeddings (CLIP-score stand-in, not CLIP)"),
    "lpips": MetricInfo("lpips", False, "pair", None, "LPIPS (AlexNet), lpips package"),
    "fid": MetricInfo("fid", False, "set", None, "FID (Inception-v3 pool features), torchmetrics"),
    "clip-score": MetricInfo("clip-score", True, "text", None, "CLIP score (cosine, openai/clip-vit-base-patch32)"),
}
STANDARD_METRICS = ("lpips", "fid", "clip-score")
CLIP_MODEL_ID = "openai/clip-vit-base-patch32"


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def standard_metric_status(clip_model: str = CLIP_MODEL_ID) -> dict[str, dict[str, Any]]:
    """Whether LPIPS, FID and CLIP score can be computed on this machine, and why not.

    Returns ``{name: {"available": bool, "reason": str, "stand_in": str}}``. Nothing is downloaded:
    weights must already be on disk (torch hub cache for LPIPS/FID, Hugging Face cache for CLIP).
    """
    out: dict[str, dict[str, Any]] = {}
    tv = _has("torchvision")
    if not _has("lpips"):
        reason = "the lpips package is not installed (pip install 'latentguard[metrics]')"
    elif not tv:
        reason = "lpips needs torchvision (AlexNet backbone), which is not installed"
    else:
        reason = _torch_hub_weights_reason("alexnet")
    out["lpips"] = {"available": reason == "", "reason": reason or "lpips + cached AlexNet weights", "stand_in": "embed-dist"}
    if not _has("torchmetrics"):
        reason = "torchmetrics is not installed (pip install 'latentguard[metrics]')"
    elif not (_has("torch_fidelity") or tv):
        reason = "torchmetrics' FID needs torch-fidelity (Inception-v3 weights), which is not installed"
    else:
        reason = _torch_hub_weights_reason("inception")
    out["fid"] = {"available": reason == "", "reason": reason or "torchmetrics FID + cached Inception weights", "stand_in": "embed-fid"}
    reason = _hf_cached_reason(clip_model)
    out["clip-score"] = {"available": reason == "", "reason": reason or f"{clip_model} in the Hugging Face cache",
                         "stand_in": "embed-clip-score"}
    return out


def _torch_hub_weights_reason(key: str) -> str:
    try:
        hub_dir = torch.hub.get_dir()
    except Exception:  # noqa: BLE001  pragma: no cover
        return "the torch hub cache could not be located"
    import glob
    import os

    hits = glob.glob(os.path.join(hub_dir, "checkpoints", f"*{key}*"))
    if not hits:
        return (f"no {key} weights in the torch hub cache ({hub_dir}/checkpoints) and this machine cannot download "
                "them; copy them there from a machine with internet")
    return ""


def _hf_cached_reason(model_id: str) -> str:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return "huggingface_hub is not installed"
    try:
        hit = try_to_load_from_cache(model_id, "config.json")
    except Exception as exc:  # noqa: BLE001
        return f"{model_id} could not be looked up in the Hugging Face cache ({type(exc).__name__})"
    if not isinstance(hit, str):
        return (f"{model_id} is not in the Hugging Face cache and this machine cannot download it "
                f"(huggingface-cli download {model_id} where there is internet)")
    return ""


# ----------------------------------------------------------------- standard metrics (when weights exist)
class StandardMetrics:
    """LPIPS / FID / CLIP score with the standard weights, built lazily and only when available.

    Untested here (no weights offline); each is built from its reference implementation's public API.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._lpips: Callable | None = None
        self._clip: tuple[Any, Any] | None = None

    def lpips(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self._lpips is None:
            import lpips  # type: ignore[import-not-found]

            self._lpips = lpips.LPIPS(net="alex", verbose=False).to(self.device).eval()
        with torch.no_grad():
            d = self._lpips(preds.to(self.device) * 2 - 1, target.to(self.device) * 2 - 1)
        return d.flatten().double().cpu()

    def fid(self, real: torch.Tensor, fake: torch.Tensor) -> float:
        from torchmetrics.image.fid import FrechetInceptionDistance  # type: ignore[import-not-found]

        m = FrechetInceptionDistance(feature=2048, normalize=True).to(self.device)
        m.update(real.to(self.device), real=True)
        m.update(fake.to(self.device), real=False)
        return float(m.compute())

    def clip_score(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        if self._clip is None:
            from transformers import CLIPModel, CLIPProcessor

            model = CLIPModel.from_pretrained(CLIP_MODEL_ID, local_files_only=True).to(self.device).eval()
            proc = CLIPProcessor.from_pretrained(CLIP_MODEL_ID, local_files_only=True)
            self._clip = (model, proc)
        model, proc = self._clip
        enc = proc(text=list(texts), images=[im.permute(1, 2, 0).cpu().numpy() for im in images],
                   return_tensors="pt", padding=True, do_rescale=False)
        with torch.no_grad():
            out = model(**{k: v.to(self.device) for k, v in enc.items()})
        a = F.normalize(out.image_embeds, dim=-1)
        b = F.normalize(out.text_embeds, dim=-1)
        return (a * b).sum(-1).double().cpu()

