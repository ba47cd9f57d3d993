"""``latentguard protect INPUT... --method pca+ --model zoo:vae-a --eps 16/255 --steps 40 --out DIR``.

Writes one PNG per input (same stem; inputs sharing a stem get their folder's name prepended; ``--lossy jpeg:95``
or ``webp:90`` writes that format instead, with a warning), the colour protected and any alpha channel written
back unchanged, at the input's bit depth (16-bit inputs give 16-bit PNGs; a note says what a format cannot keep),
``results.jsonl`` (one row per input, resumable with ``--resume``), ``summary.csv``, ``summary.png`` and
``run.json``. Unreadable inputs are reported on stderr, recorded with ``status: "error"`` and skipped; the
run finishes the others and exits 1 naming them (0 when every input was protected, 2 for bad usage). An
``--out`` that already holds ``results.jsonl`` is refused unless ``--resume`` or ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
from collections import Counter
from pathlib import Path

from latentguard.core.cli_args import LOSSY_FORMATS, add_common_args, add_resume_args, lossy_spec
from latentguard.core.errors import UserError
from latentguard.core.outputs import EXIT_OK, finish
from latentguard.core.units import cli_number
from latentguard.protect.registry import NORMS, PRESETS, STEP_DECAYS, available, get

DIFFUSION_METHODS = ("advdm", "mist", "sds+", "sds-", "photoguard-diff")


_number = cli_number("16/255, 0.0627 or 16 with --eps-unit 255")


def _stems(paths: list[Path]) -> dict[Path, str]:
    """Output stem per input: its stem, or ``<folder>_<stem>`` when several inputs share the stem."""
    counts = Counter(p.stem for p in paths)
    out: dict[Path, str] = {}
    used: set[str] = set()
    for p in paths:
        s = p.stem if counts[p.stem] == 1 else f"{p.parent.name}_{p.stem}"
        base, k = s, 1
        while s in used:
            s = f"{base}-{k}"
            k += 1
        used.add(s)
        out[p] = s
    return out


def _load_mask(path: str):
    from latentguard.io import load_image  # defers torch

    m = load_image(path).mean(dim=1, keepdim=True)  # [1,1,H,W] in [0,1]
    return m


def _build_method(args):
    from latentguard.models import load_pipeline, load_protector, load_vae  # defers torch and diffusers

    unit = float(args.eps_unit)
    if not unit > 0:
        raise UserError(f"--eps-unit must be > 0, got {args.eps_unit}")
    params: dict = {}
    if args.eps is not None:
        params["eps"] = args.eps / unit
    if args.alpha is not None:
        params["alpha"] = args.alpha / unit
    for name in ("steps", "norm", "random_start", "step_decay", "eot_samples", "tile_size"):
        v = getattr(args, name)
        if v is not None:
            params[name] = v
    if args.eot:
        params["transforms"] = args.eot
    params["seed"] = args.seed
    if args.method == "fast":
        if args.steps is not None:
            raise UserError("--steps does not apply to --method fast; use --refine K for K gradient steps after the protector")
        params["protector"] = args.protector or "zoo:protector-a"
        params["refine"] = 0 if args.refine is None else args.refine
        if params["refine"] < 0:
            raise UserError(f"--refine must be >= 0, got {args.refine}")
        params["protector"] = load_protector(params["protector"], device=args.device)
    elif args.protector is not None or args.refine is not None:
        raise UserError("--protector and --refine apply only to --method fast")
    # --method fast without --model: the VAEs its protector was trained against
    models = args.model or (list(params["protector"].config.vaes) if args.method == "fast" else ["zoo:vae-a"])
    if args.method in DIFFUSION_METHODS:
        if len(models) > 1:
            raise UserError(f"--method {args.method} attacks the pipeline's own VAE; give at most one --model")
        vae = load_vae(models[0], device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle) if args.model else None
        pipe = load_pipeline(args.pipeline, kind="img2img", device=args.device, dtype=args.dtype, vae=vae)
        params.update(pipe=pipe, prompt=args.prompt)
    else:
        if args.prompt:
            raise UserError(f"--prompt is only used by {', '.join(DIFFUSION_METHODS)}")
        vaes = [load_vae(m, device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle) for m in models]
        params["vae"] = vaes if len(vaes) > 1 else vaes[0]
    try:
        return get(args.method, preset=args.preset, **params), models
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _write_summary(out: Path, rows: list[dict]) -> None:
    import matplotlib  # deferred: matplotlib is slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok"]
    cols = ["input", "output", "width", "height", "loss_before", "loss_after", "kl_before", "kl_after",
            "sigma2_before", "sigma2_after", "linf", "l2", "psnr", "seconds"]
    with open(out / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["status"] + cols + ["error"], extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    if not ok:
        return
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    idx = range(len(ok))
    axes[0].bar([i - 0.2 for i in idx], [r["loss_before"] for r in ok], width=0.4, label="before")
    axes[0].bar([i + 0.2 for i in idx], [r["loss_after"] for r in ok], width=0.4, label="after")
    axes[0].set_title(f"{ok[0].get('method', '')} objective per image")
    axes[0].legend()
    axes[1].bar([i - 0.2 for i in idx], [r["kl_before"] for r in ok], width=0.4, label="before")
    axes[1].bar([i + 0.2 for i in idx], [r["kl_after"] for r in ok], width=0.4, label="after")
    axes[1].set_title("KL(q(z|x) || N(0,I))")
    axes[1].legend()
    axes[2].hist([r["psnr"] for r in ok if r.get("psnr") is not None], bins=20)
    axes[2].set_title("PSNR protected vs input (dB)")
    for ax in axes[:2]:
        ax.set_xlabel("image")
    fig.tight_layout()
    fig.savefig(out / "summary.png", dpi=100)
    plt.close(fig)


def _run(args: argparse.Namespace) -> int:
    # deferred: torch (and the io/runtime modules, which import it)
    import warnings

    import torch
    from tqdm.auto import tqdm

    from latentguard.ops.runtime import torch_generator
    from latentguard.io import (JsonlWriter, LossyFormatWarning, collect_inputs, iter_read, prepare_out_dir, save_image,
                                write_manifest)

    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps} (0 steps would write unprotected copies)")
    paths = collect_inputs(args.inputs)
    if not paths:
        raise UserError("no input images found")
    out = prepare_out_dir(args.out, resume=args.resume, overwrite=args.overwrite)
    mask = _load_mask(args.mask) if args.mask else None
    method, models = _build_method(args)
    writer = JsonlWriter(out / "results.jsonl", resume=args.resume)
    done = writer.done_keys("key") if args.resume else set()
    config = {k: v for k, v in vars(args).items() if k not in ("func",)}
    config["resolved"] = {f: getattr(method, f) for f in ("eps", "alpha", "steps", "norm", "random_start", "step_decay",
                                                          "maximize", "eot_samples", "tile_size", "seed")}
    config["resolved"]["transforms"] = [repr(t) for t in method.transforms]
    write_manifest(out, "latentguard " + " ".join(shlex.quote(a) for a in sys.argv[1:]), config, args.seed)
    stems = _stems(paths)
    todo = [p for p in paths if str(p.resolve()) not in done]
    n_ok = 0
    failures: list[tuple[str, str]] = []
    suffix, quality = (LOSSY_FORMATS[args.lossy[0]], args.lossy[1]) if args.lossy else (".png", None)
    if args.lossy:
        print(f"latentguard: warning: --lossy {args.lossy[0]}:{quality} writes {args.lossy[0].upper()} files; lossy "
              "re-encoding weakens the protection (docs/survival.md measures by how much); PNG keeps all of it",
              file=sys.stderr)
    bar = tqdm(total=len(todo), desc=f"protect {args.method}", unit="img", disable=args.no_progress, file=sys.stderr)
    for path, loaded, err in iter_read(todo):
        key = str(path.resolve())
        row = {"key": key, "input": str(path), "method": args.method}
        img = loaded.rgb if loaded is not None else None  # the colour; an alpha channel goes back on unchanged
        if err is None and mask is not None and mask.shape[-2:] != img.shape[-2:]:
            err = ValueError(f"{path}: mask size {tuple(mask.shape[-2:])} != image size {tuple(img.shape[-2:])}")
        if err is not None:
            print(f"latentguard: skipped {err}", file=sys.stderr)
            writer.write({**row, "status": "error", "error": str(err)})
            failures.append((str(path), getattr(err, "reason", str(err))))
            bar.update(1)
            continue
        try:
            res = method.protect(img, mask=mask, generator=torch_generator(args.seed, method.device))
        except (ValueError, FloatingPointError, RuntimeError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"latentguard: failed {path}: {msg}", file=sys.stderr)
            writer.write({**row, "status": "error", "error": msg})
            failures.append((str(path), msg))
            bar.update(1)
            continue
        dst = out / f"{stems[path]}{suffix}"
        rec = res.records[0].to_dict()
        rec.pop("index", None)
        protected, alpha, bits, notes = res.images[0], loaded.alpha, loaded.bits, list(loaded.notes)
        if args.lossy and bits > 8:
            notes.append(f"written at 8 bits per channel ({args.lossy[0].upper()} holds no more; PNG keeps 16)")
            bits = 8
        if args.lossy and alpha is not None and args.lossy[0] == "jpeg":
            notes.append("transparency flattened onto white (JPEG has no alpha; PNG or --lossy webp keep it)")
            a = alpha[0].to(protected.device)
            protected = (protected * a + (1 - a)).clamp(0, 1)
            alpha = None
        if notes:
            print(f"latentguard: note: {path}: {'; '.join(notes)}", file=sys.stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LossyFormatWarning)  # said once above
            save_image(protected, dst, alpha=alpha, bits=bits, lossy=bool(args.lossy), quality=quality or 95,
                       metadata={"method": args.method, "eps": method.eps, "norm": method.norm, "steps": method.steps,
                                 "surrogates": models if args.method not in DIFFUSION_METHODS else [args.pipeline],
                                 "source": path.name})
        writer.write({**row, "status": "ok", "output": str(dst), "height": int(img.shape[-2]),
                      "width": int(img.shape[-1]), "alpha": alpha is not None, "bits": bits,
                      **({"notes": notes} if notes else {}), **rec})
        n_ok += 1
        bar.update(1)
    bar.close()
    _write_summary(out, writer.rows())
    skipped = len(paths) - len(todo)
    print(f"protected {n_ok} image(s) with {args.method} (eps={method.eps:.5f}, {method.steps} steps)"
          + (f", {skipped} already done" if skipped else "") + (f", {len(failures)} failed" if failures else "")
          + f" -> {out}")
    return finish(failures) if failures else EXIT_OK


def register(subparsers) -> None:
    """Add ``latentguard protect`` to the CLI."""
    p = subparsers.add_parser(
        "protect", help="add an adversarial perturbation that makes images un-editable by latent diffusion models",
        description="Protect images against LDM editing (PCA: arXiv 2408.10901, and baselines). Budgets are in [0,1] "
                    "pixel units (16/255) unless --eps-unit says otherwise. Writes OUT/<stem>.png, results.jsonl, "
                    "summary.csv, summary.png, run.json.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("--method", default="pca+", choices=available(), help="protection (default: pca+)")
    p.add_argument("--model", action="append", default=None, metavar="SPEC",
                   help="surrogate VAE (zoo:NAME, folder, hub id); repeat for an ensemble (default: zoo:vae-a)")
    p.add_argument("--pipeline", default="zoo:t2i",
                   help=f"diffusion pipeline for {', '.join(DIFFUSION_METHODS)} (default: zoo:t2i)")
    p.add_argument("--prompt", default="", help="text condition of the diffusion-based methods (default: '')")
    p.add_argument("--preset", default="default", choices=PRESETS,
                   help="default: common budget (16/255, 2/255, 40 steps); source: the method's published defaults")
    p.add_argument("--eps", type=_number, default=None, help="budget, e.g. 16/255 or 0.0627 (or 16 with --eps-unit 255)")
    p.add_argument("--eps-unit", type=_number, default=1.0,
                   help="--eps and --alpha are divided by this (255 for 0-255 values; default 1)")
    p.add_argument("--alpha", type=_number, default=None, help="step size, same unit as --eps")
    p.add_argument("--steps", type=int, default=None, help="iterations")
    p.add_argument("--norm", choices=NORMS, default=None, help="linf (default) or l2")
    p.add_argument("--random-start", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--step-decay", choices=STEP_DECAYS, default=None)
    p.add_argument("--eot", default=None, metavar="T1,T2", help="EOT transforms, e.g. jpeg:50-90,resize:0.5-0.9,blur,noise")
    p.add_argument("--eot-samples", type=int, default=None, help="gradient draws per step")
    p.add_argument("--tile-size", type=int, default=None, help="tile larger images (pixels; 0 disables)")
    p.add_argument("--protector", default=None, metavar="SPEC",
                   help="--method fast: trained protector (zoo:NAME or a folder; default zoo:protector-a)")
    p.add_argument("--refine", type=int, default=None, metavar="K",
                   help="--method fast: K gradient steps of the protector's base method after it (default 0)")
    p.add_argument("--mask", default=None, metavar="FILE", help="image whose bright pixels (>0.5) mark the region to protect")
    add_resume_args(p, resume="continue the run in --out: inputs already protected there are skipped",
                    overwrite="start again in an --out that holds results (results.jsonl is restarted, images of "
                              "the same name are replaced)")
    p.add_argument("--lossy", type=lossy_spec, default=None, metavar="FORMAT[:Q]",
                   help="write JPEG or WebP instead of PNG, e.g. jpeg:95 or webp:90 (weakens the protection)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_common_args(p, out=True, model=True)
    p.set_defaults(func=_run)
