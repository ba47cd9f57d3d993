"""Image-text embedders behind one interface: ``embed_images(x in [0,1]) -> [N,d]`` and
``embed_texts(list[str]) -> [N,d]``, unit vectors.

* :class:`ZooEmbedder`: the bundled ``zoo:embed``, a small CLIP-like model trained here.
* :class:`ClipEmbedder`: the adapter for real CLIP models (transformers ``CLIPModel``).

This module imports diffusers at the top (``ZooEmbedder`` is a diffusers ``ModelMixin``);
:func:`latentguard.models.load_embedder` imports it only when an embedder is loaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from latentguard.core.logs import quiet_libraries
from latentguard.models.errors import ModelLoadError
from latentguard.models.hub import HUB_ID as _HUB_ID
from latentguard.models.hub import load_from_hub
from latentguard.models.text import HIDDEN, sentence_embeddings

# The weights file of folders written before ZooEmbedder was a diffusers ModelMixin (the bundled
# zoo:embed is one: config.json {"class": "ZooEmbedder", dim, width, image_size} + model.safetensors).
LEGACY_WEIGHTS_NAME = "model.safetensors"
DIFFUSERS_WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
        nn.GroupNorm(8, cout),
        nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.GroupNorm(8, cout),
        nn.SiLU(),
    )


class ZooEmbedder(ModelMixin, ConfigMixin):
    """``zoo:embed``: a small CLIP-like image-text embedder trained here.

    Image tower: a 4-stage convolutional net (images resized to ``image_size`` x ``image_size``, any input
    size accepted) with global average pooling. Text tower: the frozen all-MiniLM-L6-v2 sentence vector
    (:mod:`latentguard.models.text`) followed by a trained 2-layer projection. Both project to a shared
    L2-normalised space of ``dim`` dimensions; ``logit_scale`` is learned as in CLIP. Used offline for
    alignment scores, Alignment Difficulty and clearly-labelled CLIP-score stand-ins. It is *not* CLIP:
    numbers computed with it are never reported under CLIP's name.

    Save / load are diffusers' :meth:`save_pretrained` / :meth:`from_pretrained` (``config.json`` +
    ``diffusion_pytorch_model.safetensors``); :meth:`from_pretrained` also reads the folder format the
    bundled ``zoo:embed`` ships in (``model.safetensors``, a ``"class"`` key in ``config.json``).

    Args:
        dim: dimension of the shared embedding space.
        width: channels of the image tower's first stage (the others have 2x, 4x, 4x).
        image_size: side images are resized to (bilinear, antialiased) before the image tower.
    """

    @register_to_config
    def __init__(self, dim: int = 256, width: int = 32, image_size: int = 32) -> None:
        super().__init__()
        w = width
        self.image_tower = nn.Sequential(
            _block(3, w, 1), _block(w, 2 * w, 2), _block(2 * w, 4 * w, 2), _block(4 * w, 4 * w, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, dim),
        )
        self.text_proj = nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, dim))
        self.logit_scale = nn.Parameter(torch.tensor(float(torch.log(torch.tensor(1 / 0.07)))))

    def embed_images(self, x: torch.Tensor) -> torch.Tensor:
        """Unit image embeddings ``[N,dim]`` of images ``x`` ``[N,3,H,W]`` in [0,1]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"images must have shape [N,3,H,W], got {tuple(x.shape)}")
        s = self.config.image_size
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        return F.normalize(self.image_tower(x * 2 - 1), dim=-1)

    def embed_text_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Project precomputed MiniLM sentence vectors ``[N,384]``."""
        return F.normalize(self.text_proj(feats), dim=-1)

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Unit text embeddings ``[N,dim]`` of the prompts ``texts``."""
        feats = sentence_embeddings(list(texts), device=str(self.device))
        return self.embed_text_features(feats)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu", **kwargs) -> "ZooEmbedder":
        """Load a local folder written by :meth:`save_pretrained` (diffusers' format) or in the bundled
        ``zoo:embed``'s format (``model.safetensors``); eval mode, on ``device``. ``kwargs`` go to diffusers'
        ``ModelMixin.from_pretrained`` (diffusers-format folders only)."""
        folder = Path(path)
        if not (folder / DIFFUSERS_WEIGHTS_NAME).is_file() and (folder / LEGACY_WEIGHTS_NAME).is_file():
            from safetensors.torch import load_file

            config = dict(cls.load_config(str(folder)))
            if config.pop("class", cls.__name__) != cls.__name__:
                raise ModelLoadError(f"{folder} does not hold a {cls.__name__} (config.json names another class)")
            model = cls.from_config(config)
            model.load_state_dict(load_file(str(folder / LEGACY_WEIGHTS_NAME)))
        else:
            model = super().from_pretrained(str(folder), use_safetensors=True, **kwargs)
        return model.eval().to(device)


class ClipEmbedder:
    """A transformers CLIP model behind the embedder interface (images resized to the model's input size,
    normalised with its processor's mean/std)."""

    def __init__(self, where: str, device: str | torch.device = "cpu") -> None:
        from transformers import CLIPModel, CLIPProcessor

        quiet_libraries()  # transformers' notices and weight-loading bar only with -v

        def load(local_only: bool):
            return (CLIPModel.from_pretrained(where, use_safetensors=True, local_files_only=local_only),
                    CLIPProcessor.from_pretrained(where, local_files_only=local_only))

        try:
            if not Path(where).expanduser().exists() and _HUB_ID.match(where):
                model, self.processor = load_from_hub(where, load)  # one probe, then the hub or the cache
            else:
                model, self.processor = load(True)
            self.model = model.eval().to(device)
        except ModelLoadError:
            raise
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
