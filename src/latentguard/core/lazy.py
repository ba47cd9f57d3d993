"""Package-level names loaded on first use (PEP 562), so that importing a package's light sub-modules
(its ``cli``, its ``config``) does not import torch.

A capability package lists its public names per sub-module::

    __all__, __getattr__, __dir__ = lazy_exports(__name__, {
        "latentguard.privacy.pullback": ("PullbackConfig", "analyze_pullback"),
    })

``latentguard.privacy.PullbackConfig`` and ``from latentguard.privacy import PullbackConfig`` work as with
eager imports. The first public name asked for imports *every* listed module, in the listed order, so
their import-time side effects (registrations) happen exactly as an eager ``__init__`` did them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, Sequence[str]]) -> tuple[list[str], Callable[[str], Any],
                                                                                Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package`` exporting ``exports`` (module -> names)."""
    owner = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in owner:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        pkg = sys.modules[package]
        for module, names in exports.items():
            mod = importlib.import_module(module)  # defers torch (and what the module imports) to first use
            for n in names:
                setattr(pkg, n, getattr(mod, n))
        return pkg.__dict__[name]

    def __dir__() -> list[str]:
        return sorted(set(sys.modules[package].__dict__) | set(owner))

    return sorted(owner), __getattr__, __dir__
