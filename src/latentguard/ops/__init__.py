"""The shared numerical layer under every capability: one copy of each kernel.

* :mod:`~latentguard.ops.metrics`: PSNR, SSIM, Frechet distance, metric objects and the metric registry.
* :mod:`~latentguard.ops.roc`: ROC curve, AUROC, TPR at a fixed FPR, balanced accuracy (scikit-learn).
* :mod:`~latentguard.ops.transforms`: JPEG (PIL and differentiable), resize, blur, noise, centre crop;
  fixed-strength functions and the random differentiable transforms of EOT.
* :mod:`~latentguard.ops.filters`: the one Gaussian window (SSIM, blur purifier, EOT blur).
* :mod:`~latentguard.ops.pgd`: projected-gradient primitives (start, step, decay, projection) and the plain loop.
* :mod:`~latentguard.ops.schedules`: learning-rate schedules and the EMA of the zoo recipes.
* :mod:`~latentguard.ops.runtime`, :mod:`~latentguard.ops.state`, :mod:`~latentguard.ops.grid`: devices,
  dtypes, seeded draws, frozen-module context, image grids.

Layering: ``ops`` imports ``core`` and ``io`` only; ``models`` and every capability import ``ops``.
Submodules are imported explicitly (``from latentguard.ops.metrics import psnr``); this file imports none
of them, so importing one kernel does not import the others.
"""
