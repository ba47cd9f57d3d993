"""The ``latentguard`` command: one sub-command family per capability.

Capability packages plug in through a ``register(subparsers)`` function in ``latentguard.<cap>.cli``;
each sub-command sets ``func(args) -> int``. Errors the user can fix print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from latentguard import __version__
from latentguard.core.errors import UserError

CAPABILITY_CLIS = (
    "latentguard.zoo.cli",
    "latentguard.protect.cli",
    "latentguard.harden.cli",
    "latentguard.privacy.cli",
    "latentguard.poison.cli",
    "latentguard.evaluate.cli",
    "latentguard.demo",
    "latentguard.serve.cli",
)


def add_common_args(p: argparse.ArgumentParser, *, out: bool = True, model: bool = False) -> None:
    """Options every file-producing command shares."""
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N (default: auto)")
    p.add_argument("--dtype", default="float32", help="float32|float16|bfloat16 (default: float32)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    if out:
        p.add_argument("--out", required=True, help="output folder (created)")
    if model:
        p.add_argument("--allow-pickle", action="store_true",
                       help="permit pickle checkpoints (loaded with weights_only=True); safetensors otherwise")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentguard",
        description="Security and privacy toolkit for latent diffusion models: protect, harden, audit.",
    )
    parser.add_argument("--version", action="version", version=f"latentguard {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logs and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod_name in CAPABILITY_CLIS:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name and mod_name.startswith(exc.name):  # capability not built in this checkout
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from latentguard.io.images import ImageLoadError
    from latentguard.models.loading import ModelLoadError

    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, ModelLoadError, ImageLoadError, FileNotFoundError) as exc:
        if args.verbose:
            raise
        print(f"latentguard: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("latentguard: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
