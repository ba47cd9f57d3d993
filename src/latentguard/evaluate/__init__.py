"""Evaluation harness: edits, purifications, metrics and the benchmark runner (``latentguard bench``).

The metrics themselves live in :mod:`latentguard.ops.metrics` (shared with every capability); they are
re-exported here, ``METRICS`` being the metric registry (``latentguard.ops.metrics.REGISTRY``).
"""

from latentguard.ops.metrics import (
    PSNR,
    SSIM,
    EmbedCLIPScore,
    EmbedDistance,
    EmbedFID,
    MetricInfo,
    embed_clip_score,
    embed_dist,
    frechet_distance,
    psnr,
    ssim,
    standard_metric_status,
)
from latentguard.ops.metrics import REGISTRY as METRICS

__all__ = [
    "METRICS", "PSNR", "SSIM", "EmbedCLIPScore", "EmbedDistance", "EmbedFID", "MetricInfo", "embed_clip_score",
    "embed_dist", "frechet_distance", "psnr", "ssim", "standard_metric_status",
]
