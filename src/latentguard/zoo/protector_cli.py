"""``latentguard protector train --vae SPEC[,SPEC...] --data DIR --objective pca+ --eps 16/255 --out DIR``.

Trains a feed-forward protector (:mod:`latentguard.zoo.train.protector`) that ``latentguard protect --method fast
--protector OUT`` then uses. A protector protects against the VAEs it was trained against: against Stable
Diffusion, train it on SD's VAE (``--vae stabilityai/sd-vae-ft-mse``, on a GPU).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from latentguard.core.cli_args import add_common_args
from latentguard.core.errors import UserError
from latentguard.core.units import cli_number

# The encoder-only protections a protector can be trained on (latentguard.protect.fast.ENCODER_ONLY; a test
# checks the two agree, so the parser stays torch-free).
OBJECTIVES = ("pca+", "pca-", "pca-adaptive", "photoguard-enc", "pid")

_number = cli_number("16/255 or 0.0627")


def _comma_list(convert, what: str):
    """An argparse type: comma-separated values through ``convert`` (``what`` names them in the error)."""

    def parse(text: str) -> list:
        try:
            vals = [convert(t) for t in text.split(",") if t.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}s, got {text!r}") from None
        if not vals:
            raise argparse.ArgumentTypeError(f"expected at least one {what}")
        return vals

    return parse


_ints = _comma_list(int, "integer")
_floats = _comma_list(float, "number")


def _train(args: argparse.Namespace) -> int:
    # deferred: torch and diffusers (the training module imports them)
    from pathlib import Path

    import torch

    from latentguard.zoo.train.protector import TrainConfig, train_protector

    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    data = Path(args.data)
    if not data.is_dir():
        raise UserError(f"--data {args.data}: not a folder of images")
    if args.val_data and not Path(args.val_data).is_dir():
        raise UserError(f"--val-data {args.val_data}: not a folder of images")
    vaes = [v.strip() for v in args.vae.split(",") if v.strip()]
    eot = args.eot or ""
    if args.preset == "robust":
        if args.eot:
            raise UserError("--preset robust sets the EOT transforms itself; give --eot or --preset robust, not both")
        from latentguard.ops.transforms import ROBUST_EOT  # deferred: torch

        eot = ROBUST_EOT
    cfg = TrainConfig(vaes=vaes, objective=args.objective, eps=float(args.eps), steps=args.steps,
                      batch_size=args.batch_size, crop_sizes=args.crop_sizes,
                      lr=args.lr, warmup=args.warmup, transforms=eot, channels=args.channels, blocks=args.blocks, seed=args.seed,
                      checkpoint_every=args.checkpoint_every, val_every=args.val_every,
                      max_minutes=args.max_minutes, stop_at=args.stop_at, device=args.device, tile_size=args.tile_size,
                      tile_overlap=args.tile_overlap, **({"scales": args.scales} if args.scales else {}))
    try:
        cfg.validate()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    command = "latentguard " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    summary = train_protector(cfg, data, args.out, val_data=args.val_data, resume=args.resume,
                              progress=not args.no_progress, accelerate=args.accelerate, command=command)
    if summary:
        v = summary.get("final_val") or {}
        print(f"trained {summary['steps_done']} steps ({summary['stopped_by']}) -> {args.out}; held-out {args.objective} "
              f"objective: protector {v.get('objective', float('nan')):.4g}, equal-budget noise "
              f"{v.get('objective_noise', float('nan')):.4g}, clean {v.get('objective_clean', float('nan')):.4g}")
        print(f"use it: latentguard protect IMAGES --method fast --protector {args.out} --out DIR")
    return 0


def register(subparsers) -> None:
    """Add ``latentguard protector train`` to the CLI."""
    p = subparsers.add_parser(
        "protector", help="train a feed-forward protector for `protect --method fast`",
        description="Feed-forward protectors: one network pass instead of T gradient steps. A protector protects "
                    "against the VAEs it was trained against.")
    ps = p.add_subparsers(dest="protector_command", metavar="ACTION")
    q = ps.add_parser(
        "train", help="train a protector against one or more VAEs",
        description="Train a protector G (eps*tanh, L-inf by construction) to maximise/minimise an encoder-only "
                    "protection's objective averaged over the VAEs, on random crops of a folder of images. Writes "
                    "OUT/config.json + diffusion_pytorch_model.safetensors, checkpoints/, train_log.jsonl, "
                    "val_log.jsonl, val/*.png, curve.png, run.json. Against Stable Diffusion: "
                    "--vae stabilityai/sd-vae-ft-mse on a GPU.")
    q.add_argument("--vae", required=True, metavar="SPEC[,SPEC...]",
                   help="surrogate VAE(s): zoo:NAME, a diffusers folder or a hub id; comma-separated for an ensemble")
    q.add_argument("--data", required=True, metavar="DIR", help="folder of training images (searched recursively)")
    q.add_argument("--val-data", default=None, metavar="DIR",
                   help="held-out images for the validation figure (default: the last ~10%% of --data)")
    q.add_argument("--objective", default="pca+", choices=OBJECTIVES, help="base protection (default: pca+)")
    q.add_argument("--eps", type=_number, default=16 / 255, help="L-inf budget in [0,1] units (default 16/255)")
    q.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    q.add_argument("--batch-size", type=int, default=8, help="crops per step (default 8)")
    q.add_argument("--crop-sizes", type=_ints, default=[64, 96, 128], metavar="N,N",
                   help="crop sides, cycled per step (default 64,96,128)")
    q.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 2e-3)")
    q.add_argument("--warmup", type=int, default=50, help="warm-up steps (default 50)")
    q.add_argument("--eot", default=None, metavar="T1,T2",
                   help="EOT transforms, e.g. jpeg:50-90,resize,identity (one draw per step)")
    q.add_argument("--preset", choices=("default", "robust"), default="default",
                   help="robust: EOT over the purifications it should survive (JPEG q 50-95, resize 0.5-1: the "
                        "encoder-only methods' robust preset)")
    q.add_argument("--scales", type=_floats, default=None, metavar="S,S",
                   help="resize factors in (0, 1] of the training images the crops come from "
                        "(default 1,0.5,0.35,0.25,0.18,0.12)")
    q.add_argument("--channels", type=_ints, default=[16, 32, 64], metavar="C0,C1,C2",
                   help="widths at full, 1/2, 1/4 resolution (default 16,32,64)")
    q.add_argument("--blocks", type=int, default=2, help="residual blocks at 1/4 resolution (default 2)")
    q.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (default 200)")
    q.add_argument("--val-every", type=int, default=200, help="steps between validation figures (default 200)")
    q.add_argument("--max-minutes", type=float, default=0.0, help="stop after this wall time (0: no limit)")
    q.add_argument("--stop-at", type=int, default=0, help="stop after this step (the schedule still spans --steps)")
    q.add_argument("--tile-size", type=int, default=512, help="inference tile size written to the model (default 512)")
    q.add_argument("--tile-overlap", type=int, default=64, help="inference tile overlap (default 64)")
    q.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUT/checkpoints")
    q.add_argument("--accelerate", action="store_true",
                   help="train through HuggingFace accelerate (launch with `accelerate launch -m latentguard ...`)")
    q.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_common_args(q, out=True)
    q.set_defaults(func=_train)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
