"""Evaluation harness: edits, purifications, metrics and the benchmark runner (``latentguard bench``)."""

from latentguard.evaluate.metrics import (
    METRICS,
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

__all__ = [
    "METRICS", "PSNR", "SSIM", "EmbedCLIPScore", "EmbedDistance", "EmbedFID", "MetricInfo", "embed_clip_score",
    "embed_dist", "frechet_distance", "psnr", "ssim", "standard_metric_status",
]
