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


def load_pair_embedder(spec: str = "zoo:embed", device: str | torch.device = "cpu"):
    """``zoo:embed`` / a ZooEmbedder folder, or ``clip:<folder or hub id>`` (see :func:`latentguard.models.load_embedder`)."""
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
