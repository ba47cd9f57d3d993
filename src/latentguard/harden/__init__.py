"""Harden: make a latent diffusion model's VAE robust to protections and poisons (SRL-VAE).

``harden(vae, data, SRLConfig(...), out_dir=...)`` fine-tunes a copy of the VAE's encoder against an
``l_inf`` reconstruction attack, keeps its latents of clean images close to the original encoder's, and
leaves the decoder bit-identical; the result is a diffusers ``AutoencoderKL`` folder that
``latentguard.models.load_vae`` and diffusers pipelines take unchanged. See ``docs/harden.md``.
"""

# Loaded on first use: these modules import torch.
from latentguard.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "latentguard.harden.artifacts": ("latest_checkpoint", "save_hardened",),
    "latentguard.harden.attack": ("adversarial_psnr", "psnr", "reconstruction_attack", "reconstruction_objective",),
    "latentguard.harden.config": ("SRLConfig",),
    "latentguard.harden.crops": ("DEFAULT_SCALES", "ImageCrops",),
    "latentguard.harden.perceptual": ("grad_ssim_distance", "perceptual_distance", "ssim",),
    "latentguard.harden.trainer": ("SRLResult", "harden", "is_clean_step",),
})
