"""Model loading: one entry point for hub ids, local diffusers folders and the bundled zoo.

The package's names are imported on first use (PEP 562), so that its torch-free modules,
:mod:`latentguard.models.registry` (the ``zoo:NAME`` -> folder registry) and
:mod:`latentguard.models.errors`, import without torch (the command line's parser needs them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, for type checkers and editors
    from latentguard.models.errors import ModelLoadError, UnsafeWeightsError
    from latentguard.models.hub import is_offline, load_from_hub, probe_hub
    from latentguard.models.loading import load_embedder, load_pipeline, load_protector, load_vae, resolve_spec
    from latentguard.models.padding import crop_back, pad_to_multiple
    from latentguard.models.vae import LatentVAE, VAEInfo, kl_standard_normal

_EXPORTS = {
    "ModelLoadError": "errors", "UnsafeWeightsError": "errors",
    "is_offline": "hub", "load_from_hub": "hub", "probe_hub": "hub",
    "load_vae": "loading", "load_pipeline": "loading", "load_embedder": "loading", "load_protector": "loading", "resolve_spec": "loading",
    "pad_to_multiple": "padding", "crop_back": "padding",
    "LatentVAE": "vae", "VAEInfo": "vae", "kl_standard_normal": "vae",
}

__all__ = [
    "LatentVAE", "VAEInfo", "ModelLoadError", "UnsafeWeightsError", "load_vae", "load_pipeline",
    "load_embedder", "load_protector", "resolve_spec", "pad_to_multiple", "crop_back", "kl_standard_normal", "is_offline",
    "load_from_hub", "probe_hub",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'latentguard.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"latentguard.models.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
