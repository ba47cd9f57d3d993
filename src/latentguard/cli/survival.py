"""``latentguard protect ... --survival``: run :mod:`latentguard.evaluate.survival` on what protect just wrote.

Wired here, in the ``cli`` package, because ``protect`` sits below ``evaluate`` in the layers: the flag is added
to the protect parser after every capability registered, and its command function is wrapped.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def install(subparsers: argparse._SubParsersAction) -> None:
    """Add ``--survival`` (and its model / purification options) to ``latentguard protect``."""
    p = subparsers.choices.get("protect")
    if p is None:
        return
    g = p.add_argument_group("survival (after protecting)")
    g.add_argument("--survival", action="store_true",
                   help="then measure how much protection survives JPEG, resizing, denoising and purification "
                        "(latentguard survival; writes OUT/survival/)")
    g.add_argument("--survival-model", default="zoo:ldm-photo", metavar="SPEC",
                   help="editor for --survival (default: zoo:ldm-photo)")
    g.add_argument("--survival-purify", default=None, metavar="P1,P2",
                   help="purifications for --survival (default: the survival command's list)")
    inner = p.get_default("func")

    def run(args: argparse.Namespace) -> int:
        rc = int(inner(args) or 0)
        if args.survival and rc == 0:
            rc = survival_after_protect(args)
        return rc

    p.set_defaults(func=run)


def survival_after_protect(args: argparse.Namespace) -> int:
    """Score every image ``protect`` wrote into ``args.out`` (its ``results.jsonl``) against its input."""
    import shlex
    import sys

    # deferred: torch (the survival module and the image loader import it)
    from latentguard.evaluate.survival import DEFAULT_PURIFICATIONS, SurvivalItem, method_objective, run_survival
    from latentguard.io import JsonlWriter, load_image

    out = Path(args.out)
    rows: dict[str, dict] = {}
    for r in JsonlWriter(out / "results.jsonl", resume=True).rows():
        if r.get("status") == "ok":
            rows[r["key"]] = r
    obj = method_objective(args.method)
    items, seen = [], set()
    for r in rows.values():
        ident, k = Path(r["output"]).stem, 2
        while ident in seen:
            ident, k = f"{Path(r['output']).stem}-{k}", k + 1
        seen.add(ident)
        items.append(SurvivalItem(ident, load_image(r["output"]), load_image(r["input"]), args.method, obj,
                                  r["output"], r["input"]))
    if not items:
        print("latentguard: --survival: no protected image to score", file=sys.stderr)
        return 1
    purify = ([s.strip() for s in args.survival_purify.split(",") if s.strip()] if args.survival_purify
              else list(DEFAULT_PURIFICATIONS))
    engine = None
    if getattr(args, "engine", "local") == "ray":
        from latentguard.scale.survival import ray_survival_engine  # deferred: torch and ray

        engine = ray_survival_engine(args)
    run_survival(items, out / "survival", model=args.survival_model, purifications=purify, seed=args.seed,
                 device=args.device, dtype=args.dtype, progress=not args.no_progress, engine=engine,
                 command="latentguard " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    print(f"survival of {len(items)} image(s) -> {out / 'survival' / 'survival.csv'}")
    return 0
