"""``zoo:embed``: a small CLIP-like image-text embedder trained here.

Image tower: a 4-stage convolutional net (images resized to 32x32, any input size accepted) with global
average pooling. Text tower: the frozen all-MiniLM-L6-v2 sentence vector followed by a trained linear
projection. Both project to a shared L2-normalised space of ``dim`` dimensions; ``logit_scale`` is learned
as in CLIP. Used offline for alignment scores, Alignment Difficulty and clearly-labelled CLIP-score
stand-ins. It is *not* CLIP: numbers computed with it are never reported under CLIP's name.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from latentguard.zoo.text import HIDDEN, sentence_embeddings


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
        nn.GroupNorm(8, cout),
        nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.GroupNorm(8, cout),
        nn.SiLU(),
    )


class ZooEmbedder(nn.Module):
    """CLIP-like embedder. ``embed_images(x in [0,1])`` and ``embed_texts(list[str])`` return unit vectors."""

    def __init__(self, dim: int = 256, width: int = 32, image_size: int = 32) -> None:
        super().__init__()
        self.config = {"dim": dim, "width": width, "image_size": image_size}
        w = width
        self.image_tower = nn.Sequential(
            _block(3, w, 1), _block(w, 2 * w, 2), _block(2 * w, 4 * w, 2), _block(4 * w, 4 * w, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, dim),
        )
        self.text_proj = nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, dim))
        self.logit_scale = nn.Parameter(torch.tensor(float(torch.log(torch.tensor(1 / 0.07)))))

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def embed_images(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"images must have shape [N,3,H,W], got {tuple(x.shape)}")
        s = self.config["image_size"]
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        return F.normalize(self.image_tower(x * 2 - 1), dim=-1)

    def embed_text_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Project precomputed MiniLM sentence vectors ``[N,384]``."""
        return F.normalize(self.text_proj(feats), dim=-1)

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        feats = sentence_embeddings(list(texts), device=str(self.device))
        return self.embed_text_features(feats)

    def save_pretrained(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps({"class": "ZooEmbedder", **self.config}, indent=2))
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(path / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> "ZooEmbedder":
        from safetensors.torch import load_file

        path = Path(path)
        cfg = json.loads((path / "config.json").read_text())
        cfg.pop("class", None)
        model = cls(**cfg)
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        return model.eval().to(device)
