"""Scoring a bench cell: which function computes each metric, looked up by the metric's name.

Three registries, one per kind of :data:`~latentguard.ops.metrics.REGISTRY` entry:

* :data:`PAIR_METRICS`: image vs reference image, per image (``psnr``, ``ssim``, ``embed-dist``, ``lpips``);
* :data:`TEXT_METRICS`: image vs prompt, per image (``embed-clip-score``, ``clip-score``);
* :data:`SET_METRICS`: two image sets, per table cell (``embed-fid`` from the stored features, ``fid``
  from the stored PNGs), used by the report.

Each maps a name to a function; a function returns ``None`` when what it needs (the embedder, the
standard-metric weights) is not loaded, and the metric is then left out, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentguard.ops import metrics as _metrics  # StandardMetrics looked up at call time (tests swap it)
from latentguard.ops.metrics import embed_clip_score, embed_dist, frechet_distance, psnr, ssim
from latentguard.io import load_image


@dataclass(frozen=True)
class Scorers:
    """What the metric functions may need: the feature embedder and the standard metrics (either may be None)."""

    embedder: Any = None
    standard: Any = None


def _psnr(s: Scorers, a: torch.Tensor, b: torch.Tensor) -> list[float]:
    return psnr(a, b).tolist()


def _ssim(s: Scorers, a: torch.Tensor, b: torch.Tensor) -> list[float]:
    win = min(11, a.shape[-1], a.shape[-2])
    return ssim(a, b, kernel_size=win - (1 - win % 2)).tolist()


def _embed_dist(s: Scorers, a: torch.Tensor, b: torch.Tensor) -> list[float] | None:
    return None if s.embedder is None else embed_dist(s.embedder, a, b).tolist()


def _lpips(s: Scorers, a: torch.Tensor, b: torch.Tensor) -> list[float] | None:
    return None if s.standard is None else s.standard.lpips(a, b).tolist()


def _embed_clip(s: Scorers, x: torch.Tensor, texts: Sequence[str]) -> list[float] | None:
    return None if s.embedder is None else embed_clip_score(s.embedder, x, texts).tolist()


def _clip_score(s: Scorers, x: torch.Tensor, texts: Sequence[str]) -> list[float] | None:
    return None if s.standard is None else s.standard.clip_score(x, texts).tolist()


# name -> function(scorers, a, b) -> per-image values; in the order the rows list them.
PAIR_METRICS: dict[str, Callable[[Scorers, torch.Tensor, torch.Tensor], list[float] | None]] = {
    "psnr": _psnr,
    "ssim": _ssim,
    "embed-dist": _embed_dist,
    "lpips": _lpips,
}

# name -> (function(scorers, images, texts) -> per-image values, the row key of the clean edit's value).
TEXT_METRICS: dict[str, tuple[Callable[[Scorers, torch.Tensor, Sequence[str]], list[float] | None], str]] = {
    "embed-clip-score": (_embed_clip, "clean_edit_clip"),
    "clip-score": (_clip_score, "clean_edit_clip_score"),
}


def pair_metrics(names: Sequence[str], a: torch.Tensor, b: torch.Tensor, scorers: Scorers) -> dict[str, list[float]]:
    """Every pair metric of ``names`` between ``a`` and ``b``: ``{name: [value per image]}``."""
    out: dict[str, list[float]] = {}
    for name, fn in PAIR_METRICS.items():
        if name in names:
            v = fn(scorers, a, b)
            if v is not None:
                out[name] = v
    return out


def features(embedder: Any, x: torch.Tensor) -> list[list[float]]:
    """The embedder's image features, rounded for the JSONL (``embed-fid`` is computed from them)."""
    with torch.no_grad():
        f = embedder.embed_images(x.to(embedder.device).float()).cpu()
    return [[round(float(v), 5) for v in row] for row in f]


def score_cell(names: Sequence[str], scorers: Scorers, clean: torch.Tensor, ref: torch.Tensor,
               edited: torch.Tensor, texts: list[str]) -> list[dict]:
    """Per image of a cell: metrics of edit(protected) vs edit(clean), vs the input, of edit(clean) vs the
    input, the text metrics and the features of the set metrics."""
    vs_ref = pair_metrics(names, edited, ref, scorers)
    vs_input = pair_metrics(names, edited, clean, scorers)
    ref_vs_input = pair_metrics(names, ref, clean, scorers)
    text: dict[str, tuple[list[float], list[float], str]] = {}
    for name, (fn, ref_key) in TEXT_METRICS.items():
        if name in names:
            p = fn(scorers, edited, texts)
            if p is not None:
                text[name] = (p, fn(scorers, ref, texts), ref_key)
    feats = None
    if "embed-fid" in names and scorers.embedder is not None:
        feats = features(scorers.embedder, edited), features(scorers.embedder, ref)
    rows = []
    for k in range(len(texts)):
        r: dict[str, Any] = {
            "metrics": {m: v[k] for m, v in vs_ref.items()},
            "vs_input": {m: v[k] for m, v in vs_input.items()},
            "clean_edit_vs_input": {m: v[k] for m, v in ref_vs_input.items()},
            "text": texts[k],
        }
        for name, (p, q, ref_key) in text.items():
            r["metrics"][name] = p[k]
            r[ref_key] = q[k]
        if feats is not None:
            r["features"] = {"edit_protected": feats[0][k], "edit_clean": feats[1][k]}
        rows.append(r)
    return rows


# ------------------------------------------------------------------------------------- set metrics
def _embed_fid(rows: list[dict], out_dir: Path | None) -> float:
    fp = [r["features"]["edit_protected"] for r in rows if r.get("features")]
    fc = [r["features"]["edit_clean"] for r in rows if r.get("features")]
    if len(fp) < 2:
        return float("nan")
    return frechet_distance(np.asarray(fc), np.asarray(fp))


def _fid(rows: list[dict], out_dir: Path | None) -> float:
    if out_dir is None or len(rows) < 2:
        return float("nan")
    try:
        real = torch.cat([load_image(out_dir / r["files"]["edit_clean"]) for r in rows])
        fake = torch.cat([load_image(out_dir / r["files"]["edit_protected"]) for r in rows])
        return _metrics.StandardMetrics().fid(real, fake)
    except Exception:  # noqa: BLE001 - no weights / missing files: the cell shows "–"
        return float("nan")


# name -> function(ok rows of one group, the run folder) -> value.
SET_METRICS: dict[str, Callable[[list[dict], Path | None], float]] = {
    "embed-fid": _embed_fid,
    "fid": _fid,
}

_SET_CACHE: dict[tuple, float] = {}


def set_metric(metric: str, rows: list[dict], out_dir: Path | None) -> float:
    """A set metric over a group of rows (cached per group and folder); NaN for an unknown one."""
    key = (metric, str(out_dir), tuple(sorted(r["key"] for r in rows)))
    if key not in _SET_CACHE:
        fn = SET_METRICS.get(metric)
        _SET_CACHE[key] = fn(rows, out_dir) if fn is not None else float("nan")
    return _SET_CACHE[key]
