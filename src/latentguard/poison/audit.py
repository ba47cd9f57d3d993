"""Dataset alignment audit: AD of a caption dataset, ranked pairs and concepts, written to a folder.

Outputs (``out_dir``): ``run.json`` (by the caller), ``summary.json``, ``pairs.jsonl`` and ``pairs.csv``
(one row per pair: cosine, s_i, row structure, contribution, pair score, rank), ``concepts.csv``,
``ranking.csv`` (the ``top`` most suspicious pairs), ``scores.png`` and ``concepts.png``.
When the dataset carries a ``poisoned`` column (written by ``latentguard poison``), the summary adds
the ranking's precision at the number of poisoned pairs and its AUROC, for three scores: the full
per-pair contribution, its feature part and its structure part. AD itself never reads that column.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from latentguard.ops import roc
from latentguard.poison.alignment import AlignmentResult
from latentguard.io import atomic_write_text, JsonlWriter


def precision_at(scores: np.ndarray, truth: np.ndarray, k: int | None = None) -> float:
    """Fraction of true positives among the ``k`` highest scores (``k`` = number of positives by default).

    Ties at the cut are broken by index (stable), so the value is deterministic.
    """
    truth = np.asarray(truth, dtype=bool)
    k = int(truth.sum()) if k is None else int(k)
    if k <= 0:
        return float("nan")
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores, dtype=np.float64)))
    return float(truth[order[:k]].mean())


def auroc(scores: np.ndarray, truth: np.ndarray) -> float:
    """AUROC of ``scores`` against a boolean poison mask (:func:`latentguard.ops.roc.auroc`); NaN with one class."""
    truth = np.asarray(truth, dtype=bool)
    if truth.all() or not truth.any():
        return float("nan")
    return roc.auroc(scores, truth.astype(np.int64))


def detection_metrics(result: AlignmentResult, truth: np.ndarray) -> dict:
    """Precision@P and AUROC of three per-pair scores against a ground-truth poison mask."""
    scores = {"contribution": result.contributions, "feature": result.feature_contributions}
    if result.row_structure is not None:
        scores["structure"] = result.structure_contributions
    out = {"n_poisoned": int(np.sum(truth)), "chance_precision": float(np.mean(truth))}
    for name, s in scores.items():
        out[f"precision_at_p_{name}"] = precision_at(s, truth)
        out[f"auroc_{name}"] = auroc(s, truth)
    return out


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def write_audit(out_dir: str | Path, result: AlignmentResult, ds, *, top: int = 50, extra_summary: dict | None = None
                ) -> dict:
    """Write the audit files for ``result`` computed on the :class:`CaptionDataset` ``ds``; return the summary."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth = ds.poisoned_mask()
    order = result.ranking()
    rank = np.empty(result.n, dtype=np.int64)
    rank[order] = np.arange(1, result.n + 1)
    contrib = result.contributions
    scores = result.pair_scores
    rows = []
    for i, rec in enumerate(ds.records):
        row = {
            "index": i, "file": rec.file, "caption": rec.caption, "concept": rec.concept or "",
            "cosine": round(float(result.cosine[i]), 6), "similarity": round(float(result.similarity[i]), 6),
            "row_structure": (round(float(result.row_structure[i]), 6) if result.row_structure is not None else ""),
            "contribution": float(contrib[i]), "pair_score": round(float(scores[i]), 6), "rank": int(rank[i]),
        }
        if truth is not None:
            row["poisoned"] = int(truth[i])
            row["source_concept"] = rec.extra.get("source_concept", "")
        rows.append(row)
    jw = JsonlWriter(out / "pairs.jsonl", resume=False)
    for r in rows:
        jw.write(r)
    atomic_write_text(out / "pairs.csv", _csv_text(rows))
    atomic_write_text(out / "ranking.csv", _csv_text([rows[i] for i in order[:top]]))
    concepts = ds.concepts
    concept_rows = result.by_concept([c if c is not None else "(none)" for c in concepts])
    atomic_write_text(out / "concepts.csv", _csv_text(concept_rows))
    summary = {**result.summary(), **(extra_summary or {})}
    if truth is not None and truth.any():
        summary["detection"] = detection_metrics(result, truth)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=float) + "\n")
    _plots(out, result, truth, concept_rows)
    return summary


def _plots(out: Path, result: AlignmentResult, truth: np.ndarray | None, concept_rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.pair_scores
    fig, ax = plt.subplots(figsize=(5, 3.2))
    bins = np.linspace(float(s.min()), float(s.max()) + 1e-9, 40)
    if truth is not None and truth.any():
        ax.hist(s[~truth], bins=bins, alpha=0.7, label=f"clean ({(~truth).sum()})")
        ax.hist(s[truth], bins=bins, alpha=0.7, label=f"poisoned ({truth.sum()})")
        ax.legend()
    else:
        ax.hist(s, bins=bins)
    ax.axvline(result.ad, color="k", ls="--", lw=1)
    ax.set_xlabel("per-pair AD score (mean = AD)")
    ax.set_ylabel("pairs")
    ax.set_title(f"AD={result.ad:.4f}  D_fea={result.feature:.4f}  D_stru={result.structure:.4f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=120)
    plt.close(fig)
    rows = concept_rows[:30]
    fig, ax = plt.subplots(figsize=(5, 0.25 * len(rows) + 1.2))
    ax.barh([r["concept"] for r in rows][::-1], [r["mean_pair_score"] for r in rows][::-1])
    ax.set_xlabel("mean per-pair AD score")
    fig.tight_layout()
    fig.savefig(out / "concepts.png", dpi=120)
    plt.close(fig)
