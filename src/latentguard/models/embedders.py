"""Image-text embedders behind one interface: ``embed_images(x in [0,1]) -> [N,d]`` and
``embed_texts(list[str]) -> [N,d]``, unit vectors. The bundled ``zoo:embed`` is
:class:`latentguard.zoo.embedder.ZooEmbedder`; this module holds the adapter for real CLIP models."""

from __future__ import annotations

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
