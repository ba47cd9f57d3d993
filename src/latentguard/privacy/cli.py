"""``latentguard audit membership`` and ``latentguard audit pullback``."""

from __future__ import annotations

import argparse
import sys

from latentguard.core.cli_args import add_common_args, add_resume_args, get_audit_subparsers
from latentguard.core.errors import UserError
from latentguard.core.outputs import finish


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated integers, got {text!r}") from None
    if not vals:
        raise ValueError(f"--{name} is empty")
    return vals


def _pullback_config(args):
    from latentguard.privacy.pullback import PullbackConfig  # defers torch

    return PullbackConfig(top_k=args.top_k, oversample=args.oversample, power_iters=args.power_iters,
                          probes=args.probes, drop=args.drop, probe_batch=args.probe_batch)


def _membership(args) -> int:
    # deferred: torch (and the runtime, io, models and privacy modules, which import it, and diffusers)
    import torch

    from latentguard.ops.runtime import resolve_device, seed_everything
    from latentguard.io import JsonlWriter, prepare_out_dir, write_manifest
    from latentguard.models import load_pipeline
    from latentguard.privacy import audit, mia

    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    attacks = tuple(a.strip().lower() for a in args.attacks.split(",") if a.strip())
    cfg = mia.MIAConfig(attacks=attacks, timesteps=_ints(args.timesteps, "timesteps"),
                        secmi_interval=args.secmi_interval, batch_size=args.batch_size, seed=args.seed)
    if args.mask not in ("pullback", "none"):
        raise UserError(f"--mask must be pullback|none, got {args.mask!r}")
    pb_cfg = _pullback_config(args) if args.mask == "pullback" else None
    out = prepare_out_dir(args.out, overwrite=args.overwrite, markers=("summary.json",), resumable=False)
    dev = resolve_device(args.device)
    pipe = load_pipeline(args.model, kind="text2img", device=dev, dtype=args.dtype)
    errors: list[dict] = []
    if args.members is None or args.nonmembers is None:
        if not args.model.startswith("zoo:"):
            raise UserError("--members and --nonmembers are required for a non-zoo model")
        if args.members is not None or args.nonmembers is not None:
            raise UserError("give both --members and --nonmembers, or neither (zoo splits)")
        members, nonmembers, source = audit.zoo_split_sets(args.model, args.n_members, args.n_nonmembers, seed=args.seed)
    else:
        size = args.resolution or int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
        prompt = None if args.prompt_mode == "caption" else ""
        members, e1 = audit.folder_set(args.members, size, prompt)
        nonmembers, e2 = audit.folder_set(args.nonmembers, size, prompt)
        errors = e1 + e2
        source = {"members": args.members, "nonmembers": args.nonmembers, "resolution": size}
    write_manifest(out, "audit membership", {**vars(args), "func": None, "data": source}, seed=args.seed)
    summary = audit.run_membership_audit(
        pipe, members, nonmembers, out, config=cfg, pullback=pb_cfg, prompt_mode=args.prompt_mode,
        calib_fraction=args.calib_fraction, seed=args.seed, title=f"membership audit of {args.model}",
        progress=not args.quiet)
    if errors:
        w = JsonlWriter(out / "errors.jsonl", resume=False)
        for e in errors:
            w.write(e)
        print(f"{len(errors)} unreadable images skipped (see errors.jsonl)", file=sys.stderr)
    for row in audit.summary_rows(summary):
        if row["mask"] in ("none", "pullback"):
            print(f"{row['attack']:>6} {row['mask']:>8} {row['protocol']:>6}  AUROC {row['auroc']:.3f}  "
                  f"ASR {row['asr']:.3f}  TPR@1%FPR {row['tpr_at_1pct_fpr']:.3f}  t={row['timestep']}")
    print(f"wrote {out / 'summary.json'} and {out / 'index.html'}")
    return finish([(e["key"], e.get("error", "")) for e in errors])


def _pullback(args) -> int:
    # deferred: torch (and the runtime, io, models and privacy modules, which import it)
    import torch

    from latentguard.ops.runtime import resolve_device, seed_everything
    from latentguard.io import JsonlWriter, collect_inputs, prepare_out_dir, write_manifest
    from latentguard.models import load_vae
    from latentguard.privacy import audit

    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    cfg = _pullback_config(args)
    paths = collect_inputs(args.images)
    out = prepare_out_dir(args.out, overwrite=args.overwrite, markers=("pullback.jsonl", "summary.json"),
                          resumable=False)
    vae = load_vae(args.vae, device=resolve_device(args.device), dtype=args.dtype)
    write_manifest(out, "audit pullback", {**vars(args), "func": None}, seed=args.seed)
    summary = audit.run_pullback_audit(vae, paths, out, cfg, seed=args.seed, progress=not args.quiet)
    print(f"{summary['n_images']} images ({summary['n_errors']} unreadable); mean log-volume "
          f"{summary['log_volume_mean']:.3f}; wrote {out / 'pullback.csv'}")
    rows = JsonlWriter(out / "pullback.jsonl").rows()
    return finish([(r["key"], r.get("error", "")) for r in rows if r.get("status") == "error"])


def _add_pullback_args(p: argparse.ArgumentParser, *, top_k: int, oversample: int, power_iters: int, probes: int) -> None:
    g = p.add_argument_group("pullback geometry")
    g.add_argument("--top-k", type=int, default=top_k, help=f"singular values in the log-volume (default {top_k})")
    g.add_argument("--oversample", type=int, default=oversample, help=f"extra random directions (default {oversample})")
    g.add_argument("--power-iters", type=int, default=power_iters, help=f"subspace iterations (default {power_iters})")
    g.add_argument("--probes", type=int, default=probes, help=f"Hutchinson probes for diag(J^T J) (default {probes})")
    g.add_argument("--drop", type=float, default=0.4, help="fraction of lowest-contribution dims dropped (default 0.4)")
    g.add_argument("--probe-batch", type=int, default=64,
                   help="decoder copies per JVP/VJP call (default 64; lower it for large images, e.g. 4 for SD at 512px)")


def register(subparsers) -> None:
    """Add ``latentguard audit membership`` and ``latentguard audit pullback`` to the CLI."""
    audit_sub = get_audit_subparsers(subparsers)

    p = audit_sub.add_parser(
        "membership", help="score-based membership inference (loss, PIA, SecMI, SimA), masked by decoder pullback",
        description="Membership inference on a latent diffusion model, with and without the decoder-pullback "
                    "latent-dimension mask (arXiv 2511.20592). For zoo:t2i-members the declared splits are the default.")
    p.add_argument("--model", required=True, help="pipeline spec: zoo:t2i-members, a diffusers folder or a hub id")
    p.add_argument("--members", nargs="+", default=None, help="member images: files, folders, globs or .txt lists")
    p.add_argument("--nonmembers", nargs="+", default=None, help="non-member images (same forms)")
    p.add_argument("--n-members", type=int, default=None, help="zoo splits: random subset size (default: all)")
    p.add_argument("--n-nonmembers", type=int, default=None, help="zoo splits: random subset size (default: all)")
    p.add_argument("--attacks", default="loss,pia,secmi,sima", help="comma list of loss,pia,secmi,sima")
    p.add_argument("--timesteps", default="10,50,100,200,300", help="timestep grid (default 10,50,100,200,300)")
    p.add_argument("--secmi-interval", type=int, default=10, help="SecMI DDIM step (default 10)")
    p.add_argument("--mask", default="pullback", help="pullback (also runs the random-drop control) | none")
    p.add_argument("--prompt-mode", default="caption", choices=["caption", "empty"],
                   help="condition on the caption (zoo label caption, or <stem>.txt sidecar) or the empty prompt")
    p.add_argument("--resolution", type=int, default=None, help="folder images: resize+crop size (default: model's)")
    p.add_argument("--calib-fraction", type=float, default=0.5, help="honest protocol calibration share (default 0.5)")
    p.add_argument("--batch-size", type=int, default=50, help="latents per UNet call (default 50)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_pullback_args(p, top_k=10, oversample=5, power_iters=1, probes=16)
    add_common_args(p, out=True, model=True)
    add_resume_args(p, resume=None, overwrite="write into an --out that holds an audit (it is replaced)")
    p.set_defaults(func=_membership)

    q = audit_sub.add_parser(
        "pullback", help="decoder pullback geometry: log-volume and per-latent-dim contributions per image",
        description="Per image: log-volume (sum of log top-k singular values of the decoder Jacobian at the encoder "
                    "mean) and per-dim contributions c_k = 1/2 log (J^T J)_kk (Hutchinson).")
    q.add_argument("--vae", required=True, help="VAE spec: zoo:vae-a, a diffusers folder or a hub id")
    q.add_argument("images", nargs="+", help="image files, folders or globs")
    q.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_pullback_args(q, top_k=20, oversample=10, power_iters=2, probes=64)
    add_common_args(q, out=True, model=True)
    add_resume_args(q, resume=None, overwrite="write into an --out that holds an audit (it is replaced)")
    q.set_defaults(func=_pullback)
