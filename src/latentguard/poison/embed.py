"""Image-text embedders for Alignment Difficulty.

``zoo:embed`` (the bundled CLIP-like model; its numbers are never reported as CLIP's) or a local
ZooEmbedder folder via :func:`latentguard.models.load_embedder`; ``clip:<folder or hub id>`` loads a
transformers ``CLIPModel`` when its weights are present locally (no downloads are attempted offline).
Every embedder exposes ``embed_images(x in [0,1]) -> [N,d]`` and ``embed_texts(list[str]) -> [N,d]``,
unit vectors.

**Similarity calibration.** AD's similarity ``s = clip((u.v - offset) * scale, 0, 1)`` needs an offset and a
scale that fit the embedder's cosine range. The paper's 0.2 and 4 are for CLIP on LAION (cosines of matched
pairs about 0.2-0.45); they are kept for ``clip:`` embedders. ``zoo:embed`` puts clean Fashion-MNIST pairs at
cosines of about 0.8 and mismatched ones near 0, where the paper's constants send every clean pair to 1 and
every mismatched one to 0. Its own calibration is stored next to its weights (``ad_calibration.json``, written
by ``benchmarks/calibrate_ad_embed.py``: offset = 5th percentile of mismatched-pair cosines, scale =
1 / (95th percentile of clean-pair cosines - offset)), and :func:`similarity_calibration` returns it for
``zoo:embed`` or any embedder folder that carries such a file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from latentguard.poison.alignment import SIM_OFFSET, SIM_SCALE
from latentguard.models import load_embedder, resolve_spec
from latentguard.models.registry import weights_root

CALIBRATION_FILE = "ad_calibration.json"


@dataclass(frozen=True)
class SimilarityCalibration:
    """``offset`` and ``scale`` of ``s = clip((cos - offset) * scale, 0, 1)`` and where they come from."""

    offset: float
    scale: float
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


#: The paper's calibration for CLIP on LAION (arXiv:2409.12314, official code): (cos - 0.2) * 4.
PAPER_CALIBRATION = SimilarityCalibration(SIM_OFFSET, SIM_SCALE, "paper (CLIP on LAION): offset 0.2, scale 4")


def _embedder_folder(spec: str) -> Path | None:
    kind, where = resolve_spec(spec)
    if kind == "local":
        return Path(where)
    if kind == "zoo":
        return weights_root() / where
    return None


def similarity_calibration(spec: str) -> SimilarityCalibration:
    """The AD similarity calibration of an embedder spec.

    ``clip:...`` (and hub ids): the paper's constants. ``zoo:embed`` or a ZooEmbedder folder: its
    ``ad_calibration.json`` (keys ``offset``, ``scale``) when present, else the paper's constants (the
    ``source`` then says the embedder is uncalibrated).

    Raises:
        ValueError: the calibration file exists but does not hold a finite offset and a positive scale.
    """
    if spec.startswith("clip:"):
        return PAPER_CALIBRATION
    folder = _embedder_folder(spec)
    path = folder / CALIBRATION_FILE if folder is not None else None
    if path is None or not path.is_file():
        return SimilarityCalibration(SIM_OFFSET, SIM_SCALE,
                                     f"paper constants (no {CALIBRATION_FILE} for {spec}; uncalibrated for it)")
    doc = json.loads(path.read_text())
    try:
        offset, scale = float(doc["offset"]), float(doc["scale"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: needs numeric 'offset' and 'scale'") from None
    if not (abs(offset) < float("inf") and 0 < scale < float("inf")):
        raise ValueError(f"{path}: offset must be finite and scale > 0, got {offset}, {scale}")
    return SimilarityCalibration(offset, scale, f"{spec} {CALIBRATION_FILE}: {doc.get('rule', 'calibrated')}")


def load_pair_embedder(spec: str = "zoo:embed", device: str | torch.device = "cpu"):
    """``zoo:embed`` / a ZooEmbedder folder, or ``clip:<folder or hub id>`` (see :func:`latentguard.models.load_embedder`)."""

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
