"""Named SRL-VAE recipes (presets). The bundled ``zoo:vae-a-srl`` is rebuilt from ``PRESETS["vae-a-srl"]``:

    latentguard harden --vae zoo:vae-a --data /usr/share/backgrounds/mate/nature \\
        --preset vae-a-srl --out runs/vae-a-srl --device cpu

(the 12 training photos of ``zoo:vae-a``, Debian's mate-backgrounds; never the held-out sample photos).
"""

from __future__ import annotations

from latentguard.harden.config import SRLConfig

PRESETS: dict[str, SRLConfig] = {
    "default": SRLConfig(),
    # The bundled hardened zoo VAE: vae-a's own crop distribution (64 px crops of its 12 training photos at
    # its recipe's scales), the paper's 15/255 budget, MSE-only objectives (the grad-ssim stand-in cost
    # 1.0 dB of clean validation PSNR for no robustness gain: benchmarks/results/bench_harden_sweep.json).
    "vae-a-srl": SRLConfig(steps=600, batch_size=8, crop=64, attack_steps=3, perceptual="none", seed=0,
                           checkpoint_every=50, log_every=5, save_dtype="float16"),
}


def get_preset(name: str) -> SRLConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown SRL-VAE preset {name!r}; available: {', '.join(PRESETS)}") from None
