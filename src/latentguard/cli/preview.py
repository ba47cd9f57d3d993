"""``latentguard protect ... --preview``: the preview (``latentguard.evaluate.preview``) after the protection.

The preview lives in ``evaluate``, above ``protect``, so ``protect``'s own module cannot call it; this module
adds the flags to the ``protect`` parser and runs the preview on what the protection wrote (``OUT/preview/``).
"""

from __future__ import annotations

import argparse

from latentguard.core.outputs import finish
from latentguard.evaluate.cli import add_preview_args, editor_from_args


def attach_to_protect(subparsers: argparse._SubParsersAction) -> None:
    """Add ``--preview`` (and the editor options) to the ``protect`` sub-command and wrap its function."""
    p = subparsers.choices["protect"]
    g = p.add_argument_group("preview (after protecting)")
    g.add_argument("--preview", action="store_true",
                   help="also write OUT/preview/: per image a side-by-side PNG (clean | protected | difference | "
                        "equal-budget noise, and what the editor makes of each) and preview.csv/json")
    add_preview_args(g, prefix="preview-")
    protect = p.get_default("func")

    def run(args: argparse.Namespace) -> int:
        editor = editor_from_args(args) if args.preview else None  # a bad --editor fails before the protection
        rc = int(protect(args) or 0)
        if editor is None:
            return rc
        from latentguard.evaluate.preview import preview_protect_folder  # defers torch

        res = preview_protect_folder(args.out, editor=editor, seed=args.seed, size=args.preview_size,
                                     progress=not args.no_progress)
        print(f"preview: {res['ok']} image(s)" + (f", {res['error']} failed" if res["error"] else "")
              + f" -> {args.out}/preview")
        return max(rc, finish([(e["protected"], e["error"]) for e in res["errors"]], what="preview"))

    p.set_defaults(func=run)
