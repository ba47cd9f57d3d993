"""Speed of every protection per image, next to the floor of an encoder-only attack.

For each VAE (the bundled ``zoo:vae-a`` and an SD-sized ``AutoencoderKL`` config, random init: block_out_channels
(128,256,512,512), layers_per_block 2, f=8 -- timing only) and each image size, it measures

* ``bare_fwd_bwd_s``: one bare encoder forward + backward pass w.r.t. the image (median of ``--steps`` reps);
* per method: ``overhead_s`` (a run with 0 steps: setup, targets, before/after evaluation) and
  ``per_step_s = (t(steps) - t(0)) / steps``; ``seconds_per_image_T`` = ``overhead_s + T * per_step_s`` for
  the default ``T = 40`` (extrapolated from ``--steps`` steps when fewer are run, as on CPU);
* ``ratio_step_vs_bare``: ``per_step_s / bare_fwd_bwd_s`` (1.0 = as cheap as the bare encoder pass).

UNet-based methods (advdm, mist, sds+/-, photoguard-diff) are timed only with ``zoo:t2i`` (whose VAE is
vae-a; on CPU only at <= 64 px: a 256 px image is a 64x64 latent, ~10 s per UNet forward+backward on one
loaded core): an SD-sized UNet is not available offline. Writes ``benchmarks/results/protect_<device>.json``.

    PYTHONPATH=src python benchmarks/bench_protect.py --sizes 64 256 --steps 2 --images 1
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

DIFFUSION = ("advdm", "mist", "sds+", "sds-", "photoguard-diff")
T_DEFAULT = 40


def sd_sized_vae(device):
    from diffusers import AutoencoderKL

    from latentguard.models import LatentVAE

    torch.manual_seed(0)
    m = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                      down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    m.requires_grad_(False)  # like load_vae: the floor is the gradient w.r.t. the image only
    return LatentVAE(m.eval().to(device), spec="sd-sized-random")


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bare_fwd_bwd(vae, x, reps):
    """Median seconds per image of one encoder forward + backward w.r.t. the image (parameters frozen)."""
    from latentguard.protect import frozen

    times = []
    with frozen([vae.model]):
        for _ in range(reps + 1):
            _sync(x.device)
            t0 = time.perf_counter()
            xi = x.detach().clone().requires_grad_(True)
            mean, logvar = vae.encode(xi)
            torch.autograd.grad(mean.float().sum() + logvar.float().sum(), xi)
            _sync(x.device)
            times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]) / x.shape[0]  # first rep is warm-up


def time_method(method, x, steps, reps=2):
    """(overhead, per-step, measured total) per image; a warm-up run first, medians of ``reps`` runs."""
    zero, full = method.replace(steps=0), method.replace(steps=steps)
    zero.protect(x)  # warm-up: caches (text embeddings, schedulers), allocator, first-call costs

    def timed(m):
        ts = []
        for _ in range(reps):
            _sync(x.device)
            t0 = time.perf_counter()
            m.protect(x)
            _sync(x.device)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    overhead = timed(zero)
    total = timed(full)
    n = x.shape[0]
    per_step = max(total - overhead, 0.0) / steps / n
    return overhead / n, per_step, total / n


def main(argv=None) -> int:
    from latentguard.ops.runtime import resolve_device
    from latentguard.samples import sample_images
    from latentguard.models import load_pipeline, load_vae
    from latentguard.protect import available, get

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--steps", type=int, default=None, help="steps actually run (default: 40 on GPU, 2 on CPU)")
    ap.add_argument("--images", type=int, default=None, help="images per batch (default: 4 on GPU, 1 on CPU)")
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--diffusion-max-size", type=int, default=None,
                    help="largest size for the UNet methods (default: no limit on GPU, 64 on CPU)")
    ap.add_argument("--reps", type=int, default=None, help="timed runs per measurement (default 3 GPU, 1 CPU)")
    ap.add_argument("--vaes", nargs="+", default=["zoo:vae-a", "sd-sized"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--update", action="store_true",
                    help="keep the rows of an existing --out file for VAEs not re-run here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    steps = args.steps or (T_DEFAULT if dev.type == "cuda" else 2)
    n_img = args.images or (4 if dev.type == "cuda" else 1)
    methods = args.methods or available()
    reps = args.reps or (3 if dev.type == "cuda" else 1)
    dmax = args.diffusion_max_size or (10**9 if dev.type == "cuda" else 64)
    pipe = None
    results = []
    for vae_spec in args.vaes:
        vae = sd_sized_vae(dev) if vae_spec == "sd-sized" else load_vae(vae_spec, device=dev)
        for size in args.sizes:
            x = sample_images(size)[:n_img].to(dev)
            bare = bare_fwd_bwd(vae, x, reps=max(steps, 3))
            row = {"vae": vae_spec, "size": size, "images": n_img, "bare_fwd_bwd_s": bare,
                   "bare_T_fwd_bwd_s": bare * T_DEFAULT, "methods": {}}
            for name in methods:
                if name in DIFFUSION:
                    if vae_spec != "zoo:vae-a" or size > dmax:
                        continue
                    if pipe is None:
                        pipe = load_pipeline("zoo:t2i", kind="img2img", device=dev)
                    m = get(name, pipe=pipe, eval_samples=1)
                else:
                    m = get(name, vae=vae)
                overhead, per_step, measured = time_method(m, x, steps, reps)
                row["methods"][name] = {
                    "steps_run": steps, "measured_s": measured, "overhead_s": overhead, "per_step_s": per_step,
                    "seconds_per_image_T40": overhead + T_DEFAULT * per_step,
                    "extrapolated": steps != T_DEFAULT, "ratio_step_vs_bare": per_step / bare if bare > 0 else None,
                }
                print(f"{vae_spec:10s} {size:4d}px {name:16s} per-step {per_step:8.4f}s  "
                      f"T40 {overhead + T_DEFAULT * per_step:8.2f}s/img  x{per_step / bare:5.2f} bare", flush=True)
            results.append(row)
    doc = {
        "benchmark": "protect", "device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda"
        else platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "steps_run": steps, "T": T_DEFAULT, "images_per_batch": n_img, "timed_runs": reps,
        "diffusion_max_size": dmax if dmax < 10**9 else None,
        "note": ("per-step times measured over steps_run steps and extrapolated linearly to T=40; seconds are per image "
                 "(batch time / images). The SD-sized VAE is randomly initialised (timing only). UNet methods use "
                 "zoo:t2i only (eval_samples=1, so their overhead_s is smaller than with the default 8), and on CPU only up to "
                 "diffusion_max_size. On a shared, loaded CPU single runs are noisy: compare orders of magnitude."),
        "results": results,
    }
    out = Path(args.out or Path(__file__).parent / "results" / f"protect_{dev.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.update and out.exists():
        old = json.loads(out.read_text())
        kept = [r for r in old.get("results", []) if r["vae"] not in args.vaes]
        doc["results"] = kept + results
        doc["runs"] = old.get("runs", [{k: old.get(k) for k in ("steps_run", "timed_runs", "torch_threads")}]) + [
            {"vaes": args.vaes, "steps_run": steps, "timed_runs": reps, "torch_threads": torch.get_num_threads()}]
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
