"""Numbers and budgets as users write them: ``"16/255"`` (exact), ``0.0627`` -> ``[0,1]`` pixel units.

One parser for config files (:func:`parse_budget`) and one argparse type for every CLI (:func:`cli_number`).
"""

from __future__ import annotations

import argparse
import re
from fractions import Fraction
from typing import Any, Callable


def cli_number(example: str = "0.0627 or 16/255") -> Callable[[str], float]:
    """An argparse ``type`` reading a decimal or a fraction (``16/255``); the error names ``example``."""

    def parse(text: str) -> float:
        try:
            return float(Fraction(str(text).strip()))
        except (ValueError, ZeroDivisionError):
            raise argparse.ArgumentTypeError(f"not a number: {text!r} (use e.g. {example})") from None

    parse.__name__ = "number"  # argparse names the type in its messages
    return parse


def parse_budget(value: Any) -> tuple[float, str]:
    """``"16/255"`` -> (0.0627..., "16/255"); ``0.03`` -> (0.03, "0.03"). Must lie in ``[0, 1]``."""
    if isinstance(value, bool):
        raise ValueError(f"budget must be a number or 'N/255', got {value!r}")
    if isinstance(value, (int, float)):
        eps, label = float(value), f"{value:g}"
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*/\s*\d+(\.\d+)?\s*", value):
        num, den = (float(v) for v in value.split("/"))
        if den == 0:
            raise ValueError(f"budget {value!r} divides by zero")
        eps, label = num / den, value.replace(" ", "")
    elif isinstance(value, str):
        try:
            eps, label = float(value), value.strip()
        except ValueError:
            raise ValueError(f"budget must be a number in [0,1] or 'N/255', got {value!r}") from None
    else:
        raise ValueError(f"budget must be a number in [0,1] or 'N/255', got {value!r}")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"budget {value!r} is outside [0, 1] (pixel units: 16/255, not 16)")
    return eps, label
