"""Shared machinery of the protections that look through the diffusion UNet (AdvDM, SDS, Mist,
PhotoGuard-diffusion): the pipeline, its text conditioning, the forward noising and a differentiable
DDIM sampler.

Conventions (those of diffusers' Stable Diffusion pipelines): the UNet sees the *scaled* latent
``z0 = scaling_factor * (E(x) - shift)`` where ``E(x)`` is a reparameterised sample of the posterior
(``latent_dist.sample()``, as SD's training and img2img use); ``z_t = sqrt(abar_t) z0 + sqrt(1-abar_t) n``
with ``abar`` the scheduler's ``alphas_cumprod``; the UNet predicts ``n`` (``epsilon``) or
``v = sqrt(abar_t) n - sqrt(1-abar_t) z0`` (``v_prediction``), per the scheduler's config.

These methods attack the pipeline's own VAE (the UNet only understands its latents): a VAE ensemble
is not accepted here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from latentguard.models import load_pipeline
from latentguard.models.vae import LatentVAE
from latentguard.ops.runtime import randint, randn
from latentguard.protect.engine import Protection, sample_posterior

PREDICTION_TYPES = ("epsilon", "v_prediction")


def _load_pipe(pipe: Any):
    if isinstance(pipe, str):
        return load_pipeline(pipe, kind="img2img")
    if not (hasattr(pipe, "unet") and hasattr(pipe, "scheduler") and hasattr(pipe, "vae")):
        raise ValueError(f"pipe must be a diffusers Stable-Diffusion pipeline or a spec string (e.g. 'zoo:t2i'), "
                         f"got {type(pipe).__name__}")
    return pipe


@dataclass(frozen=True, kw_only=True)
class DiffusionProtection(Protection):
    """Base of the UNet-based protections.

    Args:
        pipe: a diffusers Stable-Diffusion(-Img2Img) pipeline or a spec (``"zoo:t2i"``, a folder, a hub id).
        prompt: the text condition (a caption, or ``""`` for the unconditional branch).
        vae: defaults to the pipeline's VAE (a single VAE; no ensembles).
    """

    pipe: Any = field(default=None, repr=False, compare=False)
    prompt: str = ""
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pipe is None:
            raise ValueError(f"pipe is required for {self.name!r} (a Stable-Diffusion pipeline or a spec, e.g. pipe='zoo:t2i')")
        pipe = _load_pipe(self.pipe)
        object.__setattr__(self, "pipe", pipe)
        if not isinstance(self.prompt, str):
            raise ValueError(f"prompt must be a str, got {type(self.prompt).__name__}")
        if self.vae is None:
            object.__setattr__(self, "vae", LatentVAE(pipe.vae, spec=getattr(pipe, "name_or_path", "<pipeline>")))
        if isinstance(self.vae, (list, tuple)) and len(self.vae) != 1:
            raise ValueError(f"vae: {self.name!r} attacks the pipeline's own VAE; ensembles are for encoder-only methods")
        pred = pipe.scheduler.config.get("prediction_type", "epsilon")
        if pred not in PREDICTION_TYPES:
            raise ValueError(f"pipe: scheduler prediction_type {pred!r} is not supported (only {PREDICTION_TYPES})")
        super().__post_init__()

    # --- parts ------------------------------------------------------------------------------------
    @property
    def unet(self):
        return self.pipe.unet

    @property
    def prediction_type(self) -> str:
        return self.pipe.scheduler.config.get("prediction_type", "epsilon")

    @property
    def num_train_timesteps(self) -> int:
        return int(self.pipe.scheduler.config.num_train_timesteps)

    def modules(self):
        mods = list(super().modules()) + [self.unet]
        te = getattr(self.pipe, "text_encoder", None)
        if te is not None:
            mods.append(te)
        return mods

    def alphas_cumprod(self, device) -> torch.Tensor:
        key = ("abar", str(device))
        if key not in self._cache:
            self._cache[key] = self.pipe.scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)
        return self._cache[key]

    @torch.no_grad()
    def text_embeddings(self, n: int, device, prompt: str | None = None) -> torch.Tensor:
        """Prompt embeddings ``[n, L, D]`` (computed once per prompt and device)."""
        prompt = self.prompt if prompt is None else prompt
        key = ("text", prompt, str(device))
        if key not in self._cache:
            emb, _ = self.pipe.encode_prompt([prompt], device, 1, False)
            self._cache[key] = emb.detach()
        e = self._cache[key]
        return e.expand(n, *e.shape[1:])

    # --- the pieces of the objectives ---------------------------------------------------------------
    def latent(self, vae: LatentVAE, x: torch.Tensor, generator) -> torch.Tensor:
        """Scaled UNet latent of a posterior sample of ``x`` (differentiable)."""
        mean, logvar = vae.encode(x)
        return vae.to_pipeline_latent(sample_posterior(mean.float(), logvar.float(), generator))

    def unet_out(self, z_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        unet = self.unet
        out = unet(z_t.to(unet.dtype), t, encoder_hidden_states=cond.to(unet.dtype)).sample
        return out.float()

    def noise_loss(self, z0: torch.Tensor, generator, *, detach_unet: bool = False):
        """One draw of the LDM training loss ``||f_theta(z_t, t, c) - target||^2`` (mean over elements).

        Returns ``(loss [N], pred - target [N,...])``; ``t ~ U{0..T-1}``, ``n ~ N(0,I)`` per image.
        With ``detach_unet`` the UNet runs without a graph (SDS).
        """
        n = z0.shape[0]
        dev = z0.device
        t = randint(self.num_train_timesteps, (n,), generator, dev)
        noise = randn(z0.shape, generator, dev)
        abar = self.alphas_cumprod(dev)[t].view(-1, 1, 1, 1)
        z_t = abar.sqrt() * z0 + (1 - abar).sqrt() * noise
        target = noise if self.prediction_type == "epsilon" else abar.sqrt() * noise - (1 - abar).sqrt() * z0
        cond = self.text_embeddings(n, dev)
        if detach_unet:
            with torch.no_grad():
                pred = self.unet_out(z_t.detach(), t, cond)
            target = target.detach()
        else:
            pred = self.unet_out(z_t, t, cond)
        resid = pred - target
        return (resid**2).flatten(1).mean(1), resid

    def ddim_img2img(self, z0: torch.Tensor, generator, *, num_inference_steps: int, strength: float,
                     guidance_scale: float = 1.0) -> torch.Tensor:
        """Differentiable deterministic DDIM (eta=0) img2img from the scaled latent ``z0``; returns the
        denoised scaled latent. Timesteps as diffusers' img2img: the last ``int(steps*strength)`` of the
        ``num_inference_steps`` schedule (``timestep_spacing`` of the scheduler's config)."""
        from diffusers import DDIMScheduler

        dev = z0.device
        key = ("sched", num_inference_steps)
        if key not in self._cache:
            sched = DDIMScheduler.from_config(self.pipe.scheduler.config)
            sched.set_timesteps(num_inference_steps)
            self._cache[key] = sched
        sched = self._cache[key]
        init = min(int(num_inference_steps * strength), num_inference_steps)
        timesteps = sched.timesteps[num_inference_steps - init:]
        if len(timesteps) == 0:
            return z0
        abar = self.alphas_cumprod(dev)
        final = torch.tensor(float(sched.final_alpha_cumprod), device=dev)
        stride = self.num_train_timesteps // num_inference_steps
        n = z0.shape[0]
        noise = randn(z0.shape, generator, dev)
        a0 = abar[int(timesteps[0])]
        z = a0.sqrt() * z0 + (1 - a0).sqrt() * noise
        cond = self.text_embeddings(n, dev)
        uncond = self.text_embeddings(n, dev, prompt="") if guidance_scale != 1.0 else None
        for t in timesteps:
            ti = int(t)
            tt = torch.full((n,), ti, device=dev, dtype=torch.long)
            out = self.unet_out(z, tt, cond)
            if uncond is not None:
                out_u = self.unet_out(z, tt, uncond)
                out = out_u + guidance_scale * (out - out_u)
            a_t = abar[ti]
            a_prev = abar[ti - stride] if ti - stride >= 0 else final
            if self.prediction_type == "epsilon":
                eps = out
                x0 = (z - (1 - a_t).sqrt() * eps) / a_t.sqrt()
            else:
                x0 = a_t.sqrt() * z - (1 - a_t).sqrt() * out
                eps = a_t.sqrt() * out + (1 - a_t).sqrt() * z
            z = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        return z
