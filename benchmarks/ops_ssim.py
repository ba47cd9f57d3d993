"""Which SSIM is ``latentguard.ops.metrics.ssim``? Measured against scikit-image and torchmetrics.

On the 8 bundled photos at 256 px, each degraded by Gaussian noise (std 0.02, 0.05, 0.1, 0.2), PIL JPEG
(q 10, 30, 50, 90) and Gaussian blur (sigma 0.5, 1, 2, 3): 96 image pairs. For each pair, our SSIM,
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=1)`` and, when torchmetrics is installed, its ``structural_similarity_index_measure`` at its
defaults (``data_range=1``). Also records whether torchvision got imported.

    PYTHONPATH=src python benchmarks/ops_ssim.py        # writes benchmarks/results/ops_ssim.json

(torchmetrics is an optional extra; the recorded run had torchmetrics 1.9.0 on the path from a separate
``pip install --target`` folder, no torchvision installed.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from latentguard.samples import sample_images  # noqa: E402
from latentguard.ops.metrics import ssim  # noqa: E402
from latentguard.ops.transforms import gaussian_blur, jpeg_pil  # noqa: E402


def main() -> int:
    from skimage.metrics import structural_similarity

    try:
        import torchmetrics
        from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim
    except ImportError:
        torchmetrics = tm_ssim = None
    torch.set_num_threads(1)
    x = sample_images(256).double()
    g = torch.Generator().manual_seed(0)
    degraded = {}
    for s in (0.02, 0.05, 0.1, 0.2):
        degraded[f"noise-{s}"] = (x + s * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    for q in (10, 30, 50, 90):
        degraded[f"jpeg-q{q}"] = jpeg_pil(x, q)
    for s in (0.5, 1.0, 2.0, 3.0):
        degraded[f"blur-{s}"] = gaussian_blur(x, s).clamp(0, 1)
    rows = []
    for name, y in degraded.items():
        ours = ssim(y, x)
        for i in range(len(x)):
            sk = structural_similarity(x[i].permute(1, 2, 0).numpy(), y[i].permute(1, 2, 0).numpy(), data_range=1.0,
                                       channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
            row = {"degradation": name, "image": i, "ours": float(ours[i]), "skimage": float(sk)}
            if tm_ssim is not None:
                row["torchmetrics"] = float(tm_ssim(y[i : i + 1], x[i : i + 1], data_range=1.0))
            rows.append(row)
    d_sk = np.abs([r["ours"] - r["skimage"] for r in rows])
    out = {"n_pairs": len(rows), "max_abs_diff_skimage": float(d_sk.max()),
           "torchvision_imported": "torchvision" in sys.modules,
           "torchmetrics": getattr(torchmetrics, "__version__", None)}
    if tm_ssim is not None:
        d_tm = np.abs([r["ours"] - r["torchmetrics"] for r in rows])
        worst = rows[int(np.argmax(d_tm))]
        out.update({"max_abs_diff_torchmetrics": float(d_tm.max()), "mean_abs_diff_torchmetrics": float(d_tm.mean()),
                    "worst_torchmetrics": worst})
    print(json.dumps(out, indent=2))
    out["rows"] = rows
    path = ROOT / "benchmarks" / "results" / "ops_ssim.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
