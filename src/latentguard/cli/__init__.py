"""The ``latentguard`` command (entry point ``latentguard.cli:main``; ``python -m latentguard`` too).

It sits above every capability: each ``latentguard.<capability>.cli`` module plugs its sub-commands in
through ``register(subparsers)`` and never imports this package back (the options they share live in
:mod:`latentguard.core.cli_args`, their error type in :mod:`latentguard.core.errors`).
"""

from latentguard.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
