"""Measure SRL-VAE hardening: clean fidelity and robustness of a hardened VAE vs its original.

    PYTHONPATH=src python benchmarks/bench_harden.py [--original zoo:vae-a] [--hardened zoo:vae-a-srl]
        [--out benchmarks/results/bench_harden.json] [--quick] [--threads 1]

All images are the 8 bundled held-out photos (``latentguard.samples.sample_images``), never seen in training.

1. **fidelity**: reconstruction (posterior mean) PSNR / SSIM of both VAEs at 64 px (the photos resized) and
   256 px (full size).
2. **white-box reconstruction attack** (SRL-VAE's own inner attack, 20 PGD steps, eps 8 and 15/255):
   PSNR of ``D(E(x_adv))`` vs ``x`` for each VAE attacked directly.
3. **protections** (pca+, pca-, photoguard-enc, mist at eps 8/255 and 16/255), 64 px photos:
   * ``transfer``: crafted on the ORIGINAL VAE; evaluated through the original and through the hardened VAE;
   * ``adaptive``: crafted against the HARDENED VAE; evaluated through it.
   For each evaluating VAE ``V`` the edit of the protected image is compared with the same edit of the clean
   image (same noise): ``recon`` (``V`` posterior-mean reconstruction) and ``img2img`` (``zoo:t2i`` img2img
   pipeline with ``vae=V``, empty prompt, strength 0.5, 20 steps, guidance 7.5). Metrics: PSNR, SSIM, and
   ``grad-ssim`` (the harden package's weight-free LPIPS stand-in; not LPIPS). Higher PSNR/SSIM and lower
   grad-ssim = the protection failed to disturb the edit = the VAE is robust.

Protections come from ``latentguard.protect.get`` at the common comparison budget (alpha 2/255, 40 steps;
mist with its defaults: fused mode, stripe target, empty prompt, on ``zoo:t2i`` with the crafting VAE).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from latentguard.samples import sample_images  # noqa: E402
from latentguard.harden import adversarial_psnr, grad_ssim_distance  # noqa: E402
from latentguard.models import LatentVAE, load_pipeline, load_vae  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from harden_tables import table_of_rows  # noqa: E402

ATTACKS = ("pca+", "pca-", "photoguard-enc", "mist")
EPS = (8 / 255, 16 / 255)


# ------------------------------------------------------------------------------------------ protections
def make_protector(name: str, vae: LatentVAE, eps: float, pipe=None, seed: int = 0):
    """``images -> protected images`` from ``latentguard.protect.get`` at the common comparison budget
    (alpha 2/255, 40 steps); the UNet-based ``mist`` attacks ``pipe`` (whose VAE is ``vae``)."""
    from latentguard.protect import get

    kwargs = {"eps": eps}
    if name in ("mist", "advdm", "sds+", "sds-", "photoguard-diff"):
        if pipe is None:
            raise ValueError(f"{name} needs a pipeline")
        kwargs.update(pipe=pipe, vae=vae)
    else:
        kwargs["vae"] = vae
    prot = get(name, **kwargs)
    return lambda x: prot(x, generator=torch.Generator(device=vae.device).manual_seed(seed))


# --------------------------------------------------------------------------------------------- metrics
def _metrics(a: torch.Tensor, b: torch.Tensor) -> dict:
    from latentguard.ops.metrics import psnr, ssim

    return {"psnr": float(psnr(a, b).mean()), "ssim": float(ssim(a, b).mean()),
            "grad_ssim": float(grad_ssim_distance(a, b).mean())}


def _img2img(pipe, x: torch.Tensor, seed: int, steps: int) -> torch.Tensor:
    from latentguard.evaluate.edits import Img2Img

    edit = Img2Img(pipe, prompt="", strength=0.5, steps=steps, guidance=7.5)
    return edit(x, seeds=[seed + i for i in range(len(x))])


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--original", default="zoo:vae-a")
    p.add_argument("--hardened", default="zoo:vae-a-srl")
    p.add_argument("--t2i", default="zoo:t2i")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_harden.json"))
    p.add_argument("--quick", action="store_true", help="4 photos, fewer steps (wiring check; do not quote)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--attacks", default=",".join(ATTACKS))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    orig = load_vae(a.original)
    hard = load_vae(a.hardened)
    n = 4 if a.quick else None
    i2i_steps = 6 if a.quick else 20
    res: dict = {"original": a.original, "hardened": a.hardened, "t2i": a.t2i, "quick": a.quick,
                 "images": "latentguard.samples.sample_images (8 held-out CC0 photos)" + (" first 4" if a.quick else ""),
                 "perceptual_note": "grad_ssim is a weight-free LPIPS stand-in (multi-scale gradient L1 + 1-SSIM), not LPIPS"}

    # 1. fidelity
    fid = {}
    for size in (64, 256):
        x = sample_images(size, n)
        with torch.no_grad():
            ro, rh = orig.reconstruct(x), hard.reconstruct(x)
        mo, mh = _metrics(ro, x), _metrics(rh, x)
        fid[str(size)] = {"original": mo, "hardened": mh, "delta_psnr_db": mh["psnr"] - mo["psnr"]}
        print(f"fidelity {size}px: PSNR original {mo['psnr']:.2f} hardened {mh['psnr']:.2f} dB", flush=True)
    res["fidelity"] = fid

    # 2. white-box reconstruction attack
    x = sample_images(64, n)
    wb = {}
    for eps in (8 / 255, 15 / 255):
        row = {}
        for name, v in (("original", orig), ("hardened", hard)):
            row[name] = float(adversarial_psnr(v, x, eps=eps, steps=20, generator=torch.Generator().manual_seed(0)).mean())
        wb[f"{round(eps * 255)}/255"] = row
        print(f"white-box recon attack eps {round(eps * 255)}/255: PSNR original {row['original']:.2f} "
              f"hardened {row['hardened']:.2f}", flush=True)
    res["whitebox_reconstruction_attack_psnr"] = wb

    # 3. protections
    pipes = {"original": load_pipeline(a.t2i, kind="img2img", vae=orig),
             "hardened": load_pipeline(a.t2i, kind="img2img", vae=hard)}
    vaes = {"original": orig, "hardened": hard}
    clean_edits = {}
    for k in ("original", "hardened"):
        with torch.no_grad():
            clean_edits[(k, "recon")] = vaes[k].reconstruct(x)
        clean_edits[(k, "img2img")] = _img2img(pipes[k], x, 0, i2i_steps)
    rows = []
    for attack in a.attacks.split(","):
        for eps in EPS:
            for setting, craft_on, eval_on in (("transfer", "original", ("original", "hardened")),
                                               ("adaptive", "hardened", ("hardened",))):
                protector = make_protector(attack, vaes[craft_on], eps, pipes[craft_on])
                ts = time.time()
                xp = protector(x)
                linf = float((xp - x).abs().max())
                for k in eval_on:
                    for edit in ("recon", "img2img"):
                        if edit == "recon":
                            with torch.no_grad():
                                e = vaes[k].reconstruct(xp)
                        else:
                            e = _img2img(pipes[k], xp, 0, i2i_steps)
                        m = _metrics(e, clean_edits[(k, edit)])
                        row = {"attack": attack, "eps": f"{round(eps * 255)}/255", "setting": setting,
                               "crafted_on": craft_on, "evaluated_with": k, "edit": edit, "linf": linf,
                               "seconds": round(time.time() - ts, 1), **m}
                        rows.append(row)
                        print(f"{attack:15s} eps {row['eps']:6s} {setting:8s} eval {k:8s} {edit:7s} "
                              f"PSNR {m['psnr']:6.2f} SSIM {m['ssim']:.3f} grad-ssim {m['grad_ssim']:.3f}", flush=True)
    res["protection_source"] = "latentguard.protect.get (alpha 2/255, 40 steps)"
    res["protections"] = rows
    res["table"] = _table(rows)
    res["seconds"] = round(time.time() - t0, 1)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    (out.with_suffix(".md")).write_text(res["table"])
    print(res["table"])
    return res


def _table(rows: list[dict]) -> str:
    """The full table of docs/harden.md (``harden_tables.table_of_rows``, also rendered by ``render_docs.py``)."""
    return table_of_rows(rows)


if __name__ == "__main__":
    main()
