"""``latentguard bench CONFIG.toml --out DIR [--resume]``, ``latentguard report DIR``,
``latentguard survival PROTECTED... --clean CLEAN... --model SPEC --out DIR`` and
``latentguard preview PROTECTED... --clean CLEAN... --out DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from latentguard.core.cli_args import add_common_args, add_resume_args
from latentguard.core.errors import UserError
from latentguard.core.outputs import check_out_dir, finish
from latentguard.core.units import cli_number


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``latentguard bench`` and ``latentguard report`` to the CLI."""
    p = subparsers.add_parser(
        "bench", help="run a benchmark matrix (protections x budgets x models x edits x purifications)",
        description="Run the matrix declared in CONFIG.toml (see examples/pca_table.toml) and write results.jsonl, "
                    "summary.csv, table.md, plots/, grids/, report.html and run.json into --out.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="benchmark config (TOML)")
    add_common_args(p, out=True, model=False)
    for a in p._actions:  # the config's [run] section owns these; the flags override it when given
        if a.dest in ("device", "dtype", "seed"):
            a.default = None
    add_resume_args(p, resume="continue an interrupted run; finished cells are skipped",
                    overwrite="start again in an --out that holds results (its results and cached images are dropped)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: up to 8; with --engine ray, per actor: its CPUs)")
    p.set_defaults(func=_bench)

    r = subparsers.add_parser("report", help="rebuild tables, plots, grids and report.html from a bench folder",
                              description="Rebuild summary.csv, table.md, plots/, grids/ and report.html from "
                                          "DIR/results.jsonl and DIR/run.json.")
    r.add_argument("dir", metavar="DIR", help="a `latentguard bench` output folder")
    r.set_defaults(func=_report)

    s = subparsers.add_parser(
        "survival", help="how much of each image's protection survives JPEG, resizing, denoising and purification",
        description="For each protected image and each purification (JPEG q95/q75/q50, WebP q75, resize x0.75/x0.5, "
                    "blur, noise, noisy upscaling, DiffPure, IMPRESS, GrIDPure): retained = effect(purified "
                    "protected) / effect(protected) on the method's own objective, net of what the purifier does "
                    "to the clean image, for the model's VAE reconstruction and img2img (docs/survival.md). Writes "
                    "survival.csv, survival.json, summary.md, heatmap.png, report.html and run.json into --out and "
                    "prints one verdict per image.")
    s.add_argument("protected", nargs="+", metavar="PROTECTED", help="protected images (files, folders, globs)")
    s.add_argument("--clean", nargs="+", required=True, metavar="CLEAN",
                   help="the clean images (matched by the protected PNG's recorded source name, else by stem)")
    s.add_argument("--model", default="zoo:ldm-photo",
                   help="the editor whose edits are measured (default: zoo:ldm-photo, the bundled photo LDM)")
    s.add_argument("--method", default=None,
                   help="protection method (default: read from each protected PNG's metadata)")
    s.add_argument("--purify", default=None, metavar="P1,P2",
                   help="purifications (default: jpeg-q95,jpeg-q75,jpeg-q50,webp-q75,resize-0.75,resize-0.5,blur-1,"
                        "noise-0.05,noisy-upscale,diffpure-0.1,impress,gridpure)")
    s.add_argument("--upscaler", default=None, metavar="SPEC",
                   help="x4 diffusion upscaler for noisy-upscale (hub id or folder); without one a labelled CPU "
                        "stand-in runs")
    s.add_argument("--strength", type=float, default=0.5, help="img2img strength (default 0.5)")
    s.add_argument("--edit-steps", type=int, default=20, help="img2img steps of the full trajectory (default 20)")
    s.add_argument("--embedder", default="zoo:embed", help="embedder of the perceptual stand-in ('none' to skip)")
    s.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_resume_args(s, resume=None)
    add_common_args(s, out=True, model=False)
    s.set_defaults(func=_survival)

    v = subparsers.add_parser(
        "preview", help="show what an editor makes of protected photos, beside the clean ones and equal-budget noise",
        description="Per image: a side-by-side PNG (clean | protected | amplified difference | random noise of the "
                    "same budget; rows: the image, the editor's VAE reconstruction, its img2img) and a line of "
                    "figures (PSNR/SSIM; the method's own objective against the noise), into DIR/<id>.png, "
                    "preview.csv and preview.json. Pairs are matched by file name, else by position.")
    v.add_argument("protected", nargs="+", metavar="PROTECTED", help="protected images (files, folders, globs)")
    v.add_argument("--clean", nargs="+", required=True, metavar="CLEAN", help="the clean originals")
    v.add_argument("--method", default=None,
                   help="the protection used (scores its objective; default: read from the PNG's provenance)")
    v.add_argument("--eps", type=_number, default=None,
                   help="budget of the comparison noise, e.g. 16/255 (default: the PNG's provenance, else the "
                        "measured L-inf distance)")
    add_preview_args(v)
    add_common_args(v, out=True, model=False)
    add_resume_args(v, resume=None, overwrite="replace the previews in an --out that holds some")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.set_defaults(func=_preview)


_number = cli_number("16/255 or 0.0627")


def add_preview_args(p: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """The preview's editor options (``latentguard preview``; ``protect --preview`` adds them with ``prefix``
    ``preview-`` where a name would clash)."""
    p.add_argument("--editor", default="zoo:ldm-photo", metavar="SPEC",
                   help="the editor: a pipeline spec (its VAE reconstruction and img2img) or a VAE (reconstruction "
                        "only); default: the bundled photo editor zoo:ldm-photo")
    p.add_argument(f"--{prefix}size", dest="preview_size", type=int, default=512, metavar="PX",
                   help="larger photos are previewed on their central crop of this size (default 512)")
    p.add_argument(f"--{prefix}strength", dest="preview_strength", type=float, default=0.5, metavar="S",
                   help="img2img strength (default 0.5)")
    p.add_argument(f"--{prefix}steps", dest="preview_steps", type=int, default=20, metavar="N",
                   help="img2img inference steps of the full trajectory (default 20)")


def editor_from_args(args: argparse.Namespace):
    """The :class:`~latentguard.evaluate.preview.PreviewEditor` the preview flags describe."""
    from latentguard.evaluate.preview import load_editor  # defers torch and diffusers

    if args.preview_size < 8:
        raise UserError(f"--size must be >= 8, got {args.preview_size}")
    try:
        return load_editor(args.editor, device=args.device, dtype=args.dtype, strength=args.preview_strength,
                           steps=args.preview_steps)
    except ValueError as exc:
        raise UserError(f"--editor {args.editor}: {exc}") from None


def _preview(args: argparse.Namespace) -> int:
    # deferred: torch (the preview computes edits)
    from latentguard.evaluate.preview import pair_inputs, run_preview
    from latentguard.io import collect_inputs, prepare_out_dir, write_manifest

    check_out_dir(args.out)  # a bad --out fails before anything is read
    pairs = pair_inputs(collect_inputs(args.protected), collect_inputs(args.clean))
    if not pairs:
        raise UserError("no protected images found")
    out = prepare_out_dir(args.out, overwrite=args.overwrite, markers=("preview.json",), resumable=False)
    editor = editor_from_args(args)
    write_manifest(out, "latentguard " + " ".join(sys.argv[1:]), {k: v for k, v in vars(args).items() if k != "func"},
                   args.seed)
    res = run_preview(pairs, out, editor=editor, method=args.method, eps=args.eps, seed=args.seed,
                      size=args.preview_size, progress=not args.no_progress)
    print(f"previewed {res['ok']} image(s)" + (f", {res['error']} failed" if res["error"] else "")
          + f" -> {out} (grids, preview.csv, preview.json)")
    return finish([(e["protected"], e["error"]) for e in res["errors"]], what="image")


def _bench(args: argparse.Namespace) -> int:
    import dataclasses

    # deferred: torch, and pydantic (the config schema), and the runner's models
    import torch

    from latentguard.evaluate.config import BenchConfig
    from latentguard.evaluate.runner import failed_cells, run_bench

    cfg = BenchConfig.from_toml(args.config)  # every config mistake fails here, before a model is loaded
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads or max(1, min(torch.get_num_threads(), 8)))
    over = {k: getattr(args, k) for k in ("device", "dtype", "seed") if getattr(args, k) is not None}
    if over:
        cfg = dataclasses.replace(cfg, **over)
    counts = run_bench(cfg, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                       engine=getattr(args, "bench_engine", None),
                       command="latentguard bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "latentguard bench")
    out = Path(args.out)
    print(f"{cell_counts(counts)}; table: {out / 'table.md'}, report: {out / 'report.html'}")
    return finish(failed_cells(out), what="cell")


def cell_counts(counts: dict) -> str:
    """The run's summary line, in the progress bar's unit (cells: image x edit x purification x method...)."""
    parts = [f"{counts['ok']} cells ok", f"{counts['error']} failed", f"{counts['skipped']} already done"]
    if counts.get("unavailable"):
        parts.append(f"{counts['unavailable']} unavailable")
    return ", ".join(parts) + (f" (of {counts['total']})" if "total" in counts else "")


def _report(args: argparse.Namespace) -> int:
    from latentguard.evaluate.report import build_report  # defers torch, numpy and matplotlib

    info = build_report(args.dir)
    print(f"{info['tables']} tables, {info['plots']} plots, {info['grids']} grids -> {Path(args.dir) / 'report.html'}")
    return 0


def _survival(args: argparse.Namespace) -> int:
    import shlex

    # deferred: torch, and the survival module's models
    import torch

    from latentguard.evaluate.survival import DEFAULT_PURIFICATIONS, collect, pair_inputs, run_survival
    from latentguard.io import prepare_out_dir

    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    purify = [p.strip() for p in args.purify.split(",") if p.strip()] if args.purify else list(DEFAULT_PURIFICATIONS)
    items = pair_inputs(collect(args.protected), collect(args.clean), method=args.method)
    prepare_out_dir(args.out, overwrite=args.overwrite, markers=("survival.csv", "survival.json"), resumable=False)
    run_survival(items, args.out, model=args.model, purifications=purify, seed=args.seed, strength=args.strength,
                 edit_steps=args.edit_steps, upscaler=args.upscaler,
                 embedder=None if args.embedder in ("", "none") else args.embedder, device=args.device,
                 dtype=args.dtype, progress=not args.no_progress, engine=getattr(args, "survival_engine", None),
                 command="latentguard " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    out = Path(args.out)
    print(f"survival of {len(items)} image(s) -> {out / 'survival.csv'}, {out / 'report.html'}")
    return 0
