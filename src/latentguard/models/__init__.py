"""Model loading: one entry point for hub ids, local diffusers folders and the bundled zoo."""

from latentguard.models.loading import (
    ModelLoadError,
    UnsafeWeightsError,
    load_embedder,
    load_pipeline,
    load_vae,
    resolve_spec,
)
from latentguard.models.padding import crop_back, pad_to_multiple
from latentguard.models.vae import LatentVAE, VAEInfo

__all__ = [
    "LatentVAE", "VAEInfo", "ModelLoadError", "UnsafeWeightsError", "load_vae", "load_pipeline",
    "load_embedder", "resolve_spec", "pad_to_multiple", "crop_back",
]
