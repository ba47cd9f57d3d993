"""The bundled sample photos (package data, ``samples/*.png``): real CC0 / public-domain photos from
scikit-image, centre-cropped to 256x256.

astronaut (NASA, public domain), coffee and chelsea (Rachel Michetti / Stefan van der Walt, CC0),
rocket (SpaceX, CC0), hubble_deep_field (NASA/ESA, public domain), motorcycle_left (Middlebury stereo,
scikit-image CC0 selection), retina (Häggström, CC0), immunohistochemistry (scikit-image, CC0).
None of them was used to train a zoo model: they are the held-out evaluation set.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from latentguard.io.images import load_image

SAMPLES_DIR = Path(__file__).parent


def sample_paths() -> list[Path]:
    """Paths of the bundled sample photos (sorted)."""
    return sorted(SAMPLES_DIR.glob("*.png"))


def sample_images(size: int = 64, n: int | None = None) -> torch.Tensor:
    """The bundled photos as ``[N,3,size,size]`` in [0,1] (antialiased resize from 256x256)."""
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    paths = sample_paths()[: n if n is not None else None]
    x = torch.cat([load_image(p) for p in paths])
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    return x


def sample_crops(size: int = 64, per_image: int = 4, seed: int = 0) -> torch.Tensor:
    """``per_image`` seeded random ``size x size`` crops of each bundled 256x256 photo, ``[N*per_image,3,size,size]``.

    The zoo's held-out crop set (``benchmarks/bench_zoo.py``, the cards' "64 px crops" figures and the tests
    that hold them) is ``sample_crops(64, 4, 0)``.
    """
    if not 8 <= size <= 256:
        raise ValueError(f"size must be in [8, 256], got {size}")
    full = sample_images(256)
    g = torch.Generator().manual_seed(seed)
    crops = []
    for im in full:
        for _ in range(per_image):
            y, x = torch.randint(0, 256 - size + 1, (2,), generator=g).tolist()
            crops.append(im[:, y : y + size, x : x + size])
    return torch.stack(crops)
