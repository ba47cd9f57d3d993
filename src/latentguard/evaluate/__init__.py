"""Evaluation harness: edits, purifications, metrics and the benchmark runner (``latentguard bench``)."""

# Loaded on first use: these modules import torch.
from latentguard.core.lazy import lazy_exports

# The metrics live in latentguard.ops.metrics (shared with every capability); REGISTRY is the metric registry.
__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "latentguard.ops.metrics": (
        "PSNR", "SSIM", "EmbedCLIPScore", "EmbedDistance", "EmbedFID", "MetricInfo",
        "embed_clip_score", "embed_dist", "frechet_distance", "psnr", "ssim", "standard_metric_status",
        "REGISTRY",
    ),
})
