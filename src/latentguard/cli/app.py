"""The ``latentguard`` command: one sub-command family per capability.

Capability packages plug in through a ``register(subparsers)`` function in ``latentguard.<cap>.cli``;
each sub-command sets ``func(args) -> int``. Building the parser imports no torch, numpy or diffusers
(the capability CLIs import them inside their command functions), so ``--help`` answers at once.
Errors the user can fix print one line and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from latentguard import __version__
from latentguard import demo
from latentguard.core.errors import UserError
from latentguard.evaluate import cli as evaluate_cli
from latentguard.harden import cli as harden_cli
from latentguard.poison import cli as poison_cli
from latentguard.privacy import cli as privacy_cli
from latentguard.protect import cli as protect_cli
from latentguard.serve import cli as serve_cli
from latentguard.zoo import cli as zoo_cli

# In the order `latentguard --help` lists them.
CAPABILITY_CLIS = (zoo_cli, protect_cli, harden_cli, privacy_cli, poison_cli, evaluate_cli, demo, serve_cli)

# Exceptions a user can fix, defined in modules that import torch: they are caught only when their module
# was imported (an exception of that type cannot exist otherwise), so this module stays torch-free.
_USER_ERRORS_ELSEWHERE = (("latentguard.models.errors", "ModelLoadError"),)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentguard",
        description="Security and privacy toolkit for latent diffusion models: protect, harden, audit.",
    )
    parser.add_argument("--version", action="version", version=f"latentguard {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logs and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in CAPABILITY_CLIS:
        mod.register(sub)
    return parser


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exception types printed as one line with exit status 2 (``ValueError`` covers config errors,
    ``ImageLoadError`` and pydantic's validation errors)."""
    types: list[type[BaseException]] = [UserError, ValueError, FileNotFoundError]
    for module, name in _USER_ERRORS_ELSEWHERE:
        mod = sys.modules.get(module)
        if mod is not None:
            types.append(getattr(mod, name))
    return tuple(types)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("latentguard: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return 0
    except Exception as exc:
        if args.verbose or not isinstance(exc, user_error_types()):
            raise
        print(f"latentguard: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
