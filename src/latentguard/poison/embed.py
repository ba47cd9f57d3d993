"""Image-text embedders for Alignment Difficulty.

``zoo:embed`` (the bundled CLIP-like model; its numbers are never reported as CLIP's) or a local
ZooEmbedder folder via :func:`latentguard.models.load_embedder`; ``clip:<folder or hub id>`` loads a
transformers ``CLIPModel`` when its weights are present locally (no downloads are attempted offline).
Every embedder exposes ``embed_images(x in [0,1]) -> [N,d]`` and ``embed_texts(list[str]) -> [N,d]``,
unit vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


class ClipEmbedder:
    """A transformers CLIP model behind the embedder interface (images resized to the model's input size,
    normalised with its processor's mean/std)."""

    def __init__(self, where: str, device: str | torch.device = "cpu") -> None:
        from transformers import CLIPModel, CLIPProcessor

        from latentguard.models.loading import ModelLoadError

        try:
            self.model = CLIPModel.from_pretrained(where, use_safetensors=True).eval().to(device)
            self.processor = CLIPProcessor.from_pretrained(where)
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"could not load a CLIP model from {where!r} (weights must be local when offline): "
                                 f"{str(exc).splitlines()[0]}") from exc
        ip = self.processor.image_processor
        size = ip.crop_size["height"] if isinstance(getattr(ip, "crop_size", None), dict) else 224
        self.size = int(size)
        self.mean = torch.tensor(ip.image_mean).view(1, 3, 1, 1)
        self.std = torch.tensor(ip.image_std).view(1, 3, 1, 1)
        self.config = {"image_size": self.size}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def embed_images(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x.to(self.device), size=(self.size, self.size), mode="bicubic", antialias=True,
                          align_corners=False).clamp(0, 1)
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        return F.normalize(self.model.get_image_features(pixel_values=x), dim=-1)

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        enc = self.processor.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt").to(self.device)
        return F.normalize(self.model.get_text_features(**enc), dim=-1)


def load_pair_embedder(spec: str = "zoo:embed", device: str | torch.device = "cpu"):
    """``zoo:embed`` / a ZooEmbedder folder, or ``clip:<folder or hub id>``."""
    if spec.startswith("clip:"):
        return ClipEmbedder(spec[len("clip:"):], device=device)
    from latentguard.models import load_embedder

    return load_embedder(spec, device=device)


@torch.no_grad()
def embed_pairs(embedder, images: torch.Tensor, captions: Sequence[str], *, batch_size: int = 256,
                progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit image and text embeddings ``([N,d], [N,d])`` on the CPU; identical captions are embedded once."""
    if len(images) != len(captions):
        raise ValueError(f"images ({len(images)}) and captions ({len(captions)}) must pair up")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    module = embedder if isinstance(embedder, torch.nn.Module) else getattr(embedder, "model", None)
    was_training = module.training if module is not None else None
    if module is not None:
        module.eval()
    try:
        dev = embedder.device
        starts = range(0, len(images), batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="embed images", unit="batch", leave=False)
        u = torch.cat([embedder.embed_images(images[i : i + batch_size].to(dev)).float().cpu() for i in starts])
        uniq = list(dict.fromkeys(captions))
        t = torch.cat([embedder.embed_texts(uniq[i : i + batch_size]).float().cpu()
                       for i in range(0, len(uniq), batch_size)])
        pos = {c: i for i, c in enumerate(uniq)}
        v = t[torch.tensor([pos[c] for c in captions])]
    finally:
        if module is not None and was_training:
            module.train()
    return u, v
