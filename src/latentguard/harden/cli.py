"""``latentguard harden``: SRL-VAE fine-tuning from the command line.

Every :class:`~latentguard.harden.config.SRLConfig` field is a flag (``--eps 15/255``, ``--orig-weight 0.1``,
...); unset flags take the ``--preset``'s value (``default`` unless given).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from typing import TYPE_CHECKING

from latentguard.core.cli_args import add_common_args, defer_options
from latentguard.core.errors import UserError
from latentguard.core.units import cli_number

if TYPE_CHECKING:
    from latentguard.harden.config import SRLConfig

_HELP = {
    "eps": "l_inf budget of the inner PGD in [0,1] units (fractions allowed: 15/255)",
    "attack_steps": "PGD iterations per batch",
    "attack_alpha": "PGD step size (default 2.5*eps/steps)",
    "attack_random_start": "start PGD from U(-eps, eps)",
    "perceptual": "perceptual term: none (MSE only) | grad-ssim (weight-free LPIPS stand-in)",
    "attack_perceptual_weight": "lambda of the perceptual term in the attack objective",
    "recon_perceptual_weight": "lambda of the perceptual term in the outer reconstruction loss",
    "kl_weight": "weight of the KL to N(0,I) on perturbed inputs",
    "orig_weight": "weight of the originality regulariser ||s(E(x)-E0(x))||^2",
    "clean_ratio": "fraction of steps trained on clean instead of adversarial batches, in [0,1)",
    "sample_latent": "decode a sampled latent (VAE loss) rather than the posterior mean",
    "lr": "peak AdamW learning rate of the encoder",
    "weight_decay": "AdamW weight decay",
    "grad_clip": "gradient-norm clip ('none' disables)",
    "warmup_steps": "linear warm-up steps",
    "min_lr_ratio": "cosine floor as a fraction of lr",
    "steps": "optimisation steps",
    "batch_size": "crops per step",
    "crop": "crop size in pixels (multiple of the VAE's factor)",
    "scales": "comma-separated resize factors the crops are drawn from",
    "checkpoint_every": "steps between checkpoints",
    "keep_checkpoints": "checkpoints kept",
    "log_every": "steps between JSONL log rows",
    "save_dtype": "dtype of the saved weights: float32|float16|bfloat16",
    "probe_size": "training-distribution crops of the end-of-run probe (0: skip)",
    "probe_attack_steps": "PGD steps of the probe attack",
}


_number = cli_number("0.0588 or 15/255")


def _opt_number(text: str) -> float | None:
    return None if text.strip().lower() in ("none", "off") else _number(text)


def _scales(text: str) -> tuple[float, ...]:
    try:
        return tuple(_number(t) for t in text.split(",") if t.strip())
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"scales must be comma-separated numbers, got {text!r}") from None


_UNSET = object()


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """``--preset`` and one flag per :class:`SRLConfig` field (added when the command is parsed: see
    :func:`~latentguard.core.cli_args.defer_options`)."""
    # deferred: torch (harden.config imports harden.crops and harden.perceptual, which import it)
    from latentguard.harden.config import SRLConfig
    from latentguard.harden.recipes import PRESETS

    p.add_argument("--preset", default="default", choices=sorted(PRESETS), help="base recipe (default: default)")
    g = p.add_argument_group("SRL-VAE recipe (unset: the preset's value)")
    for f in dataclasses.fields(SRLConfig):
        if f.name == "seed":
            continue  # --seed from the common args
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        helptext = f"{_HELP.get(f.name, f.name)} (default: {default!r})"
        if isinstance(default, bool):
            p_kw = dict(action=argparse.BooleanOptionalAction, default=_UNSET)
        elif f.name in ("attack_alpha", "grad_clip"):
            p_kw = dict(type=_opt_number, default=_UNSET, metavar="X")
        elif f.name == "scales":
            p_kw = dict(type=_scales, default=_UNSET, metavar="S1,S2,...")
        elif isinstance(default, int):
            p_kw = dict(type=int, default=_UNSET, metavar="N")
        elif isinstance(default, float):
            p_kw = dict(type=_number, default=_UNSET, metavar="X")
        else:
            p_kw = dict(default=_UNSET)
        g.add_argument(flag, dest=f"cfg_{f.name}", help=helptext, **p_kw)


def config_from_args(args: argparse.Namespace) -> SRLConfig:
    """The preset with every explicitly given flag applied (validated)."""
    # deferred: torch (see _add_config_flags)
    from latentguard.harden.config import SRLConfig
    from latentguard.harden.recipes import get_preset

    base = get_preset(args.preset)
    changes = {f.name: getattr(args, f"cfg_{f.name}", _UNSET) for f in dataclasses.fields(SRLConfig)
               if f.name != "seed"}
    changes = {k: v for k, v in changes.items() if v is not _UNSET}
    if getattr(args, "seed", None) is not None:
        changes["seed"] = args.seed
    return base.replace(**changes)


def _run(args: argparse.Namespace) -> int:
    # deferred: torch (the trainer and the model loader import it, and diffusers)
    import torch

    from latentguard.harden.trainer import harden, launched_distributed
    from latentguard.models import load_vae

    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    cfg = config_from_args(args)
    if launched_distributed() and not args.accelerate:
        raise UserError("this process was started by a multi-process launcher (WORLD_SIZE > 1) but --accelerate "
                        "is not given: add --accelerate (see docs/harden.md, multi-GPU)")
    # under accelerate every process loads the VAE on the CPU; harden() copies it to its own device
    load_device = "cpu" if args.accelerate else args.device
    if args.accelerate and str(args.dtype).lower() in ("float16", "fp16", "half"):
        raise UserError("--dtype float16 cannot be combined with --accelerate (the VAE is loaded on the CPU first; "
                        "training is float32 anyway): use --dtype float32 or bfloat16")
    vae = load_vae(args.vae, device=load_device, dtype=args.dtype, allow_pickle=args.allow_pickle)
    res = harden(vae, args.data, cfg, out_dir=args.out, resume=args.resume, device=args.device,
                 progress=not args.no_progress, max_minutes=args.max_minutes, accelerate=args.accelerate,
                 command="latentguard " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    if args.accelerate:
        from accelerate import PartialState  # deferred: accelerate

        if not PartialState().is_main_process:
            return 0  # only the main process reports
    status = "complete" if res.complete else f"stopped at step {res.steps_done}/{cfg.steps} (--resume continues)"
    print(f"SRL-VAE {status} in {res.minutes:.1f} min; hardened VAE: {res.vae_dir} (load_vae('{args.out}'))")
    if res.probe:
        p = res.probe
        print("probe on training crops (PSNR dB)  clean: original {:.2f} hardened {:.2f} | "
              "white-box eps {:.4f}: original {:.2f} hardened {:.2f}".format(
                  p["original_clean_psnr"], p["hardened_clean_psnr"], cfg.eps, p["original_adv_psnr"],
                  p["hardened_adv_psnr"]))
    return 0


def register(subparsers) -> None:
    """Add ``latentguard harden`` to the CLI."""
    p = subparsers.add_parser(
        "harden", help="SRL-VAE: fine-tune a VAE's encoder to resist adversarial perturbations (decoder frozen)",
        description="SRL-VAE (arXiv 2504.17219): adversarially fine-tune a pretrained VAE's encoder on random "
                    "crops of a folder of images, with an originality regulariser; the decoder stays bit-identical. "
                    "Writes OUT/vae (diffusers AutoencoderKL, load_vae(OUT) works), checkpoints, train_log.jsonl, "
                    "loss.png, summary.csv, run.json.")
    p.add_argument("--vae", required=True, help="VAE to harden: zoo:NAME, a diffusers folder or a hub id")
    p.add_argument("--data", required=True, help="folder of training images (random crops are drawn from them)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out from its checkpoint")
    p.add_argument("--max-minutes", type=float, default=None, help="stop (checkpointed) after this wall time")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--accelerate", action="store_true",
                   help="train data-parallel through HuggingFace accelerate, one process per GPU: run under "
                        "'accelerate launch --multi_gpu --num_processes N -m latentguard harden --accelerate ...' "
                        "(--batch-size is the global batch, a multiple of N; --device cpu uses CPU processes); "
                        "on one process the result equals the plain run's")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_common_args(p, out=True, model=True)
    p.set_defaults(seed=None)
    defer_options(p, _add_config_flags)
    p.set_defaults(func=_run)
