"""Decoder pullback geometry: log-volume and per-dimension contributions (arXiv 2511.20592).

For a VAE decoder ``D: R^d -> R^P`` (latent to ``[0,1]`` pixels) and a latent ``z`` (the encoder mean
``mu(x)``), the decoder pulls the Euclidean pixel metric back to the latent space:

    G(z) = J(z)^T J(z),    J(z) = dD/dz  in R^{P x d}.

Two quantities from Rao, Qu & Moyer, *Latent Diffusion Inversion Requires Understanding the Latent Space*:

* **log-volume** (distortion) of a sample: ``sum_{i<=k} log sigma_i(J)``, the log of the volume the decoder
  gives to a unit k-cube around ``z`` along its top-k directions; top-k singular values from randomised
  subspace iteration that touches ``J`` only through Jacobian-vector and vector-Jacobian products.
* **per-dimension contribution** ``c_k = 1/2 log G_kk``, with the diagonal by Hutchinson's estimator
  ``G_kk = E_v[(J^T v)_k^2]``, ``v ~ N(0, I_P)`` in pixel space (vector-Jacobian products only).

Dimensions with the lowest ``c_k`` (bottom ``drop`` fraction per sample, default 0.4 as in the paper) are
dropped from membership-inference statistics (:func:`keep_mask`); :func:`random_keep_mask` is the control
that drops the same number of dimensions at random.

Units: ``J`` is taken with respect to the *raw* latent (``LatentVAE.encode``'s mean, before the pipeline's
``scaling_factor`` s). The UNet sees ``s * z``; there ``J`` is ``J / s``, so every ``c_k`` shifts by
``-log s`` and the log-volume by ``-k log s``: rankings and masks are unchanged. Pixels are in ``[0,1]``
(the paper's code works in ``[-1,1]``: its ``J`` is twice ours, a constant ``log 2`` shift per dimension).

Jacobian-vector products: forward-mode AD when every op of the decoder supports it, else the
double-backward identity ``J v = d/du <J^T u, v>`` (exact, linear in ``u``). Attention runs with PyTorch's
math kernel there (the fused CPU kernels have neither forward-AD nor double-backward formulas).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from latentguard.ops.runtime import randn
from latentguard.ops.state import frozen

DecodeFn = Callable[[torch.Tensor], torch.Tensor]

__all__ = [
    "PullbackConfig", "PullbackResult", "decoder_jacobian", "vjp", "jvp", "topk_singular_values",
    "log_volume", "hutchinson_diag", "per_dim_contribution", "rank_dims", "keep_mask", "random_keep_mask",
    "explicit_singular_values", "explicit_diag", "analyze_pullback", "as_decode_fn",
]


# ----------------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PullbackConfig:
    """Parameters of the pullback estimators.

    Args:
        top_k: number of singular values in the log-volume (the paper's code uses 20).
        oversample: extra random directions in the subspace iteration (accuracy of the top-k).
        power_iters: subspace (power) iterations on ``J^T J``; each costs one JVP and one VJP per direction.
        probes: Hutchinson probes ``M`` for ``diag(J^T J)``. The relative standard deviation of each diagonal
            entry is ``sqrt(2/M)`` (Gaussian probes), i.e. about ``1/sqrt(2M)`` on ``c_k``.
        drop: fraction of dimensions dropped per sample by :func:`keep_mask` (paper: 40%).
        probe_batch: how many (sample, probe) pairs go through the decoder at once.
        eps: added to ``G_kk`` and ``sigma_i`` before the log.
        jvp_mode: ``auto`` (forward AD, else double backward), ``forward`` or ``double-backward``.
    """

    top_k: int = 20
    oversample: int = 10
    power_iters: int = 2
    probes: int = 64
    drop: float = 0.4
    probe_batch: int = 64
    eps: float = 1e-12
    jvp_mode: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.top_k, int) or self.top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {self.top_k!r}")
        if not isinstance(self.oversample, int) or self.oversample < 0:
            raise ValueError(f"oversample must be a non-negative int, got {self.oversample!r}")
        if not isinstance(self.power_iters, int) or self.power_iters < 0:
            raise ValueError(f"power_iters must be a non-negative int, got {self.power_iters!r}")
        if not isinstance(self.probes, int) or self.probes < 1:
            raise ValueError(f"probes must be a positive int, got {self.probes!r}")
        if not 0.0 <= float(self.drop) < 1.0:
            raise ValueError(f"drop must be in [0, 1), got {self.drop!r}")
        if not isinstance(self.probe_batch, int) or self.probe_batch < 1:
            raise ValueError(f"probe_batch must be a positive int, got {self.probe_batch!r}")
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0, got {self.eps!r}")
        if self.jvp_mode not in ("auto", "forward", "double-backward"):
            raise ValueError(f"jvp_mode must be auto|forward|double-backward, got {self.jvp_mode!r}")


# ----------------------------------------------------------------------------------------------------
# model handling
# ----------------------------------------------------------------------------------------------------
def as_decode_fn(decoder) -> DecodeFn:
    """A ``LatentVAE`` (its ``decode``), an ``nn.Module`` or any callable ``z -> image``."""
    if hasattr(decoder, "decode") and callable(decoder.decode):
        return decoder.decode
    if callable(decoder):
        return decoder
    raise TypeError(f"decoder must be a LatentVAE, a module or a callable, got {type(decoder).__name__}")


def _modules_of(decoder) -> list[nn.Module]:
    if isinstance(decoder, nn.Module):
        return [decoder]
    owner = getattr(decoder, "__self__", None)  # a bound method, e.g. vae.decode
    return [owner] if isinstance(owner, nn.Module) else []


@contextlib.contextmanager
def _frozen(decoder) -> Iterator[None]:
    """Eval mode, no parameter gradients (:func:`latentguard.ops.state.frozen`), math attention; restored on exit."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with frozen(_modules_of(decoder)), sdpa_kernel(SDPBackend.MATH), torch.enable_grad():
        yield


def _check_latents(z: torch.Tensor) -> None:
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"latents must be a torch.Tensor, got {type(z).__name__}")
    if z.ndim < 2:
        raise ValueError(f"latents must be batched [N, ...], got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise ValueError(f"latents must be floating point, got {z.dtype}")


# ----------------------------------------------------------------------------------------------------
# matrix-free primitives (batched: sample i of z goes with direction i of u / v)
# ----------------------------------------------------------------------------------------------------
def vjp(decode: DecodeFn, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``J(z_i)^T u_i`` for every row: ``z [B, ...latent]``, ``u [B, ...image]`` -> ``[B, ...latent]``.

    One forward and one backward pass, no graph kept (``create_graph=False``). The decoder must treat
    samples independently (true for conv/GroupNorm/attention decoders; not for BatchNorm in train mode).
    """
    zz = z.detach().requires_grad_(True)
    out = decode(zz)
    (g,) = torch.autograd.grad(out, zz, grad_outputs=u.to(out.dtype), create_graph=False)
    return g.detach()


def _jvp_forward(decode: DecodeFn, z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    from torch.func import jvp as fjvp

    _, jv = fjvp(decode, (z.detach(),), (v.to(z.dtype),))
    return jv.detach()


def _jvp_double_backward(decode: DecodeFn, z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    zz = z.detach().requires_grad_(True)
    out = decode(zz)
    u = torch.zeros_like(out, requires_grad=True)
    (g,) = torch.autograd.grad(out, zz, grad_outputs=u, create_graph=True)
    (jv,) = torch.autograd.grad(g, u, grad_outputs=v.to(g.dtype))
    return jv.detach()


_FORWARD_AD_FAILED: set[int] = set()


def jvp(decode: DecodeFn, z: torch.Tensor, v: torch.Tensor, mode: str = "auto") -> torch.Tensor:
    """``J(z_i) v_i`` for every row: ``z, v [B, ...latent]`` -> ``[B, ...image]``.

    ``mode='auto'`` tries forward-mode AD and falls back (remembering it for this decoder) to the
    double-backward identity ``J v = d/du <J^T u, v>``.
    """
    if mode == "forward":
        return _jvp_forward(decode, z, v)
    if mode == "double-backward":
        return _jvp_double_backward(decode, z, v)
    key = id(getattr(decode, "__self__", decode))
    if key not in _FORWARD_AD_FAILED:
        try:
            return _jvp_forward(decode, z, v)
        except (RuntimeError, NotImplementedError):
            _FORWARD_AD_FAILED.add(key)
    return _jvp_double_backward(decode, z, v)


def _batched(fn, z_rep: torch.Tensor, w: torch.Tensor, chunk: int) -> torch.Tensor:
    outs = [fn(z_rep[i : i + chunk], w[i : i + chunk]) for i in range(0, len(z_rep), chunk)]
    return torch.cat(outs)


# ----------------------------------------------------------------------------------------------------
# estimators
# ----------------------------------------------------------------------------------------------------
def _flat_dim(z: torch.Tensor) -> int:
    return int(np.prod(z.shape[1:]))


def topk_singular_values(
    decoder,
    z: torch.Tensor,
    k: int = 20,
    *,
    oversample: int = 10,
    power_iters: int = 2,
    generator: torch.Generator | None = None,
    probe_batch: int = 64,
    jvp_mode: str = "auto",
) -> torch.Tensor:
    """Top-k singular values of ``J(z_i)`` per sample by randomised subspace iteration (matrix-free).

    With ``l = min(k + oversample, d)`` random latent directions ``Omega`` (Halko, Martinsson & Tropp 2011):
    ``Q <- orth(Omega)``; repeat ``power_iters`` times ``Q <- orth(J^T orth(J Q))``; then ``B = J Q``
    (``P x l``) and ``sigma(B)`` approximates the top singular values of ``J`` (from below; the error
    shrinks like ``(sigma_{l+1}/sigma_i)^{2 q + 1}``). Costs ``l (2 q + 1)`` JVP/VJP products per sample.

    Returns:
        ``[N, k]`` singular values, descending.
    """
    _check_latents(z)
    decode = as_decode_fn(decoder)
    n, lat_shape, d = z.shape[0], z.shape[1:], _flat_dim(z)
    if k > d:
        raise ValueError(f"k={k} exceeds the latent dimension {d}")
    l = min(k + oversample, d)
    z_rep = z.detach().repeat_interleave(l, dim=0)  # [N*l, ...]

    def apply_j(q: torch.Tensor) -> torch.Tensor:  # q [N, d, l] -> [N, P, l]
        v = q.permute(0, 2, 1).reshape(n * l, *lat_shape)
        out = _batched(lambda a, b: jvp(decode, a, b, jvp_mode), z_rep, v, probe_batch)
        return out.reshape(n, l, -1).permute(0, 2, 1)

    def apply_jt(y: torch.Tensor) -> torch.Tensor:  # y [N, P, l] -> [N, d, l]
        u = y.permute(0, 2, 1).reshape(n * l, *out_shape)
        out = _batched(lambda a, b: vjp(decode, a, b), z_rep, u, probe_batch)
        return out.reshape(n, l, d).permute(0, 2, 1)

    with _frozen(decoder):
        out_shape = decode(z[:1].detach()).shape[1:]
        omega = randn((n, d, l), generator, z.device)
        q = torch.linalg.qr(omega.to(z.dtype)).Q
        for _ in range(power_iters):
            y = torch.linalg.qr(apply_j(q)).Q
            q = torch.linalg.qr(apply_jt(y)).Q
        b = apply_j(q)
    s = torch.linalg.svdvals(b.double()).to(z.dtype)  # [N, l], descending
    return s[:, :k]


def log_volume(singular_values: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``sum_i log(sigma_i + eps)`` over the last dim: the per-sample decoder log-volume."""
    return torch.log(singular_values.clamp_min(0) + eps).sum(-1)


def hutchinson_diag(
    decoder,
    z: torch.Tensor,
    probes: int = 64,
    *,
    generator: torch.Generator | None = None,
    probe_batch: int = 64,
) -> torch.Tensor:
    """Hutchinson estimate of ``diag(J^T J)`` per sample: ``mean_m (J^T v_m)^2``, ``v_m ~ N(0, I_P)``.

    Unbiased: ``E[(J^T v)_k^2] = sum_p J_pk^2 = (J^T J)_kk``. Vector-Jacobian products only.

    Returns:
        ``[N, d]`` (latent flattened in ``C, H, W`` order).
    """
    _check_latents(z)
    decode = as_decode_fn(decoder)
    n, d = z.shape[0], _flat_dim(z)
    with _frozen(decoder):
        out_shape = decode(z[:1].detach()).shape[1:]
        z_rep = z.detach().repeat_interleave(probes, dim=0)
        v = randn((n * probes, *out_shape), generator, z.device)
        g = _batched(lambda a, b: vjp(decode, a, b), z_rep, v.to(z.dtype), probe_batch)
    return g.reshape(n, probes, d).pow(2).mean(1)


def per_dim_contribution(diag: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``c_k = 1/2 log(G_kk + eps)`` from the diagonal of the pullback metric."""
    return 0.5 * torch.log(diag.clamp_min(0) + eps)


def rank_dims(contrib: torch.Tensor | np.ndarray) -> np.ndarray:
    """Latent dimensions per sample ordered from the highest to the lowest contribution ``[N, d]``."""
    c = np.asarray(contrib.detach().cpu() if isinstance(contrib, torch.Tensor) else contrib)
    return np.argsort(-c, axis=-1, kind="stable")


def keep_mask(contrib: torch.Tensor | np.ndarray, drop: float = 0.4) -> np.ndarray:
    """Boolean ``[N, d]`` mask keeping, per sample, the dims strictly above its ``drop`` quantile of ``c``.

    ``drop=0`` keeps every dimension. As in the paper, the threshold is the per-sample percentile
    (linear interpolation), so about ``(1 - drop) d`` dims are kept.
    """
    if not 0.0 <= drop < 1.0:
        raise ValueError(f"drop must be in [0, 1), got {drop!r}")
    c = np.asarray(contrib.detach().cpu() if isinstance(contrib, torch.Tensor) else contrib, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"contrib must be [N, d], got shape {c.shape}")
    if drop == 0.0:
        return np.ones_like(c, dtype=bool)
    thr = np.percentile(c, 100.0 * drop, axis=1, keepdims=True)
    return c > thr


def random_keep_mask(n: int, d: int, drop: float = 0.4, seed: int = 0) -> np.ndarray:
    """The control: per sample, drop ``floor(drop * d)`` dimensions chosen uniformly at random."""
    if not 0.0 <= drop < 1.0:
        raise ValueError(f"drop must be in [0, 1), got {drop!r}")
    if n < 0 or d < 1:
        raise ValueError(f"need n >= 0 and d >= 1, got n={n}, d={d}")
    rng = np.random.default_rng(seed)
    n_drop = int(math.floor(drop * d))
    mask = np.ones((n, d), dtype=bool)
    for i in range(n):
        mask[i, rng.choice(d, n_drop, replace=False)] = False
    return mask


# ----------------------------------------------------------------------------------------------------
# explicit path (tiny latents; the reference for the tests)
# ----------------------------------------------------------------------------------------------------
def decoder_jacobian(decoder, z: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """The explicit Jacobian ``[N, P, d]`` via ``P`` vector-Jacobian products with pixel basis vectors.

    Memory ``N * P * d``: meant for tiny latents (tests, diagnostics), not for SD-sized images.
    """
    _check_latents(z)
    decode = as_decode_fn(decoder)
    n, d = z.shape[0], _flat_dim(z)
    rows = []
    with _frozen(decoder):
        out_shape = decode(z[:1].detach()).shape[1:]
        p = int(np.prod(out_shape))
        eye = torch.eye(p, device=z.device, dtype=z.dtype)
        for i in range(n):
            zi = z[i : i + 1].detach().expand(p, *z.shape[1:])
            g = _batched(lambda a, b: vjp(decode, a, b), zi, eye.reshape(p, *out_shape), chunk)
            rows.append(g.reshape(p, d))
    return torch.stack(rows)


def explicit_singular_values(jac: torch.Tensor) -> torch.Tensor:
    """All singular values ``[N, min(P, d)]`` of an explicit Jacobian, descending."""
    return torch.linalg.svdvals(jac.double()).to(jac.dtype)


def explicit_diag(jac: torch.Tensor) -> torch.Tensor:
    """Exact ``diag(J^T J)`` ``[N, d]``: column squared norms."""
    return jac.pow(2).sum(1)


# ----------------------------------------------------------------------------------------------------
# one call for a VAE and images
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PullbackResult:
    """Per-sample pullback geometry. Tensors on the CPU.

    Attributes:
        latents: encoder means ``[N, C, h, w]`` (raw, before the scaling factor).
        singular_values: top-k singular values of ``J`` ``[N, k]``.
        log_volume: ``sum log sigma_i`` ``[N]``.
        diag: Hutchinson ``diag(J^T J)`` ``[N, d]``.
        contrib: ``c_k = 1/2 log diag`` ``[N, d]``.
        keep: boolean keep-mask at ``config.drop`` ``[N, d]`` (numpy).
    """

    latents: torch.Tensor
    singular_values: torch.Tensor
    log_volume: torch.Tensor
    diag: torch.Tensor
    contrib: torch.Tensor
    keep: np.ndarray


def analyze_pullback(
    vae,
    images: torch.Tensor | None = None,
    *,
    latents: torch.Tensor | None = None,
    config: PullbackConfig | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> PullbackResult:
    """Log-volume, per-dim contributions and keep-masks of ``vae``'s decoder at the encoder means.

    Args:
        vae: a ``LatentVAE`` (``encode`` / ``decode``).
        images: ``[N,3,H,W]`` in ``[0,1]`` (encoded to their posterior mean); or give ``latents``.
        latents: raw latents ``[N, C, h, w]`` instead of images.
        config: estimator parameters.
        generator: seeds the random directions and probes.
        batch_size: samples per estimator call.
        progress: a tqdm bar on stderr.
    """
    cfg = config or PullbackConfig()
    if (images is None) == (latents is None):
        raise ValueError("give exactly one of images or latents")
    if latents is None:
        with torch.no_grad():
            chunks = [vae.encode(images[i : i + batch_size].to(vae.device))[0] for i in range(0, len(images), batch_size)]
        latents = torch.cat(chunks)
    latents = latents.detach().to(vae.device if hasattr(vae, "device") else latents.device)
    from tqdm.auto import tqdm

    sv, dg = [], []
    it = range(0, len(latents), batch_size)
    for i in tqdm(it, desc="pullback", disable=not progress, unit="batch"):
        zb = latents[i : i + batch_size]
        sv.append(topk_singular_values(vae, zb, cfg.top_k, oversample=cfg.oversample, power_iters=cfg.power_iters,
                                       generator=generator, probe_batch=cfg.probe_batch, jvp_mode=cfg.jvp_mode).cpu())
        dg.append(hutchinson_diag(vae, zb, cfg.probes, generator=generator, probe_batch=cfg.probe_batch).cpu())
    s = torch.cat(sv)
    diag = torch.cat(dg)
    contrib = per_dim_contribution(diag, cfg.eps)
    return PullbackResult(
        latents=latents.cpu(), singular_values=s, log_volume=log_volume(s, cfg.eps), diag=diag,
        contrib=contrib, keep=keep_mask(contrib, cfg.drop),
    )
