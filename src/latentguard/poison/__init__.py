"""Poison: audit text-image datasets for poisoning and measure model implosion (arXiv:2409.12314).

* :func:`alignment_difficulty` - the paper's Alignment Difficulty (AD) with exact blocked and sampled
  structure terms, per-pair and per-concept contributions for ranking suspicious pairs.
* :mod:`latentguard.poison.dataset` - the folder + captions-file dataset format.
* :mod:`latentguard.poison.poisons` - dirty-label, concept-swap and Nightshade-style optimised poisons.
* :mod:`latentguard.poison.implosion` - the k-poisoned-concepts fine-tuning experiment on ``zoo:t2i``.

See ``docs/poison.md``.
"""

from latentguard.poison.alignment import (
    AlignmentResult,
    alignment_difficulty,
    naive_alignment_difficulty,
    normalize_pairs,
    scaled_similarity,
    structure_row_sums,
    structure_sampled,
)

__all__ = [
    "AlignmentResult", "alignment_difficulty", "naive_alignment_difficulty", "normalize_pairs",
    "scaled_similarity", "structure_row_sums", "structure_sampled",
]
