"""A per-step progress bar driven by the engine's ``callback`` (:class:`~latentguard.protect.engine.StepInfo`).

``latentguard protect`` shows two bars: images (outer) and the steps of the current image (inner), with the
step count, the work per step (tiles x EOT samples x surrogates) and tqdm's ETA. Torch-free.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


class StepBar:
    """``method.protect(x, callback=StepBar())``: one tqdm bar over the steps, reset for every image.

    Args:
        desc: the bar's label (default: the method's name).
        disable: no bar at all (``--no-progress``).
        position: tqdm line (1: under an outer per-image bar).
        file: where the bar is drawn (stderr).
    """

    def __init__(self, desc: str | None = None, *, disable: bool = False, position: int = 1,
                 file: TextIO | None = None) -> None:
        self.desc, self.disable, self.position = desc, disable, position
        self.file = file if file is not None else sys.stderr
        self.bar: Any = None
        self.last: Any = None

    def __call__(self, info: Any) -> None:
        self.last = info
        if self.disable:
            return
        if self.bar is None or info.step == 1 or self.bar.total != info.steps:
            from tqdm.auto import tqdm  # deferred with the bar: tqdm.auto probes the notebook environment

            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=info.steps, desc=self.desc or info.method, unit="step", leave=False,
                            position=self.position, file=self.file, dynamic_ncols=True)
        work = f"{info.tiles} tile{'s' if info.tiles != 1 else ''}"
        if info.eot_samples > 1 or info.vaes > 1:
            work += f" x {info.eot_samples} EOT x {info.vaes} VAE{'s' if info.vaes != 1 else ''}"
        self.bar.set_postfix_str(work, refresh=False)
        self.bar.update(info.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
