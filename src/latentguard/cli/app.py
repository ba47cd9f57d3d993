"""The ``latentguard`` command: one sub-command family per capability.

Capability packages plug in through a ``register(subparsers)`` function in ``latentguard.<cap>.cli``;
each sub-command sets ``func(args) -> int``. Building the parser imports no torch, numpy or diffusers
(the capability CLIs import them inside their command functions), so ``--help`` answers at once.
Errors the user can fix print one line and exit 2; the exit statuses are :mod:`latentguard.core.outputs`'s
(0 all done, 1 some inputs failed, 2 bad usage, 3 internal error, 130 interrupted), listed in every ``--help``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

from latentguard import __version__
from latentguard import demo
from latentguard.cli import preview as preview_cli
from latentguard.cli import survival as survival_cli
from latentguard.core import logs
from latentguard.core.errors import UserError
from latentguard.core.outputs import (EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_STATUS_HELP, EXIT_USAGE,
                                       check_out_dir)
from latentguard.evaluate import cli as evaluate_cli
from latentguard.harden import cli as harden_cli
from latentguard.poison import cli as poison_cli
from latentguard.privacy import cli as privacy_cli
from latentguard.protect import cli as protect_cli
from latentguard.scale import cli as scale_cli
from latentguard.serve import cli as serve_cli
from latentguard.zoo import cli as zoo_cli
from latentguard.zoo import protector_cli

# In the order `latentguard --help` lists them.
CAPABILITY_CLIS = (zoo_cli, protect_cli, protector_cli, harden_cli, privacy_cli, poison_cli, evaluate_cli, demo, serve_cli)

# Exceptions a user can fix, defined in modules that import torch: they are caught only when their module
# was imported (an exception of that type cannot exist otherwise), so this module stays torch-free.
_USER_ERRORS_ELSEWHERE = (("latentguard.models.errors", "ModelLoadError"),)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentguard",
        description="Security and privacy toolkit for latent diffusion models: protect, harden, audit.",
        epilog=EXIT_STATUS_HELP,
    )
    parser.add_argument("--version", action="version", version=f"latentguard {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show debug logs, tracebacks and the libraries' own notices and warnings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in CAPABILITY_CLIS:
        mod.register(sub)
    survival_cli.install(sub)  # protect --survival runs evaluate's survival (a layer above protect)
    preview_cli.attach_to_protect(sub)  # protect --preview runs the evaluate layer's preview
    _add_epilogs(sub)
    scale_cli.extend(sub)  # --engine ray on protect and audit alignment (code above the capabilities)
    return parser


def _add_epilogs(sub: argparse._SubParsersAction) -> None:
    """Every sub-command's ``--help`` ends with the exit statuses (unless it has an epilog of its own)."""
    for p in set(sub.choices.values()):
        if p.epilog is None:
            p.epilog = EXIT_STATUS_HELP
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                _add_epilogs(a)


def _os_error_line(exc: OSError) -> str:
    """One line for a file-system error the user can fix (a file where a folder should be, permissions, ...)."""
    what = exc.strerror or type(exc).__name__
    name = exc.filename if exc.filename is not None else ""
    hint = {FileExistsError: "a file with that name is in the way", NotADirectoryError: "a file is in the way of a folder",
            IsADirectoryError: "a folder is where a file should be", PermissionError: "check the permissions"}.get(type(exc))
    return f"{what}: {name}" + (f" ({hint})" if hint else "")


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exception types printed as one line with exit status 2 (``ValueError`` covers config errors,
    ``ImageLoadError`` and pydantic's validation errors)."""
    types: list[type[BaseException]] = [UserError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
                                        IsADirectoryError, PermissionError]
    for module, name in _USER_ERRORS_ELSEWHERE:
        mod = sys.modules.get(module)
        if mod is not None:
            types.append(getattr(mod, name))
    return tuple(types)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    logs.configure(args.verbose)  # the libraries' notices only with -v
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        if isinstance(getattr(args, "out", None), (str, Path)):  # every command's output folder, checked first
            check_out_dir(args.out)
        return int(args.func(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("latentguard: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:
        if isinstance(exc, user_error_types()) and not args.verbose:
            line = _os_error_line(exc) if isinstance(exc, OSError) and exc.filename is not None else str(exc)
            print(f"latentguard: error: {line or type(exc).__name__}", file=sys.stderr)
            return EXIT_USAGE
        traceback.print_exc()
        if not isinstance(exc, user_error_types()):
            print(f"latentguard: internal error ({type(exc).__name__}); please report the traceback above",
                  file=sys.stderr)
            return EXIT_INTERNAL
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
