"""Alignment Difficulty (AD) of a text-image dataset.

Paper: Ding, Li, Shan, Zhao, Zheng, "Understanding Implosion in Text-to-Image Generative Models",
CCS 2024, arXiv:2409.12314. The paper models cross-attention training as supervised graph alignment
between the text graph and the image graph of a dataset and measures how hard that alignment is.

For ``n`` pairs with L2-normalised image embeddings ``u_i`` and text embeddings ``v_i`` (CLIP in the
paper; ``zoo:embed`` offline here):

.. math::

    s_i &= \\operatorname{clip}((u_i \\cdot v_i - o) \\cdot k,\\ 0,\\ 1)   \\qquad
        \\text{(paper, CLIP on LAION: } o = 0.2,\\ k = 4 \\text{: cosines in [0.2, 0.45] mapped to [0, 1])} \\\\
    D_{fea} &= \\frac{1}{n} \\sum_i (1 - s_i) \\\\
    D_{stru} &= \\frac{2}{n^2} \\sum_{i<j} |u_i \\cdot u_j - v_i \\cdot v_j| \\\\
    AD &= \\alpha D_{fea} + (1 - \\alpha) D_{stru}, \\quad \\alpha = 0.8.

The offset ``o`` and scale ``k`` belong to the embedder: the paper's 0.2 and 4 (the defaults here) fit CLIP;
``zoo:embed``'s cosines sit on another scale (clean pairs about 0.83), where those constants saturate ``s``.
:func:`latentguard.poison.embed.similarity_calibration` gives each embedder its own (``zoo:embed``: offset
-0.2156, scale 0.9394, calibrated on its clean and mismatched Fashion-MNIST pairs); the CLI and the implosion
experiment use it automatically.

The structure term is quadratic in ``n``. It is computed exactly in ``block_size x block_size`` tiles
(memory ``O(block^2 + n d)``, never the ``n x n`` matrix). For very large ``n`` an unbiased sampled estimator with
a normal-approximation confidence interval is available (``method="sampled"``).

Per-pair contributions split AD exactly over the pairs (they sum to AD):

.. math::

    c_i = \\frac{\\alpha (1 - s_i)}{n} + \\frac{(1 - \\alpha)}{n^2} \\sum_{j \\ne i} |u_i \\cdot u_j - v_i \\cdot v_j|

so ``pair_scores = n * c`` has mean AD; ranking pairs by it lists the pairs that make the dataset hard to
align (mislabelled or poisoned pairs first). Per-concept sums aggregate them by a concept label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray

# The paper's official code calibrates CLIP cosine similarity for LAION: (cos - 0.2) * 4, clipped to [0, 1].
SIM_OFFSET = 0.2
SIM_SCALE = 4.0


def scaled_similarity(cos: ArrayLike, offset: float = SIM_OFFSET, scale: float = SIM_SCALE) -> np.ndarray:
    """``s = clip((cos - offset) * scale, 0, 1)``, the paper's rescaled image-text similarity."""
    c = cos.detach().cpu().double().numpy() if isinstance(cos, torch.Tensor) else np.asarray(cos, dtype=np.float64)
    return np.clip((c - offset) * scale, 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class AlignmentResult:
    """AD of a dataset, its two terms, and per-pair contributions.

    Attributes:
        ad: ``alpha * feature + (1 - alpha) * structure``.
        feature: ``D_fea``, mean of ``1 - s_i`` (exact in every method).
        structure: ``D_stru`` (exact, or the unbiased estimate when ``method == "sampled"``).
        alpha: the trade-off weight.
        n: number of pairs.
        method: ``"exact"`` (blocked) or ``"sampled"``.
        cosine: ``u_i . v_i`` per pair, shape ``[n]``.
        similarity: ``s_i`` per pair, shape ``[n]``.
        row_structure: per pair, the mean over ``j != i`` of ``|u_i.u_j - v_i.v_j|`` (exact, or estimated
            from ``samples_per_row`` partners); ``None`` when the sampler had fewer samples than rows.
        structure_se: standard error of the sampled structure estimate (0 when exact).
        structure_ci: ``(low, high)`` confidence interval of ``structure`` (a point when exact).
        ad_ci: the interval carried to AD (the feature term is exact).
        confidence: level of the intervals.
        num_samples: pairs ``(i, j)`` evaluated by the sampler (``None`` when exact).
        samples_per_row: partners drawn per row by the stratified sampler (``None`` otherwise).
    """

    ad: float
    feature: float
    structure: float
    alpha: float
    n: int
    method: str
    cosine: np.ndarray = field(repr=False)
    similarity: np.ndarray = field(repr=False)
    row_structure: np.ndarray | None = field(repr=False, default=None)
    structure_se: float = 0.0
    structure_ci: tuple[float, float] = (math.nan, math.nan)
    ad_ci: tuple[float, float] = (math.nan, math.nan)
    confidence: float = 0.95
    num_samples: int | None = None
    samples_per_row: int | None = None

    @property
    def feature_contributions(self) -> np.ndarray:
        """``alpha * (1 - s_i) / n``; sums to ``alpha * feature``."""
        return self.alpha * (1.0 - self.similarity) / self.n

    @property
    def structure_contributions(self) -> np.ndarray:
        """``(1 - alpha) * sum_{j != i} |...| / n^2``; sums to ``(1 - alpha) * structure`` (exactly when exact)."""
        if self.row_structure is None:
            return np.full(self.n, math.nan)
        return (1.0 - self.alpha) * self.row_structure * (self.n - 1) / self.n**2

    @property
    def contributions(self) -> np.ndarray:
        """Per-pair share ``c_i`` of AD (sums to AD in exact mode). Feature share only if no row structure."""
        if self.row_structure is None:
            return self.feature_contributions
        return self.feature_contributions + self.structure_contributions

    @property
    def pair_scores(self) -> np.ndarray:
        """``n * c_i``: a per-pair AD whose mean is AD. Higher = harder to align = more suspicious."""
        return self.n * self.contributions

    def ranking(self) -> np.ndarray:
        """Pair indices, most suspicious (largest contribution) first; ties broken by index."""
        return np.lexsort((np.arange(self.n), -self.contributions))

    def by_concept(self, concepts: Sequence[Any]) -> list[dict]:
        """Aggregate per-pair contributions by a concept label (one per pair), most suspicious first
        (largest mean pair score; ``share`` also grows with the concept's size).

        Each row: ``concept``, ``n_pairs``, ``contribution`` (sum of ``c_i``), ``share`` (of AD),
        ``mean_pair_score``, ``feature`` (mean ``1 - s_i``), ``mean_cosine``, ``row_structure`` (mean).
        """
        if len(concepts) != self.n:
            raise ValueError(f"concepts must have one label per pair ({self.n}), got {len(concepts)}")
        labels = np.asarray([str(c) for c in concepts])
        contrib, scores = self.contributions, self.pair_scores
        rows = []
        for c in sorted(set(labels.tolist())):
            m = labels == c
            rows.append({
                "concept": c,
                "n_pairs": int(m.sum()),
                "contribution": float(contrib[m].sum()),
                "share": float(contrib[m].sum() / self.ad) if self.ad > 0 else 0.0,
                "mean_pair_score": float(scores[m].mean()),
                "feature": float((1.0 - self.similarity[m]).mean()),
                "mean_cosine": float(self.cosine[m].mean()),
                "row_structure": float(self.row_structure[m].mean()) if self.row_structure is not None else math.nan,
            })
        rows.sort(key=lambda r: (-r["mean_pair_score"], r["concept"]))
        return rows

    def summary(self) -> dict:
        """JSON-ready scalars."""
        return {
            "ad": self.ad, "feature": self.feature, "structure": self.structure, "alpha": self.alpha, "n": self.n,
            "method": self.method, "structure_se": self.structure_se, "structure_ci": list(self.structure_ci),
            "ad_ci": list(self.ad_ci), "confidence": self.confidence, "num_samples": self.num_samples,
            "samples_per_row": self.samples_per_row,
            "mean_cosine": float(self.cosine.mean()), "mean_similarity": float(self.similarity.mean()),
        }


# ----------------------------------------------------------------------------------------------------
# Input handling
# ----------------------------------------------------------------------------------------------------
def _as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n_pairs, dim], got shape {tuple(t.shape)}")
    if not (t.is_floating_point()):
        t = t.double()
    return t


def normalize_pairs(image_emb: ArrayLike, text_emb: ArrayLike, *, dtype: torch.dtype = torch.float32,
                    device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and L2-normalise image and text embeddings (inputs never mutated; rows that are already
    unit vectors in ``dtype`` on ``device`` are used without a copy, which halves the memory at large n).

    Raises:
        ValueError: shapes differ, fewer than 2 pairs, non-finite values, or an all-zero row.
    """
    u = _as_tensor(image_emb, "image_emb")
    v = _as_tensor(text_emb, "text_emb")
    if u.shape != v.shape:
        raise ValueError(f"image_emb and text_emb must have the same shape, got {tuple(u.shape)} and {tuple(v.shape)}")
    if u.shape[0] < 2:
        raise ValueError(f"image_emb needs at least 2 pairs, got {u.shape[0]}")
    dev = torch.device(device) if device is not None else u.device
    out = []
    step = 8192  # row chunks: validation never allocates a full-size temporary
    for name, t in (("image_emb", u), ("text_emb", v)):
        work = torch.float64 if (dtype == torch.float64 or t.dtype == torch.float64) else torch.float32
        t = t.to(device=dev, dtype=work)
        norms = torch.empty(t.shape[0], 1, dtype=work, device=dev)
        for i in range(0, t.shape[0], step):
            c = t[i : i + step]
            if not bool(torch.isfinite(c).all()):
                raise ValueError(f"{name} has non-finite values")
            norms[i : i + step] = c.norm(dim=1, keepdim=True)
        if (norms == 0).any():
            raise ValueError(f"{name} has an all-zero row (index {int((norms[:, 0] == 0).nonzero()[0])}): cannot normalise")
        if t.dtype == dtype and float((norms - 1).abs().max()) < 1e-6:
            out.append(t)  # already unit rows: no copy (never written to)
        else:
            out.append((t / norms).to(dtype))
    return out[0], out[1]


def pair_cosines(u: torch.Tensor, v: torch.Tensor, step: int = 8192) -> np.ndarray:
    """``u_i . v_i`` per row, chunked batched dot products (no ``n x d`` temporary; float64 result)."""
    out = torch.empty(u.shape[0], dtype=torch.float64, device=u.device)
    for i in range(0, u.shape[0], step):
        out[i : i + step] = torch.bmm(u[i : i + step, None, :], v[i : i + step, :, None]).view(-1)
    return out.cpu().numpy()


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _t_quantile(confidence: float, df: int) -> float:
    """Two-sided Student-t quantile (normal when SciPy is missing or df is large)."""
    if df >= 1000:
        return _z(confidence)
    try:
        from scipy.stats import t
    except ImportError:  # pragma: no cover - scipy ships with scikit-learn
        return _z(confidence)
    return float(t.ppf(0.5 + confidence / 2.0, df))


def _check_alpha(alpha: float) -> float:
    if not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    return float(alpha)


# ----------------------------------------------------------------------------------------------------
# Structure term
# ----------------------------------------------------------------------------------------------------
def structure_tile_sums(ui: torch.Tensor, vi: torch.Tensor, uj: torch.Tensor, vj: torch.Tensor, *,
                        diagonal: bool, bufs: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Row and column sums of one tile ``|U_I U_J^T - V_I V_J^T|`` of the structure matrix (float64 sums).

    The one kernel of the exact structure term: :func:`structure_row_sums` runs it over the tiles on or above
    the block diagonal in one process, ``latentguard.scale.ad`` runs it as one Ray task per tile. The products
    run in the inputs' dtype (float32 by default); each tile's row and column sums are accumulated in float64.

    Args:
        ui, vi: rows ``I`` of the normalised image and text embeddings ``[b_I, d]``.
        uj, vj: rows ``J`` ``[b_J, d]``.
        diagonal: ``I == J`` (a diagonal tile): its diagonal is zeroed (``|u_i.u_i - v_i.v_i| = 0`` exactly;
            this drops the rounding residue) and only the row sums are returned (the tile is symmetric).
        bufs: optional cache of tile buffers keyed by shape (reused across calls: no allocator churn).

    Returns:
        ``(row_sums [b_I], col_sums [b_J] or None for a diagonal tile)``, float64.
    """
    shape = (ui.shape[0], uj.shape[0])
    tile = bufs.get(shape) if bufs is not None else None
    if tile is None:
        tile = torch.empty(shape, dtype=ui.dtype, device=ui.device)
        if bufs is not None:
            bufs[shape] = tile
    torch.matmul(ui, uj.T, out=tile)
    tile.addmm_(vi, vj.T, alpha=-1.0).abs_()
    if diagonal:
        tile.fill_diagonal_(0.0)
        return tile.sum(1, dtype=torch.float64), None
    return tile.sum(1, dtype=torch.float64), tile.sum(0, dtype=torch.float64)


def structure_row_sums(u: torch.Tensor, v: torch.Tensor, *, block_size: int = 2048,
                       progress: bool = False) -> torch.Tensor:
    """Exact ``r_i = sum_{j != i} |u_i.u_j - v_i.v_j|`` for every ``i``, in tiles (float64 accumulation).

    Only tiles on or above the block diagonal are computed (the matrix is symmetric); each tile is
    ``U_I U_J^T - V_I V_J^T`` (one matmul and one fused ``addmm``). Peak extra memory: two ``b x b`` tiles.

    Args:
        u, v: normalised embeddings ``[n, d]`` (any float dtype; the products run in that dtype).
        block_size: tile side ``b``.
        progress: show a tqdm bar on stderr.

    Returns:
        float64 tensor ``[n]`` on ``u``'s device. ``D_stru = r.sum() / n^2``.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    n = u.shape[0]
    rows = torch.zeros(n, dtype=torch.float64, device=u.device)
    starts = list(range(0, n, block_size))
    total = len(starts) * (len(starts) + 1) // 2
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="AD structure", unit="tile", leave=False)
    bufs: dict[tuple[int, int], torch.Tensor] = {}  # reused tiles: no allocator churn at large n
    for bi, i0 in enumerate(starts):
        i1 = min(i0 + block_size, n)
        ui, vi = u[i0:i1], v[i0:i1]
        for j0 in starts[bi:]:
            j1 = min(j0 + block_size, n)
            r, c = structure_tile_sums(ui, vi, u[j0:j1], v[j0:j1], diagonal=j0 == i0, bufs=bufs)
            rows[i0:i1] += r
            if c is not None:
                rows[j0:j1] += c
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return rows


@dataclass(frozen=True)
class SampledStructure:
    """Output of :func:`structure_sampled`."""

    estimate: float
    se: float
    ci: tuple[float, float]
    num_samples: int
    samples_per_row: int | None
    row_means: torch.Tensor | None


def stratified_plan(n: int, num_samples: int, chunk: int = 1 << 14) -> tuple[int, int]:
    """``(r_half, rows_per_chunk)`` of the stratified sampler: ``r_half`` partners per row in each of the two
    halves, rows processed ``rows_per_chunk`` at a time (at least 32 chunks: one degree of freedom each)."""
    r_half = (num_samples // n) // 2
    return r_half, max(1, min(2048, math.ceil(n / 32), chunk // r_half))


def sampled_chunk_sums(u: torch.Tensor, v: torch.Tensor, i0: int, i1: int,
                       js: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, float, float]:
    """One chunk of the stratified sampler: rows ``i0:i1`` against the two halves' partners ``js``.

    Returns the rows' means over their surviving partners (float64 ``[i1 - i0]``) and the two halves' sums of
    row means ``S^{(0)}, S^{(1)}`` (see :func:`structure_sampled`). ``u``/``v`` need rows ``i0:i1`` and ``js``
    (``latentguard.scale.ad`` runs one chunk per Ray task, with the same draws as one process).
    """
    rows = torch.arange(i0, i1, device=u.device)
    sums, counts = [], []
    for j in js:
        j = j.to(u.device)
        x = torch.addmm(u[i0:i1] @ u[j].T, v[i0:i1], v[j].T, alpha=-1.0).abs_().double()
        valid = rows[:, None] != j[None, :]
        sums.append((x * valid).sum(1))
        counts.append(valid.sum(1).double())
    # a row whose half lost every partner (all j = i; probability n^-r/2) borrows the other half's mean
    m0 = torch.where(counts[0] > 0, sums[0] / counts[0].clamp_min(1), sums[1] / counts[1].clamp_min(1))
    m1 = torch.where(counts[1] > 0, sums[1] / counts[1].clamp_min(1), m0)
    row_mean = (sums[0] + sums[1]) / (counts[0] + counts[1]).clamp_min(1)
    return row_mean, float(m0.sum()), float(m1.sum())


def stratified_result(n: int, r_half: int, chunk_sums: Sequence[tuple[float, float]], row_mean: torch.Tensor | None,
                      confidence: float) -> SampledStructure:
    """Estimate, standard error and t interval from the chunks' half sums, accumulated in chunk order."""
    total, var = 0.0, 0.0
    for s0, s1 in chunk_sums:
        total += (s0 + s1) / 2
        var += (s0 - s1) ** 2 / 4
    scale = (n - 1) / n
    mean = total / n
    est, se = scale * mean, scale * math.sqrt(var) / n
    zt = _t_quantile(confidence, len(chunk_sums))  # the variance estimate has one degree of freedom per chunk
    return SampledStructure(est, se, (est - zt * se, est + zt * se), n * 2 * r_half, 2 * r_half, row_mean)


def structure_sampled(u: torch.Tensor, v: torch.Tensor, *, num_samples: int, confidence: float = 0.95,
                      generator: torch.Generator | None = None, chunk: int = 1 << 14) -> SampledStructure:
    """Unbiased Monte-Carlo estimate of ``D_stru`` with a normal-approximation confidence interval.

    Let ``x_ij = |u_i.u_j - v_i.v_j|`` over ordered pairs ``i != j``; ``D_stru = (n-1)/n * E[x]`` with the
    expectation uniform over ordered pairs, i.e. ``D_stru = (n-1)/n * mean_i m_i`` with ``m_i`` the mean
    of row ``i`` over ``j != i``. Two designs, both unbiased:

    * stratified by row (``num_samples >= 2n``): every row gets ``r = num_samples // n`` partners, in
      two independent halves of ``r/2``. Rows are processed in ``C >= 32`` chunks; each chunk and half
      draws its partners ``J`` uniformly from all ``n`` (shared by the chunk's rows, so one matrix
      product ``U_I U_J^T - V_I V_J^T`` evaluates them: GEMM speed instead of gathers); the entries with
      ``j = i`` are dropped. Given the surviving count, each row's partners are i.i.d. uniform over the
      other rows, so each row mean ``\\hat m_i`` is unbiased. With ``S_c^{(h)}`` the sum of half ``h``'s
      row means over chunk ``c``, the estimate is ``sum_c (S_c^{(0)} + S_c^{(1)}) / (2n)`` and its variance
      is estimated without bias by ``sum_c (S_c^{(0)} - S_c^{(1)})^2 / (4 n^2)`` (chunks independent,
      halves i.i.d. given the rows). The row means also give per-pair structure estimates for ranking.
    * i.i.d. ordered pairs (fewer samples than ``2n``): variance ``s^2 / m``; no per-row estimate.

    Interval: ``estimate +- q * se``, ``q`` the Student-t quantile with one degree of freedom per chunk
    (stratified) or the normal quantile (i.i.d.), valid for large sample counts by the central limit theorem.
    """
    if num_samples < 2:
        raise ValueError(f"num_samples must be >= 2, got {num_samples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = u.shape[0]
    dev = u.device
    scale = (n - 1) / n
    z = _z(confidence)

    def _randint(lo: int, hi: int, size: int) -> torch.Tensor:
        return torch.randint(lo, hi, (size,), generator=generator, device="cpu").to(dev)

    if num_samples >= 2 * n:
        r_half, rows_per_chunk = stratified_plan(n, num_samples, chunk)
        row_mean = torch.empty(n, dtype=torch.float64, device=dev)
        chunk_sums = []
        for i0 in range(0, n, rows_per_chunk):
            i1 = min(i0 + rows_per_chunk, n)
            js = (_randint(0, n, r_half), _randint(0, n, r_half))
            row_mean[i0:i1], s0, s1 = sampled_chunk_sums(u, v, i0, i1, js)
            chunk_sums.append((s0, s1))
        return stratified_result(n, r_half, chunk_sums, row_mean, confidence)
    m = int(num_samples)
    total, total_sq, done = 0.0, 0.0, 0
    while done < m:
        k = min(chunk, m - done)
        i = _randint(0, n, k)
        j = (i + _randint(1, n, k)) % n  # uniform over j != i
        x = ((u[i] * u[j]).sum(-1) - (v[i] * v[j]).sum(-1)).abs_().double()
        total += float(x.sum())
        total_sq += float((x * x).sum())
        done += k
    mean = total / m
    var = max(total_sq / m - mean * mean, 0.0) * m / (m - 1) / m
    est, se = scale * mean, scale * math.sqrt(var)
    return SampledStructure(est, se, (est - z * se, est + z * se), m, None, None)


# ----------------------------------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------------------------------
def alignment_difficulty(
    image_emb: ArrayLike,
    text_emb: ArrayLike,
    alpha: float = 0.8,
    *,
    method: str = "exact",
    block_size: int = 2048,
    num_samples: int | None = None,
    confidence: float = 0.95,
    seed: int | None = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    sim_offset: float = SIM_OFFSET,
    sim_scale: float = SIM_SCALE,
    progress: bool = False,
) -> AlignmentResult:
    """Alignment Difficulty of ``n`` text-image pairs (arXiv:2409.12314; formulas in the module docstring).

    Args:
        image_emb: ``[n, d]`` image embeddings (torch or numpy), one row per pair; L2-normalised here.
        text_emb: ``[n, d]`` text embeddings of the same pairs.
        alpha: weight of the feature term, in [0, 1] (paper: 0.8).
        method: ``"exact"`` (blocked, ``O(n^2 d)`` time, ``O(block^2)`` memory), ``"sampled"`` (unbiased
            estimate of the structure term with an interval), or ``"auto"`` (exact up to 20,000 pairs).
        block_size: tile side of the exact computation.
        num_samples: ordered pairs the sampler evaluates (default ``max(200 n, 10^6)`` capped at ``10^8``;
            ``>= 2n`` gives per-pair estimates; rounded down to an even number of partners per row).
        confidence: level of the sampled confidence interval.
        seed: sampler seed (``None``: torch's global RNG).
        dtype: dtype of the dot products (``torch.float64`` for bit-level checks; accumulation is float64).
        device: where to compute (default: the input's device).
        sim_offset, sim_scale: calibration of ``s_i = clip((cos - offset) * scale, 0, 1)``; the defaults are
            the paper's LAION/CLIP values 0.2 and 4. Other embedders need their own: pass
            :func:`latentguard.poison.embed.similarity_calibration`'s ``offset`` and ``scale``.
        progress: tqdm bar for the exact tiles.

    Returns:
        :class:`AlignmentResult`.

    Raises:
        ValueError: bad shapes, non-finite or all-zero rows, alpha outside [0, 1], unknown method.
    """
    alpha = _check_alpha(alpha)
    if method not in ("exact", "sampled", "auto"):
        raise ValueError(f"method must be exact|sampled|auto, got {method!r}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if sim_scale <= 0:
        raise ValueError(f"sim_scale must be > 0, got {sim_scale}")
    u, v = normalize_pairs(image_emb, text_emb, dtype=dtype, device=device)
    n = u.shape[0]
    if method == "auto":
        method = "exact" if n <= 20_000 else "sampled"
    cos = pair_cosines(u, v)
    sim = scaled_similarity(cos, sim_offset, sim_scale)
    if method == "exact":
        rows = structure_row_sums(u, v, block_size=block_size, progress=progress)
        return exact_result(cos, sim, rows, alpha, confidence)
    if num_samples is None:
        num_samples = default_num_samples(n)
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    s = structure_sampled(u, v, num_samples=int(num_samples), confidence=confidence, generator=gen)
    return sampled_result(cos, sim, s, alpha, confidence)


def default_num_samples(n: int) -> int:
    """The sampler's default budget: ``max(200 n, 10^6)`` ordered pairs, capped at ``10^8``."""
    return int(min(max(200 * n, 1_000_000), 100_000_000))


def exact_result(cos: np.ndarray, sim: np.ndarray, rows: torch.Tensor, alpha: float, confidence: float = 0.95
                 ) -> AlignmentResult:
    """:class:`AlignmentResult` of the exact method from the pair cosines, ``s_i`` and the structure row sums
    ``r_i = sum_{j != i} |u_i.u_j - v_i.v_j|`` (float64), however they were computed (one process or shards)."""
    n = len(cos)
    feature = float(np.mean(1.0 - sim))
    structure = float(rows.sum()) / (n * n)
    ad = alpha * feature + (1 - alpha) * structure
    return AlignmentResult(
        ad=ad, feature=feature, structure=structure, alpha=alpha, n=n, method="exact", cosine=cos,
        similarity=sim, row_structure=(rows / (n - 1)).cpu().numpy(), structure_se=0.0,
        structure_ci=(structure, structure), ad_ci=(ad, ad), confidence=confidence,
    )


def sampled_result(cos: np.ndarray, sim: np.ndarray, s: SampledStructure, alpha: float, confidence: float = 0.95
                   ) -> AlignmentResult:
    """:class:`AlignmentResult` of the sampled method from the pair cosines, ``s_i`` and the sampler's output."""
    n = len(cos)
    feature = float(np.mean(1.0 - sim))
    ad = alpha * feature + (1 - alpha) * s.estimate
    w = 1 - alpha
    return AlignmentResult(
        ad=ad, feature=feature, structure=s.estimate, alpha=alpha, n=n, method="sampled", cosine=cos, similarity=sim,
        row_structure=s.row_means.cpu().numpy() if s.row_means is not None else None, structure_se=s.se,
        structure_ci=s.ci, ad_ci=(alpha * feature + w * s.ci[0], alpha * feature + w * s.ci[1]),
        confidence=confidence, num_samples=s.num_samples, samples_per_row=s.samples_per_row,
    )


def naive_alignment_difficulty(image_emb: ArrayLike, text_emb: ArrayLike, alpha: float = 0.8) -> tuple[float, float, float]:
    """Reference ``O(n^2)``-memory implementation in float64 numpy: ``(ad, feature, structure)``. Tests only."""
    u = np.asarray(image_emb.detach().cpu() if isinstance(image_emb, torch.Tensor) else image_emb, dtype=np.float64)
    v = np.asarray(text_emb.detach().cpu() if isinstance(text_emb, torch.Tensor) else text_emb, dtype=np.float64)
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    n = len(u)
    s = np.clip(((u * v).sum(1) - SIM_OFFSET) * SIM_SCALE, 0, 1)
    feature = float(np.mean(1 - s))
    d = np.abs(u @ u.T - v @ v.T)
    structure = float(2.0 / n**2 * d[np.triu_indices(n, 1)].sum())
    return alpha * feature + (1 - alpha) * structure, feature, structure
