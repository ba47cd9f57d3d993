"""A uniform VAE interface over diffusers' ``AutoencoderKL`` (and anything alike).

Every capability talks to a VAE through :class:`LatentVAE`:

* ``encode(x) -> (mean, logvar)``: ``x`` in ``[0,1]``, ``[N,3,H,W]``. The raw posterior of the model
  (before the pipeline's latent ``scaling_factor``), as PCA and the privacy metrics need the distribution.
* ``decode(z) -> x``: ``z`` a raw latent (same space as ``mean``), output in ``[0,1]`` (not clamped, so
  gradients flow; call ``.clamp(0, 1)`` for images).

The posterior is diffusers' own: ``AutoencoderKL.encode(x).latent_dist``, a ``DiagonalGaussianDistribution``
(``.mean``, ``.logvar`` clamped to ``[-30, 20]``, ``.sample(generator)``, ``.kl()``); :meth:`LatentVAE.posterior`
returns it, :meth:`LatentVAE.encode` its mean and log-variance. The clamp (which this wrapper applied itself
before) rarely binds on the bundled VAEs: on the 8 held-out photos it binds at one latent element of 16384, of
``rocket`` at 256 px, for vae-a and vae-a-srl (raw log-variance -30.3 / -30.6); never at 64 px, never for vae-b,
and not on PCA+/PCA- protected photos (2 at 64 px on vae-a and vae-b, 1 at 256 px on vae-a). Sampling draws with
diffusers' ``randn_tensor`` (a CPU generator gives the same numbers for a CUDA latent). The model's own ``[-1,1]``
convention stays inside this wrapper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution


def kl_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""``KL(N(mean, e^logvar) || N(0, I))`` per image, **summed** over the latent elements: ``[N]``.

    .. math:: \mathrm{KL} = \tfrac12 \sum_{c,h,w} (\mu^2 + \sigma^2 - 1 - \ln\sigma^2)

    Computed by diffusers' ``DiagonalGaussianDistribution.kl()`` in float32 (whatever the latents' dtype),
    for 4-D latents ``[N,C,h,w]``. That class clamps ``logvar`` to ``[-30, 20]``, as :meth:`LatentVAE.encode`
    already has, so for encoder outputs the clamp changes nothing (a ``logvar`` given from elsewhere outside
    that range is clamped first). Reduction: a sum per sample (the KL that protect's records report); the zoo
    recipes' and SRL-VAE's training losses use the *mean* over elements instead and keep their own one-line
    formula (see ``latentguard.zoo.train.recipes._vae_photo_loss``).
    """
    # deferred: diffusers is imported only once a model is used
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    if mean.shape != logvar.shape or mean.ndim != 4:
        raise ValueError(f"mean and logvar must be [N,C,h,w] of one shape, got {tuple(mean.shape)} and "
                         f"{tuple(logvar.shape)}")
    return DiagonalGaussianDistribution(torch.cat([mean.float(), logvar.float()], dim=1)).kl()


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

    def posterior(self, x: torch.Tensor) -> DiagonalGaussianDistribution:
        """diffusers' posterior ``q(z|x)`` (``AutoencoderKL.encode(x).latent_dist``) of images ``x`` in ``[0,1]``."""
        self._check_images(x)
        return self.model.encode(x.to(self.dtype) * 2.0 - 1.0).latent_dist

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``q(z|x) = N(mean, diag(exp(logvar)))`` of images ``x`` in ``[0,1]``: ``(mean, logvar)``,
        ``logvar`` clamped to ``[-30, 20]`` by diffusers."""
        post = self.posterior(x)
        return post.mean, post.logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decode a raw latent to an image in ``[0,1]`` (unclamped)."""
        return (self.model.decode(z.to(self.dtype)).sample + 1.0) / 2.0

    def sample(self, mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised sample ``mean + exp(logvar/2) * eps`` (as ``DiagonalGaussianDistribution.sample``;
        ``eps`` from diffusers' ``randn_tensor``, so a CPU generator also serves CUDA latents)."""
        # deferred: diffusers is imported only once a model is used
        from diffusers.utils.torch_utils import randn_tensor

        eps = randn_tensor(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * eps

    def reconstruct(self, x: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """``D(E(x))`` with the posterior mean (default) or a sampled latent, clamped to ``[0,1]``."""
        post = self.posterior(x)
        z = post.sample(generator) if sample else post.mean
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
