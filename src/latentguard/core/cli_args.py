"""argparse pieces every capability's command line shares: the common options and the ``audit`` parent.

Capability CLIs (``latentguard.<capability>.cli``) import these from here, never from the ``latentguard``
entry point (:mod:`latentguard.cli`), which sits above every capability.

Two capabilities add audit sub-commands (privacy: ``audit membership`` / ``audit pullback``; poison:
``audit alignment``). Whichever ``register`` runs first creates the ``audit`` parser; the other reuses it.
The sub-subparsers object is cached on the top-level subparsers action.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

_CACHE_ATTR = "_latentguard_audit_subparsers"


def add_common_args(p: argparse.ArgumentParser, *, out: bool = True, model: bool = False) -> None:
    """Options every file-producing command shares: ``--device``, ``--dtype``, ``--seed`` (and ``--out``,
    ``--allow-pickle``)."""
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N (default: auto)")
    p.add_argument("--dtype", default="float32", help="float32|float16|bfloat16 (default: float32)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    if out:
        p.add_argument("--out", required=True, help="output folder (created)")
    if model:
        p.add_argument("--allow-pickle", action="store_true",
                       help="permit pickle checkpoints (loaded with weights_only=True); safetensors otherwise")


def add_resume_args(p: argparse.ArgumentParser, *, resume: str | None = "continue the run in --out: finished "
                    "inputs are skipped", overwrite: str = "start again in an --out that holds results "
                    "(they are replaced)") -> None:
    """``--resume`` (unless ``resume`` is None) and ``--overwrite``: without one of them a command refuses an
    ``--out`` that already holds results (:func:`latentguard.io.prepare_out_dir`)."""
    if resume is not None:
        p.add_argument("--resume", action="store_true", help=resume)
    p.add_argument("--overwrite", action="store_true", help=overwrite)


LOSSY_FORMATS = {"jpeg": ".jpg", "jpg": ".jpg", "webp": ".webp"}


def lossy_spec(text: str) -> tuple[str, int]:
    """argparse ``type`` of ``--lossy FORMAT[:QUALITY]`` (``jpeg:95``, ``webp:90``; quality 1-100, default 95) ->
    ``(format, quality)`` with format ``jpeg`` or ``webp``."""
    fmt, _, q = str(text).strip().lower().partition(":")
    if fmt not in LOSSY_FORMATS:
        raise argparse.ArgumentTypeError(f"{text!r}: use jpeg[:QUALITY] or webp[:QUALITY], e.g. jpeg:95 or webp:90")
    try:
        quality = int(q) if q else 95
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the quality must be an integer 1-100, e.g. jpeg:95") from None
    if not 1 <= quality <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: the quality must be 1-100")
    return ("jpeg" if fmt == "jpg" else fmt), quality


def get_audit_subparsers(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Return the sub-subparsers of ``latentguard audit``, creating the ``audit`` parser once.

    Args:
        subparsers: the top-level action returned by ``ArgumentParser.add_subparsers``.

    Returns:
        The ``add_subparsers`` action of the ``audit`` parser; call ``add_parser(name, ...)`` on it.
    """
    cached = getattr(subparsers, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    audit = subparsers.add_parser(
        "audit",
        help="audit a model: membership inference, decoder pullback geometry, dataset alignment",
        description="Audit a latent diffusion model or its training data.",
    )
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="AUDIT")
    audit.set_defaults(func=lambda args: (audit.print_help(), 2)[1])
    setattr(subparsers, _CACHE_ATTR, audit_sub)
    return audit_sub


def defer_options(parser: argparse.ArgumentParser, build: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``parser``'s options with ``build(parser)`` only when the sub-command is parsed or its help or
    usage is printed.

    For a sub-command whose options are generated from a config class that lives in a torch module:
    ``latentguard --help`` (and every other command) then builds the whole command tree without importing
    it. ``build`` runs at most once.
    """
    pending = [build]

    def ensure() -> None:
        if pending:
            pending.pop()(parser)

    for name in ("parse_known_args", "format_help", "format_usage"):
        method = getattr(parser, name)

        def wrapped(*args, _method=method, **kwargs):
            ensure()
            return _method(*args, **kwargs)

        setattr(parser, name, wrapped)
