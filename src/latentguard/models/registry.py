"""The bundled model zoo's registry: each ``zoo:NAME`` spec, its kind, and the folder of its weights.

The weights and the cards stay package data of :mod:`latentguard.zoo` (``src/latentguard/zoo/weights/NAME``,
``src/latentguard/zoo/cards/NAME.md``); this module only computes their paths, so the loaders of
:mod:`latentguard.models` resolve ``zoo:NAME`` without importing anything above them. No torch here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ZOO_PREFIX = "zoo:"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    kind: str  # vae | t2i (text-conditional LDM) | ldm (unconditional photo LDM: prompt "") | embed | protector
    summary: str
    vae: str | None = None  # diffusion models (t2i, ldm) reuse a zoo VAE instead of carrying a copy


ENTRIES: dict[str, ZooEntry] = {
    "vae-a": ZooEntry("vae-a", "vae", "KL-VAE (SD family, f=4, 4 latent ch, fully convolutional) trained on 27 photos (12 nature + 15 lomiri wallpapers)"),
    "vae-b": ZooEntry("vae-b", "vae", "KL-VAE of another architecture and seed (f=4, wider, 2 layers/block, no attention), other photos"),
    "vae-a-srl": ZooEntry("vae-a-srl", "vae", "vae-a hardened by SRL-VAE (encoder fine-tuned, decoder frozen)"),
    "t2i": ZooEntry("t2i", "t2i", "text-conditional latent diffusion on Fashion-MNIST (vae-a latents, frozen MiniLM text)", vae="vae-a"),
    "t2i-members": ZooEntry("t2i-members", "t2i", "t2i trained long on a declared 500-image member split (MIA target)", vae="vae-a"),
    "t2i-members-ft": ZooEntry("t2i-members-ft", "t2i", "zoo:t2i fine-tuned ~100 epochs on the declared 500-image member split (a realistically memorised MIA target)", vae="vae-a"),
    "ldm-photo": ZooEntry("ldm-photo", "ldm", "unconditional latent diffusion of natural photos (vae-a latents, 64/128 px crops of 31 licensed photos; prompt \"\"): the photo editor", vae="vae-a"),
    "embed": ZooEntry("embed", "embed", "CLIP-like image-text embedder (conv image tower, frozen MiniLM + projection)"),
    "protector-a": ZooEntry("protector-a", "protector", "feed-forward protector (small conv U-Net, eps*tanh) trained on pca+ against vae-a only: `protect --method fast`"),
}


# The zoo package's folder (src/latentguard/zoo/), where the weights and cards are shipped as package data.
ZOO_PACKAGE_DIR = Path(__file__).parent.parent / "zoo"


def weights_root() -> Path:
    """Folder of the bundled weights (``LATENTGUARD_ZOO_DIR`` overrides, e.g. for freshly trained ones)."""
    env = os.environ.get("LATENTGUARD_ZOO_DIR")
    return Path(env) if env else ZOO_PACKAGE_DIR / "weights"


def cards_root() -> Path:
    """Folder of the model cards (``NAME.md``, and ``NAME.build.md`` where a build log exists)."""
    return ZOO_PACKAGE_DIR / "cards"


def get_entry(name: str) -> ZooEntry:
    if name.startswith(ZOO_PREFIX):
        name = name[len(ZOO_PREFIX):]
    try:
        return ENTRIES[name]
    except KeyError:
        raise ValueError(f"unknown zoo model {name!r}; available: {', '.join(ENTRIES)}") from None


def model_dir(name: str) -> Path:
    """The folder of a zoo model's weights; a clear error when they are not built yet."""
    entry = get_entry(name)
    path = weights_root() / entry.name
    if not path.is_dir():
        raise FileNotFoundError(
            f"zoo model {entry.name!r} has no weights at {path}; rebuild it with `latentguard zoo train {entry.name}`"
        )
    return path


# Kinds that assemble into a diffusers Stable Diffusion pipeline (UNet + scheduler + the zoo VAE + text tower).
PIPELINE_KINDS = ("t2i", "ldm")


def available() -> list[str]:
    return [n for n in ENTRIES if (weights_root() / n).is_dir()]
