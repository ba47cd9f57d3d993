"""Training crops for SRL-VAE (and the zoo recipes): seeded random crops (random scales, flips) of a folder of images.

The sampler's state (a CPU ``torch.Generator``) is part of every checkpoint, so an interrupted run
resumes with exactly the crops it would have drawn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from latentguard.io import collect_inputs, load_image

DEFAULT_SCALES = (1.0, 0.5, 0.35, 0.25, 0.18, 0.12)


class ImageCrops:
    """Random ``crop x crop`` patches of images at random scales, with horizontal flips.

    Args:
        images: a folder, a list of image files, or a list of ``[3,H,W]`` / ``[1,3,H,W]`` tensors in [0,1].
        crop: patch size in pixels.
        seed: seed of the sampler.
        scales: resize factors applied to every image (an image smaller than ``crop`` at a scale is
            enlarged to ``crop``); the zoo VAEs were trained with :data:`DEFAULT_SCALES`.
        floor_sizes: round scaled sizes down instead of to the nearest pixel (the zoo VAE recipes'
            convention, kept so that their bundled builds repeat exactly).
        levels: a dict shared by samplers built on the same ``images`` (e.g. one per crop size): each
            resized image is computed and held once instead of once per sampler. Crops are unchanged.
    """

    def __init__(self, images: str | os.PathLike | Sequence, crop: int, seed: int = 0,
                 scales: Sequence[float] = DEFAULT_SCALES, *, floor_sizes: bool = False,
                 levels: dict | None = None) -> None:
        from PIL import Image

        if not isinstance(crop, int) or crop < 8:
            raise ValueError(f"crop must be an int >= 8, got {crop!r}")
        if not scales or any((not isinstance(s, (int, float))) or s <= 0 or s > 1 for s in scales):
            raise ValueError(f"scales must be a non-empty list of numbers in (0, 1], got {scales!r}")
        arrays = self._load(images)
        self.crop = crop
        self.sources = len(arrays)
        self.pyramid: list[torch.Tensor] = []
        size = int if floor_sizes else round
        levels = {} if levels is None else levels
        for i, arr in enumerate(arrays):
            im = Image.fromarray(arr)
            for s in scales:
                w, h = max(crop, size(im.width * s)), max(crop, size(im.height * s))
                if (i, w, h) not in levels:
                    small = np.asarray(im.resize((w, h), Image.Resampling.LANCZOS)) if (w, h) != im.size else arr
                    levels[i, w, h] = torch.from_numpy(np.array(small, dtype=np.uint8, copy=True)).permute(2, 0, 1)
                self.pyramid.append(levels[i, w, h])
        self.generator = torch.Generator().manual_seed(int(seed))

    @staticmethod
    def _load(images) -> list[np.ndarray]:
        if isinstance(images, (str, os.PathLike)):
            folder = Path(images)
            if not folder.is_dir():
                raise FileNotFoundError(f"data folder {str(folder)!r} does not exist")

            images = collect_inputs([folder], recursive=True)
            if not images:
                raise ValueError(f"data folder {str(folder)!r} holds no images (png/jpg/webp/...)")
        out = []
        for item in images:
            if isinstance(item, torch.Tensor):
                t = item[0] if item.ndim == 4 else item
                if t.ndim != 3 or t.shape[0] != 3:
                    raise ValueError(f"image tensors must be [3,H,W] or [1,3,H,W], got {tuple(item.shape)}")
                out.append((t.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy())
            elif isinstance(item, np.ndarray):
                if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8:
                    raise ValueError(f"image arrays must be uint8 HxWx3, got {item.dtype} {item.shape}")
                out.append(item)
            else:
                t = load_image(item)[0]
                out.append((t * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
        if not out:
            raise ValueError("no training images were given")
        return out

    def batch(self, n: int) -> torch.Tensor:
        """``n`` random crops as a float tensor ``[n,3,crop,crop]`` in [0,1] (CPU)."""
        g = self.generator
        out = torch.empty(n, 3, self.crop, self.crop, dtype=torch.uint8)
        idx = torch.randint(len(self.pyramid), (n,), generator=g)
        for i, k in enumerate(idx.tolist()):
            im = self.pyramid[k]
            y = int(torch.randint(im.shape[1] - self.crop + 1, (1,), generator=g))
            x = int(torch.randint(im.shape[2] - self.crop + 1, (1,), generator=g))
            c = im[:, y : y + self.crop, x : x + self.crop]
            if float(torch.rand(1, generator=g)) < 0.5:
                c = c.flip(-1)
            out[i] = c
        return out.float() / 255.0

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
