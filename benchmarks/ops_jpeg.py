"""The differentiable JPEG against PIL's, and kornia's beside it (accuracy and speed), plus the Gaussian blur.

On the 8 bundled photos at 256 px (``latentguard.samples.sample_images(256)``), for quality 50/75/90/95:
the mean absolute error (8-bit levels), the largest error and the mean PSNR of

* ``ops.transforms.diff_jpeg`` (4:2:0, PIL's default; what EOT uses),
* ``ops.transforms.diff_jpeg(subsampling="4:4:4")``,
* ``kornia.enhance.jpeg_codec_differentiable`` (when kornia is installed),

each against the real codec (``ops.transforms.jpeg_pil``: PIL/libjpeg-turbo, 4:2:0), and the PSNR of the
input itself to PIL's output (what "no JPEG model at all" scores). Speed: median wall time of a forward and
backward pass over the batch (1 thread, CPU), and of PIL's round trip. The blur rows compare
``ops.filters.gaussian_blur`` with ``kornia.filters.gaussian_blur2d`` (same kernel size, reflect border).

    PYTHONPATH=src python benchmarks/ops_jpeg.py        # writes benchmarks/results/ops_jpeg.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from latentguard.samples import sample_images  # noqa: E402
from latentguard.ops.filters import blur_radius, gaussian_blur  # noqa: E402
from latentguard.ops.transforms import diff_jpeg, jpeg_pil  # noqa: E402

QUALITIES = (50, 75, 90, 95)


def _errors(y: torch.Tensor, ref: torch.Tensor) -> dict:
    e = (y.detach() - ref).abs() * 255.0
    mse = ((y.detach() - ref) ** 2).flatten(1).mean(1)
    return {"mae_levels": round(float(e.mean()), 4), "max_levels": round(float(e.max()), 2),
            "psnr_db": round(float((10 * torch.log10(1.0 / mse)).mean()), 2)}


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 4)


def _fwd_bwd(fn, x: torch.Tensor):
    def run():
        xg = x.clone().requires_grad_(True)
        fn(xg).sum().backward()
        assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ops_jpeg.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:
        import kornia
    except ImportError:
        kornia = None
    x = sample_images(256)
    rows = []
    for q in QUALITIES:
        ref = jpeg_pil(x, q)
        row = {"quality": q, "input_vs_pil": _errors(x, ref), "diff_jpeg_420": _errors(diff_jpeg(x, q), ref),
               "diff_jpeg_444": _errors(diff_jpeg(x, q, subsampling="4:4:4"), ref)}
        qt = torch.tensor([float(q)])
        if kornia is not None:
            row["kornia"] = _errors(kornia.enhance.jpeg_codec_differentiable(x, qt), ref)
        row["seconds_fwd_bwd"] = {"diff_jpeg_420": _timed(_fwd_bwd(lambda v: diff_jpeg(v, q), x), a.repeats)}
        if kornia is not None:
            row["seconds_fwd_bwd"]["kornia"] = _timed(
                _fwd_bwd(lambda v: kornia.enhance.jpeg_codec_differentiable(v, qt), x), a.repeats)
        row["seconds_pil_forward"] = _timed(lambda: jpeg_pil(x, q), a.repeats)
        rows.append(row)
        print(json.dumps(row), flush=True)
    blur = []
    for sigma in (0.5, 1.0, 2.0):
        r = blur_radius(sigma, 256, 256)
        entry = {"sigma": sigma, "kernel": 2 * r + 1,
                 "seconds_ops": _timed(lambda: gaussian_blur(x, sigma), a.repeats)}
        if kornia is not None:
            k = kornia.filters.gaussian_blur2d(x, (2 * r + 1, 2 * r + 1), (sigma, sigma), border_type="reflect")
            entry["max_abs_diff_vs_kornia"] = float((k - gaussian_blur(x, sigma)).abs().max())
            entry["seconds_kornia"] = _timed(
                lambda: kornia.filters.gaussian_blur2d(x, (2 * r + 1, 2 * r + 1), (sigma, sigma), border_type="reflect"),
                a.repeats)
        blur.append(entry)
        print(json.dumps(entry), flush=True)
    import PIL

    out = {
        "what": "differentiable JPEG vs PIL's real JPEG (4:2:0) on the 8 bundled photos, 256 px; errors in 8-bit levels",
        "images": list(x.shape), "threads": 1, "repeats": a.repeats,
        "versions": {"torch": torch.__version__, "pillow": PIL.__version__,
                     "kornia": getattr(kornia, "__version__", None), "python": platform.python_version()},
        "jpeg": rows, "blur": blur,
    }
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
