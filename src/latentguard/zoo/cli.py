"""``latentguard zoo list | show NAME | train NAME | export NAME DIR``."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from latentguard.models import registry


def _list(args) -> int:
    have = set(registry.available())
    for name, e in registry.ENTRIES.items():
        state = "bundled" if name in have else "not built"
        print(f"zoo:{name:<13} {e.kind:<6} {state:<10} {e.summary}")
    return 0


def _show(args) -> int:
    entry = registry.get_entry(args.name)
    card = registry.cards_root() / f"{entry.name}.md"
    if card.exists():
        print(card.read_text())
    else:
        print(f"zoo:{entry.name}: {entry.summary}\n(no card yet)")
    folder = registry.weights_root() / entry.name
    if folder.is_dir():
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"\nweights: {folder} ({size / 1e6:.1f} MB)")
    return 0


def _train(args) -> int:
    # deferred: torch (the recipes, the runtime and io import it); `zoo list` and `--help` stay torch-free
    from latentguard.ops.runtime import resolve_device
    from latentguard.io import write_manifest
    from latentguard.zoo.train.recipes import check_init, recipe_names, recipe_seed, train

    if args.name not in recipe_names():
        raise ValueError(f"zoo:{args.name} has no training recipe here (recipes: {', '.join(recipe_names())})")
    check_init(args.name, Path(args.init) if args.init else None)
    dev = resolve_device(args.device)
    out = Path(args.out)
    cfg = {"name": args.name, "device": str(dev), "steps": args.steps, "max_minutes": args.max_minutes,
           "zoo_dir": args.zoo_dir, "stop_at": args.stop_at, "init": args.init, "finetune_steps": args.finetune_steps}
    write_manifest(out, f"latentguard zoo train {args.name}", cfg, recipe_seed(args.name))
    train(args.name, out, str(dev), args.steps, args.max_minutes,
          zoo_dir=Path(args.zoo_dir) if args.zoo_dir else None, stop_at=args.stop_at,
          init=Path(args.init) if args.init else None, finetune_steps=args.finetune_steps)
    print(f"wrote {out}")
    return 0


def _export(args) -> int:
    """Write a self-contained diffusers pipeline folder (StableDiffusionPipeline.from_pretrained loads it)."""
    # deferred: torch and diffusers
    from latentguard.io import write_manifest
    from latentguard.models import load_pipeline

    entry = registry.get_entry(args.name)
    out = Path(args.out)
    if entry.kind == "vae":
        shutil.copytree(registry.model_dir(entry.name), out, dirs_exist_ok=True)
    elif entry.kind in registry.PIPELINE_KINDS:
        pipe = load_pipeline(f"zoo:{entry.name}", kind="text2img")
        pipe.save_pretrained(out, safe_serialization=True)
    else:
        shutil.copytree(registry.model_dir(entry.name), out, dirs_exist_ok=True)
    write_manifest(out, f"latentguard zoo export {entry.name}", {"name": entry.name}, None)
    print(f"wrote {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="the bundled offline model family", description="The bundled offline model family.")
    zs = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    q = zs.add_parser("list", help="list zoo models")
    q.set_defaults(func=_list)
    q = zs.add_parser("show", help="print a model's card")
    q.add_argument("name")
    q.set_defaults(func=_show)
    q = zs.add_parser("train", help="rebuild a zoo model from its recipe")
    q.add_argument("name")
    q.add_argument("--out", required=True, help="output folder")
    q.add_argument("--device", default="auto")
    q.add_argument("--steps", type=int, help="override the recipe's steps (e.g. a smoke run)")
    q.add_argument("--max-minutes", type=float, help="stop after this many minutes")
    q.add_argument("--stop-at", type=int, help="stop at this step (the lr schedule still spans --steps)")
    q.add_argument("--zoo-dir", help="folder holding the VAE a t2i recipe encodes with (default: bundled)")
    q.add_argument("--init", help="vae-a: run only its fine-tune stage from this stage-1 folder; ldm-photo: its stage 2 (FINISH) from it")
    q.add_argument("--finetune-steps", type=int, help="override the second stage's steps")
    q.set_defaults(func=_train)
    q = zs.add_parser("export", help="write a zoo model as a standalone diffusers folder")
    q.add_argument("name")
    q.add_argument("out")
    q.set_defaults(func=_export)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
