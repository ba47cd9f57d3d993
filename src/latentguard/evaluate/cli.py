"""``latentguard bench CONFIG.toml --out DIR [--resume]`` and ``latentguard report DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from latentguard.core.cli_args import add_common_args, add_resume_args
from latentguard.core.outputs import finish


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
    p.set_defaults(func=_bench)

    r = subparsers.add_parser("report", help="rebuild tables, plots, grids and report.html from a bench folder",
                              description="Rebuild summary.csv, table.md, plots/, grids/ and report.html from "
                                          "DIR/results.jsonl and DIR/run.json.")
    r.add_argument("dir", metavar="DIR", help="a `latentguard bench` output folder")
    r.set_defaults(func=_report)


def _bench(args: argparse.Namespace) -> int:
    import dataclasses

    # deferred: torch, and pydantic (the config schema), and the runner's models
    import torch

    from latentguard.evaluate.config import BenchConfig
    from latentguard.evaluate.runner import failed_cells, run_bench

    cfg = BenchConfig.from_toml(args.config)  # every config mistake fails here, before a model is loaded
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 8)))
    over = {k: getattr(args, k) for k in ("device", "dtype", "seed") if getattr(args, k) is not None}
    if over:
        cfg = dataclasses.replace(cfg, **over)
    counts = run_bench(cfg, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                       command="latentguard bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "latentguard bench")
    out = Path(args.out)
    print(f"{counts['ok']} cells ok, {counts['error']} failed, {counts['skipped']} already done; "
          f"table: {out / 'table.md'}, report: {out / 'report.html'}")
    return finish(failed_cells(out), what="cell")


def _report(args: argparse.Namespace) -> int:
    from latentguard.evaluate.report import build_report  # defers torch, numpy and matplotlib

    info = build_report(args.dir)
    print(f"{info['tables']} tables, {info['plots']} plots, {info['grids']} grids -> {Path(args.dir) / 'report.html'}")
    return 0
