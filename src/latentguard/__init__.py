"""latentguard: security and privacy toolkit for latent diffusion models.

Four capabilities over one core:

* ``latentguard.protect``  adversarial protections on the VAE encoder (PCA+/PCA-, PhotoGuard, AdvDM, ...)
* ``latentguard.harden``   SRL-VAE post-hoc adversarial fine-tuning of a VAE encoder
* ``latentguard.privacy``  decoder pullback geometry and membership inference
* ``latentguard.poison``   Alignment Difficulty, poisons and implosion

Images are float tensors ``[N,3,H,W]`` in ``[0,1]`` everywhere; budgets are in ``[0,1]`` pixel units.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
