"""``latentguard protect INPUT... --method pca+ --model zoo:vae-a --eps 16/255 --steps 40 --out DIR``.

Writes one PNG per input (same stem; inputs sharing a stem get their folder's name prepended; ``--lossy jpeg:95``
or ``webp:90`` writes that format instead, with a warning), the colour protected and any alpha channel written
back unchanged, at the input's bit depth (16-bit inputs give 16-bit PNGs; a note says what a format cannot keep),
``results.jsonl`` (one row per input, resumable with ``--resume``), ``summary.csv``, ``summary.png`` and
``run.json``. Unreadable inputs are reported on stderr, recorded with ``status: "error"`` and skipped; the
run finishes the others and exits 1 naming them (0 when every input was protected, 2 for bad usage). An
``--out`` that already holds ``results.jsonl`` is refused unless ``--resume`` or ``--overwrite`` is given.
Inputs are files, folders, globs, URIs or CSV/Parquet manifests; each image is protected on its own by
:func:`latentguard.protect.batch.protect_batch` with a seed derived from ``--seed`` and its content, and written
atomically; ``--engine ray`` runs the same function on Ray actors (docs/scale.md).
"""

from __future__ import annotations

import argparse
import math
import csv
import shlex
import sys
from pathlib import Path

from latentguard.core.cli_args import add_common_args, add_resume_args, lossy_spec
from latentguard.core.errors import UserError
from latentguard.core.outputs import EXIT_OK, finish
from latentguard.core.units import cli_number
from latentguard.protect.progress import StepBar
from latentguard.protect.registry import NORMS, PRESETS, STEP_DECAYS, available, get

DIFFUSION_METHODS = ("advdm", "mist", "sds+", "sds-", "photoguard-diff")


_number = cli_number("16/255, 0.0627 or 16 with --eps-unit 255")


def load_mask(path: str):
    from latentguard.io import load_image  # defers torch

    m = load_image(path).mean(dim=1, keepdim=True)  # [1,1,H,W] in [0,1]
    return m


def build_method(args):
    """The protection ``args`` (protect's parsed options) describe, and the surrogate specs it uses: one
    :class:`UserError` line for an option that does not fit the method (also used by the Ray actors)."""
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
    if getattr(args, "no_measure", False):
        params["measure_records"] = False
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
    names = [Path(str(r.get("input", i))).name for i, r in enumerate(ok)]
    method = ok[0].get("method", "")

    def same(a: float | None, b: float | None) -> bool:
        if a is None or b is None:
            return False
        return abs(a - b) <= 1e-4 * max(1.0, abs(a), abs(b))

    def num(v: float | None) -> float:
        return math.nan if v is None else float(v)  # --no-measure: records left empty, their bars absent

    # PCA+'s objective *is* the KL to N(0, I): a second KL panel would repeat the first; the posterior variance
    # it drives (PCA+ shrinks sigma^2, docs/protect.md) says something new.
    kl_is_objective = all(same(r["loss_before"], r["kl_before"]) and same(r["loss_after"], r["kl_after"]) for r in ok)
    second = (("sigma2_before", "sigma2_after", "mean posterior variance sigma^2 (log)") if kl_is_objective
              else ("kl_before", "kl_after", "KL(q(z|x) || N(0,I))"))
    fig, axes = plt.subplots(1, 3, figsize=(max(12, 0.45 * len(ok) * 3), 4))
    idx = range(len(ok))
    for ax, (b0, b1, title) in zip(axes[:2], (("loss_before", "loss_after", f"{method} objective per image"), second)):
        ax.bar([i - 0.2 for i in idx], [num(r[b0]) for r in ok], width=0.4, label="before")
        ax.bar([i + 0.2 for i in idx], [num(r[b1]) for r in ok], width=0.4, label="after")
        ax.set_title(title if any(r[b0] is not None for r in ok) else f"{title}: not measured (--no-measure)")
        ax.legend()
    if kl_is_objective:
        axes[1].set_yscale("log")
    axes[2].bar(list(idx), [r["psnr"] if r.get("psnr") is not None else 100.0 for r in ok], color="C2")
    axes[2].set_title("PSNR protected vs input (dB)")
    step = max(1, len(ok) // 30)  # at most ~30 file names per axis
    for ax in axes:
        ax.set_xticks(list(idx)[::step], names[::step], rotation=35, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "summary.png", dpi=100)
    plt.close(fig)


def _run(args: argparse.Namespace) -> int:
    # deferred: torch (and the io/runtime modules, which import it)
    import torch
    from tqdm.auto import tqdm

    from latentguard.io import JsonlWriter, prepare_out_dir, write_manifest
    from latentguard.protect.batch import clean_staging, collect_items, local_engine

    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps} (0 steps would write unprotected copies)")
    items = collect_items(args.inputs)
    if not items:
        raise UserError("no input images found")
    out = prepare_out_dir(args.out, resume=args.resume, overwrite=args.overwrite)
    mask = load_mask(args.mask) if args.mask else None
    method, models = build_method(args)
    writer = JsonlWriter(out / "results.jsonl", resume=args.resume)
    done = writer.done_keys("key") if args.resume else set()
    # the per-batch loop: this process by default; `--engine ray` (wired by the entry point) swaps in Ray actors
    engine = getattr(args, "protect_engine", None) or local_engine
    config = {k: v for k, v in vars(args).items() if k not in ("func", "protect_engine")}
    config["resolved"] = {f: getattr(method, f) for f in ("eps", "alpha", "steps", "norm", "random_start", "step_decay",
                                                          "maximize", "eot_samples", "tile_size", "seed")}
    config["resolved"]["transforms"] = [repr(t) for t in method.transforms]
    config["resolved"]["image_seeds"] = "sha256(--seed, file bytes) per image (latentguard.protect.batch.image_seed)"
    write_manifest(out, "latentguard " + " ".join(shlex.quote(a) for a in sys.argv[1:]), config, args.seed)
    todo = [it for it in items if it.key not in done]
    provenance = {"method": args.method, "eps": method.eps, "norm": method.norm, "steps": method.steps,
                  "surrogates": models if args.method not in DIFFUSION_METHODS else [args.pipeline]}
    n_ok = 0
    failures: list[tuple[str, str]] = []
    if args.lossy:
        print(f"latentguard: warning: --lossy {args.lossy[0]}:{args.lossy[1]} writes {args.lossy[0].upper()} files; "
              "lossy re-encoding weakens the protection (docs/survival.md measures by how much); PNG keeps all of it",
              file=sys.stderr)
    clean_staging(out)  # what a killed run left half-written
    bar = tqdm(total=len(todo), desc=f"protect {args.method}", unit="img", disable=args.no_progress, file=sys.stderr)
    step_bar = StepBar(disable=args.no_progress)  # per-step progress and ETA of the current image
    for row in engine(args, method, todo, out, provenance=provenance, mask=mask,
                      log=lambda msg: print(msg, file=sys.stderr), callback=step_bar):
        writer.write(row)
        if row["status"] == "ok":
            n_ok += 1
        else:
            err, name = str(row.get("error", "")), row["input"]
            failures.append((name, err[len(name) + 2:] if err.startswith(name + ": ") else err))
        bar.update(1)
    step_bar.close()
    bar.close()
    clean_staging(out)
    latest = {r["key"]: r for r in writer.rows() if "key" in r}  # a retried input: its last row
    _write_summary(out, list(latest.values()))
    skipped = len(items) - len(todo)
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
                   help="default: common budget (16/255, 2/255, 40 steps); source: the method's published defaults; "
                        "robust (pca+, pca-, pca-adaptive, photoguard-enc): EOT over JPEG q50-95 and resize x0.5-1")
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
    p.add_argument("--no-measure", action="store_true",
                   help="skip the before/after objective, KL and variance records (the extra surrogate passes; most "
                        "of --method fast's time); the images are the same, those columns are left empty")
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
