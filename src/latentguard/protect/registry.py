"""The registry of protections, by name, and the engine's parameter choices: torch-free.

Names are known before their modules are imported: :data:`BUILTIN` maps every bundled method to the
module that defines (and registers) it, so ``latentguard protect --help`` and config validation list the
methods without importing torch; :func:`get_class` imports the module on first use. Classes registered at
run time with :func:`register` (plugins, tests) join the same registry.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any

from latentguard.ops.choices import NORMS, STEP_DECAYS  # noqa: F401  (the engine's choices, re-exported for parsers)

if TYPE_CHECKING:
    from latentguard.protect.engine import Protection

PRESETS = ("default", "source", "robust")

# Every bundled method -> the module that registers it (a test checks this table against the classes).
BUILTIN: dict[str, str] = {
    "none": "latentguard.protect.baselines",
    "random-noise": "latentguard.protect.baselines",
    "pca+": "latentguard.protect.pca",
    "pca-": "latentguard.protect.pca",
    "pca-adaptive": "latentguard.protect.pca",
    "photoguard-enc": "latentguard.protect.photoguard",
    "photoguard-diff": "latentguard.protect.photoguard",
    "pid": "latentguard.protect.pid",
    "advdm": "latentguard.protect.advdm",
    "mist": "latentguard.protect.mist",
    "sds+": "latentguard.protect.sds",
    "sds-": "latentguard.protect.sds",
    "fast": "latentguard.protect.fast",
}

_REGISTRY: dict[str, type[Protection]] = {}


def register(cls: type[Protection]) -> type[Protection]:
    """Class decorator: make a protection available under ``cls.name``."""
    # The base class lives with the engine (torch); a class being registered has imported it already.
    from latentguard.protect.engine import Protection

    if not (isinstance(cls, type) and issubclass(cls, Protection)):
        raise TypeError("register() takes a Protection subclass")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"protection {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a protection registered at run time (e.g. by a test); the bundled ones cannot be removed."""
    if name in BUILTIN:
        raise ValueError(f"{name!r} is a bundled protection and cannot be unregistered")
    _REGISTRY.pop(name, None)


def available() -> list[str]:
    """Every protection name (sorted): the bundled ones and those registered at run time."""
    return sorted(set(BUILTIN) | set(_REGISTRY))


def check_name(name: str) -> str:
    """``name`` if it names a protection; ``ValueError`` listing the available ones otherwise (no import)."""
    if name not in BUILTIN and name not in _REGISTRY:
        raise ValueError(f"unknown protection method {name!r}; available: {', '.join(available())}")
    return name


def get_class(name: str) -> type[Protection]:
    """The class registered as ``name`` (its module is imported on first use)."""
    check_name(name)
    if name not in _REGISTRY:
        importlib.import_module(BUILTIN[name])  # defers torch: the method modules import it
    return _REGISTRY[name]


def parameter_names(name: str) -> set[str]:
    """The keyword parameters :func:`get` accepts for ``name`` (imports its module)."""
    return {f.name for f in dataclasses.fields(get_class(name)) if f.init}


def get(name: str, *, preset: str = "default", **params: Any) -> Protection:
    """Build a registered protection: ``get("pca+", vae="zoo:vae-a", eps=16/255, steps=40)``.

    ``preset="source"`` starts from the method's published defaults (converted to [0,1] units, see each
    class's ``SOURCE``) instead of the common comparison budget (eps 16/255, alpha 2/255, 40 steps);
    ``preset="robust"`` (the encoder-only methods: pca+, pca-, pca-adaptive, photoguard-enc) adds EOT over the
    purifications it should survive (the class's ``ROBUST``: JPEG q in [50, 95] and resize in [0.5, 1], see
    docs/survival.md); explicit ``params`` override any preset.
    """
    cls = get_class(name)
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    fields = parameter_names(name)
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(sorted(fields))}")
    if preset == "robust" and getattr(cls, "ROBUST", None) is None:
        robust = sorted(n for n in BUILTIN if BUILTIN[n] in ("latentguard.protect.pca", "latentguard.protect.photoguard")
                        and getattr(get_class(n), "ROBUST", None) is not None)
        raise ValueError(f"{name}: preset 'robust' is for the encoder-only methods ({', '.join(robust)})")
    base = dict(cls.SOURCE) if preset == "source" else dict(cls.ROBUST) if preset == "robust" else {}
    base.update(params)
    return cls(**base)
