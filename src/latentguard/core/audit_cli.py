"""Shared ``latentguard audit`` parent command.

Two capabilities add audit sub-commands (privacy: ``audit membership`` / ``audit pullback``;
poison: ``audit alignment``). Whichever ``register`` runs first creates the ``audit`` parser;
the other reuses it. The sub-subparsers object is cached on the top-level subparsers action.
"""

from __future__ import annotations

import argparse

_CACHE_ATTR = "_latentguard_audit_subparsers"


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
