"""Harden: make a latent diffusion model's VAE robust to protections and poisons (SRL-VAE).

``harden(vae, data, SRLConfig(...), out_dir=...)`` fine-tunes a copy of the VAE's encoder against an
``l_inf`` reconstruction attack, keeps its latents of clean images close to the original encoder's, and
leaves the decoder bit-identical; the result is a diffusers ``AutoencoderKL`` folder that
``latentguard.models.load_vae`` and diffusers pipelines take unchanged. See ``docs/harden.md``.
"""

from latentguard.harden.artifacts import latest_checkpoint, save_hardened
from latentguard.harden.attack import adversarial_psnr, psnr, reconstruction_attack, reconstruction_objective
from latentguard.harden.config import SRLConfig
from latentguard.harden.crops import DEFAULT_SCALES, ImageCrops
from latentguard.harden.perceptual import grad_ssim_distance, perceptual_distance, ssim
from latentguard.harden.trainer import SRLResult, harden, is_clean_step

__all__ = [
    "DEFAULT_SCALES", "ImageCrops", "SRLConfig", "SRLResult", "adversarial_psnr", "grad_ssim_distance", "harden",
    "is_clean_step", "latest_checkpoint", "perceptual_distance", "psnr", "reconstruction_attack",
    "reconstruction_objective", "save_hardened", "ssim",
]
