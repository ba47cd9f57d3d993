"""Poison: audit text-image datasets for poisoning and measure model implosion (arXiv:2409.12314).

* :func:`alignment_difficulty` - the paper's Alignment Difficulty (AD) with exact blocked and sampled
  structure terms, per-pair and per-concept contributions for ranking suspicious pairs.
* :mod:`latentguard.poison.dataset` - the folder + captions-file dataset format.
* :mod:`latentguard.poison.poisons` - dirty-label, concept-swap and Nightshade-style optimised poisons.
* :mod:`latentguard.poison.implosion` - the k-poisoned-concepts fine-tuning experiment on ``zoo:t2i``.

See ``docs/poison.md``.
"""

# Loaded on first use: these modules import torch.
from latentguard.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "latentguard.poison.alignment": (
        "AlignmentResult", "alignment_difficulty", "naive_alignment_difficulty", "normalize_pairs",
        "scaled_similarity", "structure_row_sums", "structure_sampled",
    ),
})
