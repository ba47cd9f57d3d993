"""The named choices of the ops kernels' parameters, importable without torch.

Command-line parsers and config validation list these before any kernel (and torch) is imported;
:mod:`latentguard.ops.pgd` validates against the same tuples, so there is one copy of each.
"""

from __future__ import annotations

#: Perturbation norms of :func:`latentguard.ops.pgd.project` and the protect engine.
NORMS = ("linf", "l2")
#: Step-size decays of :func:`latentguard.ops.pgd.step_size`.
STEP_DECAYS = ("none", "linear", "cosine")
