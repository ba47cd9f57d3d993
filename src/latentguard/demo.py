"""``latentguard demo``: the main job end-to-end on the bundled models, offline.

Protects the bundled sample photos (4 of them, at 256 px) with PCA+ (and, for comparison, random sign noise of
the same budget) against ``zoo:vae-a``, edits clean and protected images with the VAE (sampled-latent
reconstruction) and with img2img by the bundled photo editor ``zoo:ldm-photo``, and writes the evaluation report:
``report.html`` opens with the preview grids (per photo: clean | protected | amplified difference | equal-budget
noise, and what the editor makes of each, ``preview/*.png``), then the tables (``results.jsonl``, ``summary.csv``,
``table.md``, plots, grids, ``run.json``). It is ``latentguard bench`` on a fixed, small config (printed with
``--print-config``); ``--full`` uses all 8 photos and all PCA variants (slower).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from latentguard.core.cli_args import add_resume_args
from latentguard.core.outputs import finish
from latentguard.evaluate.cli import cell_counts


# Large enough to see what the protection and the editor do (the report shows the preview grids at this size).
DEMO_SIZE = 256


def demo_config(full: bool = False, device: str = "auto", seed: int = 0) -> dict:
    return {
        "run": {
            "name": "latentguard demo",
            "targets": ["zoo:ldm-photo"],  # recon uses its VAE (zoo:vae-a), img2img its pipeline
            "images": "samples",
            "image_size": DEMO_SIZE,
            "max_images": None if full else 4,
            "batch_size": 4,
            "seed": seed,
            "device": device,
            "metrics": ["psnr", "ssim", "embed-dist"],
            "grid_images": 4,
        },
        "protect": {
            "methods": ["none", "random-noise", "pca+"] + (["pca-", "photoguard-enc"] if full else []),
            "budgets": ["16/255"],
            "steps": 40,
            "surrogates": ["zoo:vae-a"],
        },
        "edits": [
            {"kind": "recon", "sample": True},
            # the photo editor is unconditional: prompt "", no guidance
            {"kind": "img2img", "strength": 0.5, "steps": 10, "guidance": 1.0, "prompts": [""]},
        ],
        "purifications": [{"kind": "none"}],
    }


def _run(args: argparse.Namespace) -> int:
    # deferred: torch (and the bench runner, which imports it and loads the models)
    import torch

    from latentguard.evaluate.config import BenchConfig
    from latentguard.evaluate.runner import failed_cells, run_bench

    doc = demo_config(args.full, args.device, args.seed)
    if args.print_config:
        print(json.dumps(doc, indent=2))
        return 0
    if args.out is None:
        raise ValueError("--out is required (unless --print-config)")
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 8)))
    cfg = BenchConfig.from_dict(doc)
    counts = run_bench(cfg, args.out, resume=args.resume, overwrite=args.overwrite, progress=True,
                       command="latentguard demo")
    out = Path(args.out)
    print(cell_counts(counts))
    previews = out / "preview" / "preview.json"
    if previews.exists():
        from latentguard.evaluate.preview import summary_line  # defers torch (the preview module imports it)

        for fig in json.loads(previews.read_text()):
            print(summary_line(fig))
    if (out / "table.md").exists():
        print((out / "table.md").read_text())
    print(f"report: {out / 'report.html'}", file=sys.stderr)
    return finish(failed_cells(out), what="cell")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="protect the bundled photos and measure the damage to edits (offline)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="output folder")
    p.add_argument("--full", action="store_true", help="all 8 photos, more methods (slower)")
    add_resume_args(p, resume="continue an interrupted demo in --out",
                    overwrite="start again in an --out that holds a demo (its results and images are dropped)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda (default: auto)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--print-config", action="store_true", help="print the bench config and exit")
    p.set_defaults(func=_run)
