"""benchmarks/protect_tables.py renders docs/protect.md's tables from a protect_effect JSON."""

from __future__ import annotations


def test_tables_carry_the_json_values(load_benchmark):
    span = lambda a, b: {"min": a, "max": b, "mean": (a + b) / 2}
    row = {"kl_ratio": span(1.1, 1.3), "mu2_ratio": span(1.2, 1.4), "sigma2_ratio": span(0.1, 0.3),
           "sampled_recon_psnr_drop_db": span(2.0, 6.0), "psnr_to_input_db": span(24.0, 25.0)}
    clean = {"mean_logvar": span(-10, -10), "mu2_per_element": span(3.5, 3.5)}
    d = {"vaes": {"zoo:vae-a": {"256px_eps16": {"clean": clean, "pca+": row}, "64px_eps32": {"clean": clean, "noise": row}}},
         "baselines": {"vae": "zoo:vae-a", "pipeline": "zoo:t2i", "results": {
             "pid": {"size": 64, "images": 2, "steps": 20, "maximize": True, "loss_before": [0.0, 0.0],
                     "loss_after": [7.25, 27.5], "relative_improvement": [None, None]},
             "mist": {"size": 32, "images": 1, "steps": 10, "maximize": False, "loss_before": [0.5],
                      "loss_after": [0.25], "relative_improvement": [0.5]}}}}
    text = load_benchmark("protect_tables").render(d)
    assert "**zoo:vae-a, 256 px, eps 16/255**, T=40, alpha 2/255 (clean: mean ln sigma^2 -10.0" in text
    assert "| `pca+` | x1.10-1.30 (mean 1.20) | x1.20-1.40 (mean 1.30) | x0.10-0.30 (mean 0.20) | 2.00-6.00 (mean 4.00) dB | 24.5 dB |" in text
    assert "**zoo:vae-a, 64 px, eps 32/255**, T=80, alpha eps/8" in text and "| random ±eps sign noise |" in text
    assert "| `pid` | max | 64 px, 2 img, 20 steps | 0→7.25, 0→27.5 | n/a (0 before) |" in text
    assert "| `mist` | min | 32 px, 1 img, 10 steps | 0.5→0.25 | 0.50-0.50 |" in text
