"""Helpers for latentguard's own tests (imports pytest lazily)."""

from __future__ import annotations

from latentguard.io.datasets import DataUnavailableError
from latentguard.models.registry import available


def require_zoo(*names: str, hint: str = "latentguard zoo train NAME") -> None:
    """Skip the calling test, with the reason, when a zoo model's weights are absent.

    ``hint`` says how to build them (default: the zoo's own recipes).
    """
    import pytest

    missing = [n for n in names if n not in set(available())]
    if missing:
        pytest.skip(f"zoo weights not built: {', '.join(missing)} ({hint})")


def require_data(fn, *args):
    """Call a data set loader of :mod:`latentguard.io.datasets`; skip when its Debian data package is not installed."""
    import pytest

    try:
        return fn(*args)
    except DataUnavailableError as exc:
        pytest.skip(str(exc))
