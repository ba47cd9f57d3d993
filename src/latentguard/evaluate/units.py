"""Kept for imports written before the parser moved: see :mod:`latentguard.core.units`."""

from latentguard.core.units import parse_budget

__all__ = ["parse_budget"]
