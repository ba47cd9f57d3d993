"""Model state helpers shared by every capability."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import nn


@contextmanager
def frozen(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Eval mode and ``requires_grad=False`` for every parameter inside; the exact prior state (per
    sub-module training flag, per parameter ``requires_grad``) is restored on exit, even on error."""
    seen: set[int] = set()
    saved_modes: list[tuple[nn.Module, bool]] = []
    saved_grads: list[tuple[nn.Parameter, bool]] = []
    for m in modules:
        if m is None or id(m) in seen:
            continue
        seen.add(id(m))
        saved_modes.extend((sub, sub.training) for sub in m.modules())
        saved_grads.extend((p, p.requires_grad) for p in m.parameters())
    try:
        for m, _ in saved_modes:
            m.training = False
        for p, _ in saved_grads:
            p.requires_grad_(False)
        yield
    finally:
        for m, mode in saved_modes:
            m.training = mode
        for p, rg in saved_grads:
            p.requires_grad_(rg)
