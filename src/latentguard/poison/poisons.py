"""Data poisons for text-to-image training sets (for audits and the implosion experiment).

Three kinds, each returning a new :class:`~latentguard.poison.dataset.PairSet` with the ground truth
(``poisoned`` mask, ``source_concept`` = what the image shows) so detectors can be scored:

* **dirty-label** (:func:`dirty_label`): images of concept ``B`` captioned with captions of concept ``A``
  (the "basic" poison of Nightshade, Shan et al., IEEE S&P 2024, arXiv:2310.13828, and the poison
  model of the implosion paper, arXiv:2409.12314). Captions of ``A`` are drawn from the dataset's own
  ``A`` captions, so the poison uses the dataset's phrasing.
* **concept-swap** (:func:`concept_swap`): dirty-label over ``k`` concepts at once, cyclically
  (images of ``c_l`` captioned as ``c_{l+1}``), poisoning ``k`` prompts.
* **Nightshade-style optimised poison** (:func:`nightshade`): images of ``A`` keep their ``A`` caption
  but get a small ``l_inf`` perturbation ``delta`` (budget ``eps`` in [0,1] pixel units, e.g. 8/255)
  so that the VAE posterior mean moves to the latent of a ``B`` anchor image:

  .. math:: \\min_{\\|\\delta\\|_\\infty \\le \\epsilon} \\| E_\\mu(x + \\delta) - E_\\mu(x_B) \\|_2^2,
      \\quad x + \\delta \\in [0, 1]

  solved by sign-gradient PGD (delta starts at 0; ``delta <- clip(delta - step * sign(grad), -eps, eps)``;
  :func:`latentguard.ops.pgd.pgd`).
  Nightshade adds an LPIPS budget and generates its anchors with the model; here the anchors are real
  ``B`` images of the dataset and the budget is ``l_inf`` only. A model trained on these pairs learns
  "A" -> ``B``-like latents while the images still look like ``A`` to a human (and to an embedder).

Modes of the label poisons: ``relabel`` (default; chosen ``B`` pairs get ``A`` captions, the dataset size
is unchanged) or ``add`` (copies of chosen ``B`` images with ``A`` captions are appended).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from latentguard.ops.pgd import pgd
from latentguard.poison.dataset import PairSet

POISON_KINDS = ("dirty-label", "concept-swap", "nightshade")


def _count(available: int, n_poison: int | None, fraction: float | None, ref: int, name: str) -> int:
    if (n_poison is None) == (fraction is None):
        raise ValueError("give exactly one of n_poison and fraction")
    if n_poison is not None:
        if n_poison < 1:
            raise ValueError(f"n_poison must be >= 1, got {n_poison}")
        k = int(n_poison)
    else:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        k = max(1, int(round(fraction * ref)))
    if k > available:
        raise ValueError(f"{name}: {k} poison pairs requested but only {available} candidate pairs")
    return k


def _concept_indices(pairs: PairSet, concept: str, field_name: str = "source_concepts") -> np.ndarray:
    vals = getattr(pairs, field_name)
    idx = np.flatnonzero(np.array([v == concept for v in vals]) & ~pairs.poisoned)
    if len(idx) == 0:
        known = sorted({v for v in vals if v is not None})
        raise ValueError(f"concept {concept!r} has no clean pairs in the dataset; concepts: {known}")
    return idx


def _caption_pool(pairs: PairSet, concept: str) -> list[str]:
    caps = [c for c, k, p in zip(pairs.captions, pairs.concepts, pairs.poisoned) if k == concept and not p]
    if not caps:
        raise ValueError(f"concept {concept!r} has no captions to borrow")
    return sorted(set(caps))


def dirty_label(pairs: PairSet, target: str, source: str, *, n_poison: int | None = None,
                fraction: float | None = None, mode: str = "relabel", seed: int = 0) -> PairSet:
    """Caption ``n_poison`` images of ``source`` (concept B) with captions of ``target`` (concept A).

    Args:
        pairs: the clean (or already partly poisoned) pairs; not modified.
        target: concept A, whose prompt gets poisoned.
        source: concept B, whose images are used.
        n_poison: number of poison pairs; or
        fraction: poison pairs as a fraction of A's clean pair count.
        mode: ``relabel`` (B pairs change caption) or ``add`` (copies appended).
        seed: choice of images and captions.

    Returns:
        A new PairSet; poison rows have ``concepts = target``, ``source_concepts = source``, ``poisoned``.
    """
    if target == source:
        raise ValueError(f"target and source concepts must differ, got {target!r} twice")
    if mode not in ("relabel", "add"):
        raise ValueError(f"mode must be relabel|add, got {mode!r}")
    rng = np.random.default_rng(seed)
    cand = _concept_indices(pairs, source)
    ref = int(sum(1 for k, p in zip(pairs.concepts, pairs.poisoned) if k == target and not p))
    k = _count(len(cand), n_poison, fraction, ref, f"dirty-label {target}<-{source}")
    pool = _caption_pool(pairs, target)
    chosen = np.sort(rng.choice(cand, k, replace=False))
    new_caps = [pool[int(i)] for i in rng.integers(0, len(pool), k)]
    caps, concepts = list(pairs.captions), list(pairs.concepts)
    srcs, mask = list(pairs.source_concepts), pairs.poisoned.copy()
    extra = {key: list(col) for key, col in pairs.extra.items()}
    if mode == "relabel":
        for i, c in zip(chosen, new_caps):
            caps[i], concepts[i], mask[i] = c, target, True
        images = pairs.images
    else:
        images = torch.cat([pairs.images, pairs.images[torch.from_numpy(chosen)]])
        caps += new_caps
        concepts += [target] * k
        srcs += [pairs.source_concepts[i] for i in chosen]
        mask = np.concatenate([mask, np.ones(k, bool)])
        for key in extra:
            extra[key] += [pairs.extra[key][i] for i in chosen]
    return PairSet(images, tuple(caps), tuple(concepts), tuple(srcs), mask, {k2: tuple(v) for k2, v in extra.items()})


def concept_swap(pairs: PairSet, concepts: Sequence[str], *, n_poison: int | None = None,
                 fraction: float | None = None, mode: str = "relabel", seed: int = 0) -> PairSet:
    """Dirty-label over ``k >= 2`` concepts, cyclically: images of ``concepts[l]`` captioned as ``concepts[l+1]``.

    Poisons ``k`` prompts; ``n_poison`` / ``fraction`` apply per concept. Candidates are drawn from the
    clean pairs of the input, so one swap never relabels another's poison.
    """
    concepts = list(concepts)
    if len(concepts) < 2:
        raise ValueError(f"concept-swap needs at least 2 concepts, got {concepts}")
    if len(set(concepts)) != len(concepts):
        raise ValueError(f"concepts must be distinct, got {concepts}")
    counts = {}
    for tgt in concepts:  # per-concept counts from the input, before any swap shrinks a concept
        ref = int(sum(1 for k, p in zip(pairs.concepts, pairs.poisoned) if k == tgt and not p))
        counts[tgt] = n_poison if n_poison is not None else _count(10**12, None, fraction, ref, tgt)
    out = pairs
    for l, src in enumerate(concepts):
        tgt = concepts[(l + 1) % len(concepts)]
        out = dirty_label(out, tgt, src, n_poison=counts[tgt], mode=mode, seed=seed + 1000 * l)
    return out


def poison_plan(concept_names: Sequence[str], k: int, *, seed: int = 0) -> list[tuple[str, str]]:
    """``k`` (target, source) concept pairs for a k-poisoned-concepts experiment.

    A seeded permutation ``o`` of the concepts; target ``o[l]``, source ``o[(l + C//2) % C]`` for
    ``l < k`` (sources are disjoint from targets while ``k <= C//2``).
    """
    names = list(concept_names)
    c = len(names)
    if not 0 <= k <= c:
        raise ValueError(f"k must be in [0, {c}], got {k}")
    order = np.random.default_rng(seed).permutation(c)
    return [(names[order[l]], names[order[(l + c // 2) % c]]) for l in range(k)]


# ----------------------------------------------------------------------------------------------------
# Nightshade-style optimised poison
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NightshadeConfig:
    """Parameters of the optimised poison.

    Attributes:
        eps: ``l_inf`` budget in [0,1] pixel units (8/255 = 0.0314; Nightshade's LPIPS budget has no
            direct ``l_inf`` equivalent).
        steps: PGD iterations.
        step_size: PGD step in [0,1] units (default ``2.5 * eps / steps``).
        batch_size: images per optimisation batch.
    """

    eps: float = 8 / 255
    steps: int = 50
    step_size: float | None = None
    batch_size: int = 32

    def __post_init__(self) -> None:
        if not 0.0 < self.eps <= 1.0:
            raise ValueError(f"eps must be in (0, 1] ([0,1] pixel units, e.g. 8/255), got {self.eps}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.step_size is not None and self.step_size <= 0:
            raise ValueError(f"step_size must be > 0, got {self.step_size}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps


def latent_shift(vae, x: torch.Tensor, anchors: torch.Tensor, cfg: NightshadeConfig = NightshadeConfig()
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Perturb ``x`` so that ``vae.encode(x + delta)`` mean approaches ``vae.encode(anchors)`` mean.

    Args:
        vae: a :class:`latentguard.models.LatentVAE` (``encode(x in [0,1]) -> (mean, logvar)``).
        x: ``[N,3,H,W]`` in [0,1], sizes a multiple of the VAE's factor; not modified.
        anchors: ``[N,3,H,W]`` target images (one per input).
        cfg: budget and PGD settings.

    Returns:
        ``(x_adv, dist_before, dist_after)``: perturbed images and per-image ``||mu(x) - mu(anchor)||_2``
        before and after (on the returned images).
    """
    if x.shape != anchors.shape:
        raise ValueError(f"x and anchors must have the same shape, got {tuple(x.shape)} and {tuple(anchors.shape)}")
    module = vae.model
    was_training = module.training
    req = [p.requires_grad for p in module.parameters()]
    module.eval().requires_grad_(False)
    dev = next(module.parameters()).device
    dtype = next(module.parameters()).dtype
    outs, before, after = [], [], []
    try:
        for i0 in range(0, len(x), cfg.batch_size):
            xb = x[i0 : i0 + cfg.batch_size].to(dev, dtype)
            with torch.no_grad():
                target = vae.encode(anchors[i0 : i0 + cfg.batch_size].to(dev, dtype))[0]
                mu0 = vae.encode(xb)[0]
            before.append((mu0 - target).flatten(1).norm(dim=1).cpu())
            delta = pgd(lambda xa, t=target: (vae.encode(xa.clamp(0, 1))[0] - t).pow(2).flatten(1).sum(1).sum(),
                        xb, eps=cfg.eps, alpha=cfg.alpha, steps=cfg.steps, maximize=False)
            with torch.no_grad():
                xa = (xb + delta).clamp(0, 1)
                after.append((vae.encode(xa)[0] - target).flatten(1).norm(dim=1).cpu())
            outs.append(xa.detach().to(x.device, x.dtype))
    finally:
        module.train(was_training)
        for p, r in zip(module.parameters(), req):
            p.requires_grad_(r)
    return torch.cat(outs), torch.cat(before), torch.cat(after)


def nightshade(pairs: PairSet, target: str, latent_target: str, vae, *, n_poison: int | None = None,
               fraction: float | None = None, cfg: NightshadeConfig = NightshadeConfig(), seed: int = 0,
               quantize: bool = True) -> tuple[PairSet, dict]:
    """Optimised poison: ``n_poison`` images of ``target`` (A) perturbed toward ``latent_target`` (B) latents.

    Captions stay A. Each poisoned image gets a random clean B image of the dataset as anchor.
    ``quantize`` rounds the result to 8 bits (what a PNG stores) so the returned pairs equal what is
    written; values rounded outside ``[x - eps, x + eps]`` step one level back inside (exact when ``x``
    is 8-bit and ``eps >= 1/255``).

    Returns:
        ``(new_pairs, stats)``; ``stats`` has per-poison ``index``, ``dist_before``, ``dist_after``
        (latent distance to the anchor) and ``linf``. New column ``latent_target`` (B for poison rows).
    """
    if target == latent_target:
        raise ValueError(f"target and latent_target must differ, got {target!r} twice")
    rng = np.random.default_rng(seed)
    cand = _concept_indices(pairs, target)
    ref = int(sum(1 for k, p in zip(pairs.concepts, pairs.poisoned) if k == target and not p))
    k = _count(len(cand), n_poison, fraction, ref, f"nightshade {target}->{latent_target}")
    chosen = np.sort(rng.choice(cand, k, replace=False))
    anchors_idx = rng.choice(_concept_indices(pairs, latent_target), k, replace=True)
    x = pairs.images[torch.from_numpy(chosen)]
    xa, d0, _ = latent_shift(vae, x, pairs.images[torch.from_numpy(anchors_idx)], cfg)
    if quantize:
        q = torch.round(xa * 255)
        q = torch.where(q / 255 > x + cfg.eps + 1e-7, q - 1, q)  # step back inside the budget, staying 8-bit
        q = torch.where(q / 255 < x - cfg.eps - 1e-7, q + 1, q)
        xa = q.clamp(0, 255) / 255
    with torch.no_grad():
        dev = next(vae.model.parameters()).device
        d1 = torch.cat([
            (vae.encode(xa[i : i + 64].to(dev))[0] - vae.encode(pairs.images[torch.from_numpy(anchors_idx[i : i + 64])].to(dev))[0])
            .flatten(1).norm(dim=1).cpu() for i in range(0, k, 64)
        ])
    images = pairs.images.clone()
    images[torch.from_numpy(chosen)] = xa.to(images.dtype)
    mask = pairs.poisoned.copy()
    mask[chosen] = True
    extra = {key: list(col) for key, col in pairs.extra.items()}
    lt = list(extra.get("latent_target", [""] * len(pairs)))
    for i in chosen:
        lt[i] = latent_target
    extra["latent_target"] = lt
    out = PairSet(images, pairs.captions, pairs.concepts, pairs.source_concepts, mask,
                  {k2: tuple(v) for k2, v in extra.items()})
    linf = (xa - x).flatten(1).abs().max(1).values
    stats = {"index": chosen.tolist(), "anchor_index": anchors_idx.tolist(), "dist_before": d0.tolist(),
             "dist_after": d1.tolist(), "linf": linf.tolist()}
    return out, stats
