"""A uniform VAE interface over diffusers' ``AutoencoderKL`` (and anything alike).

Every capability talks to a VAE through :class:`LatentVAE`:

* ``encode(x) -> (mean, logvar)``: ``x`` in ``[0,1]``, ``[N,3,H,W]``. The raw posterior of the model
  (before the pipeline's latent ``scaling_factor``), as PCA and the privacy metrics need the distribution.
* ``decode(z) -> x``: ``z`` a raw latent (same space as ``mean``), output in ``[0,1]`` (not clamped, so
  gradients flow; call ``.clamp(0, 1)`` for images).

The model's own ``[-1,1]`` convention stays inside this wrapper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class VAEInfo:
    """What a caller may need to know about a VAE."""

    spec: str
    latent_channels: int
    downsample_factor: int
    scaling_factor: float
    shift_factor: float


class LatentVAE(nn.Module):
    """Wraps a diffusers ``AutoencoderKL`` with a posterior-first, ``[0,1]``-image interface.

    Args:
        model: a diffusers ``AutoencoderKL`` (or a module with the same ``encode``/``decode`` API).
        spec: where it came from (hub id, folder or ``zoo:NAME``), recorded in manifests.
    """

    def __init__(self, model: nn.Module, spec: str = "<in-memory>") -> None:
        super().__init__()
        self.model = model
        self.spec = spec
        cfg = model.config
        n_down = len(cfg.block_out_channels) - 1
        self.info = VAEInfo(
            spec=spec,
            latent_channels=int(cfg.latent_channels),
            downsample_factor=2**n_down,
            scaling_factor=float(getattr(cfg, "scaling_factor", 1.0) or 1.0),
            shift_factor=float(getattr(cfg, "shift_factor", 0.0) or 0.0),
        )

    # --- properties -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def encoder_modules(self) -> list[nn.Module]:
        """The modules that map images to the posterior (what SRL-VAE fine-tunes)."""
        mods = [self.model.encoder]
        if getattr(self.model, "quant_conv", None) is not None:
            mods.append(self.model.quant_conv)
        return mods

    @property
    def decoder_modules(self) -> list[nn.Module]:
        """The modules that map latents to images (kept frozen by SRL-VAE)."""
        mods = [self.model.decoder]
        if getattr(self.model, "post_quant_conv", None) is not None:
            mods.append(self.model.post_quant_conv)
        return mods

    # --- the posterior interface ------------------------------------------------------------------
    def _check_images(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"images must have shape [N,3,H,W], got {tuple(x.shape)}")
        f = self.info.downsample_factor
        if x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(
                f"image size {tuple(x.shape[-2:])} is not a multiple of the VAE's factor {f}; "
                "pad it first (latentguard.models.pad_to_multiple)"
            )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``q(z|x) = N(mean, diag(exp(logvar)))`` of images ``x`` in ``[0,1]``."""
        self._check_images(x)
        h = self.model.encoder(x.to(self.dtype) * 2.0 - 1.0)
        if getattr(self.model, "quant_conv", None) is not None:
            h = self.model.quant_conv(h)
        mean, logvar = torch.chunk(h, 2, dim=1)
        # diffusers clamps logvar to [-30, 20] in DiagonalGaussianDistribution; keep the same numerics.
        logvar = torch.clamp(logvar, -30.0, 20.0)
        return mean, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decode a raw latent to an image in ``[0,1]`` (unclamped)."""
        if getattr(self.model, "post_quant_conv", None) is not None:
            z = self.model.post_quant_conv(z.to(self.dtype))
        out = self.model.decoder(z.to(self.dtype))
        return (out + 1.0) / 2.0

    def sample(self, mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised sample ``mean + exp(logvar/2) * eps``."""
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * eps

    def reconstruct(self, x: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """``D(E(x))`` with the posterior mean (default) or a sampled latent, clamped to ``[0,1]``."""
        mean, logvar = self.encode(x)
        z = self.sample(mean, logvar, generator) if sample else mean
        return self.decode(z).clamp(0.0, 1.0)

    def to_pipeline_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent -> the scaled latent a diffusion UNet sees."""
        return (z - self.info.shift_factor) * self.info.scaling_factor

    def from_pipeline_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled UNet latent -> raw latent."""
        return z / self.info.scaling_factor + self.info.shift_factor

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - alias
        return self.encode(x)

    def save_pretrained(self, path: str) -> None:
        """Save as a diffusers ``AutoencoderKL`` folder (safetensors + config.json)."""
        self.model.save_pretrained(path, safe_serialization=True)
