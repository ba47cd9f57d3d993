"""The README's zoo table, rendered from ``benchmarks/bench_zoo.py``'s ``results/zoo_quality.json`` by
``benchmarks/render_docs.py``. The "what" column is the models' description (not a measurement); the
"measured" column is formatted from the JSON only. A model missing from the JSON gets "not measured".
"""

from __future__ import annotations

WHAT = {
    "vae-a": "KL-VAE, SD family (f=4, 4 latent ch), 27 photos (12 nature + 15 Ubuntu-contest wallpapers)",
    "vae-b": "KL-VAE, other architecture, seed and photos",
    "t2i": "text-conditional latent diffusion (UNet + DDIM + frozen MiniLM + vae-a) on Fashion-MNIST",
    "t2i-members": "same, trained long on a declared 500-image member split",
    "t2i-members-ft": "zoo:t2i fine-tuned 102 epochs on the same members: a realistically memorised MIA target",
    "ldm-photo": "unconditional photo LDM (conv UNet + DDIM on vae-a latents; prompt \"\"), img2img / inpaint / "
                 "text2img: the photo editor (a short CPU training, 1250 steps; targets in its card)",
    "embed": "CLIP-like image-text embedder (not CLIP)",
    "vae-a-srl": "vae-a hardened by SRL-VAE (decoder bit-identical)",
    "protector-a": "feed-forward protector for `protect --method fast` (0.23 M-parameter conv U-Net, `eps*tanh`), "
                   "trained on pca+ against **vae-a only**",
}


def _vae(r: dict) -> str:
    a, b = r["64px_crops"], r["256px_full"]
    return (f"{a['psnr_db']:.1f} dB / SSIM {a['ssim']:.3f} on {a['n']} crops of 64 px; {b['psnr_db']:.1f} dB / {b['ssim']:.3f} "
            f"on {b['n']} full 256 px photos")


def _measured(name: str, r: dict, d: dict) -> str:
    if name.startswith("vae"):
        text = _vae(r)
        if name == "vae-a-srl" and "vae-a" in d:
            delta = r["256px_full"]["psnr_db"] - d["vae-a"]["256px_full"]["psnr_db"]
            text += f" ({delta:+.2f} dB from vae-a at 256 px); see Harden below"
        return text
    if name == "t2i":
        return (f"generated \"a photo of a <class>\" ({r['n_generated']} images, {r['steps']} steps): "
                f"{100 * r['generated_top1_zero_shot_embed']:.2f}% recognised by zoo:embed (chance {100 * r['chance']:.0f}%); "
                f"img2img 0.5 keeps structure (SSIM {r['img2img_strength0.5_ssim_to_input']:.3f} to its input vs "
                f"{r['baseline_ssim_random_other_image']:.3f} for another image)")
    if name == "t2i-members":
        return (f"loss-attack AUROC {r['loss_attack_auroc']:.4f} ({r['n_members']} members vs {r['n_nonmembers']} "
                f"non-members, timesteps {', '.join(map(str, r['timesteps']))})")
    if name == "t2i-members-ft":
        h = r["honest_loss_attack"]["honest"]
        return (f"loss attack (the audit's) honest-protocol AUROC {h['auroc']:.3f}, TPR@1%FPR {h['tpr_at_1pct_fpr']:.3f} "
                f"({r['n_members']} members vs {r['n_nonmembers']} non-members)")
    if name == "embed":
        return (f"zero-shot {100 * r['zero_shot_top1']:.1f}% on the Fashion-MNIST test split ({r['n_test']:,} images; "
                f"chance {100 * r['chance']:.0f}%)")
    if name == "ldm-photo":
        a, b = r["img2img_strength0.3"], r["img2img_strength0.5"]
        return (f"img2img of held-out 256 px photos keeps {a['psnr_db_to_input']:.1f} dB / SSIM {a['ssim_to_input']:.2f} "
                f"of them at strength 0.3, {b['psnr_db_to_input']:.1f} dB / {b['ssim_to_input']:.2f} at 0.5 (vae-a's own "
                f"reconstruction: {r['vae_a_reconstruction']['psnr_db']:.1f} dB)")
    keys = {k: v for k, v in r.items() if isinstance(v, (int, float)) and k != "seconds"}
    return ", ".join(f"{k} {v:g}" for k, v in keys.items()) or "see its card"


def _protector(fast: dict) -> str:
    t = fast["targets"]
    return (f"one pass at 512 px {t['fast_512_seconds_vae-a, protector pass only (<= 3 s)']:.1f} s on the CPU "
            f"({t['fast_512_speedup_vs_pca+_vae-a, protection only (>= 100x)']:.0f}x faster than pca+ T=40); "
            f"{100 * t['64px/zoo:vae-a/none objective: fast / pca+ (>= 0.70)']:.0f}% of pca+'s objective on vae-a "
            f"(`benchmarks/bench_fast.py`; transfer to other VAEs: docs/protect.md)")


def quality_table(d: dict, fast: dict | None = None) -> str:
    """The table from ``zoo_quality.json`` (and ``bench_fast.json`` for the protector row)."""
    out = ["| model | what | measured (held-out; `benchmarks/bench_zoo.py`) |", "|---|---|---|"]
    for name in list(WHAT) + [n for n in d if n not in WHAT]:
        if name == "protector-a" and fast is not None:
            out.append(f"| `zoo:{name}` | {WHAT[name]} | {_protector(fast)} |")
            continue
        measured = _measured(name, d[name], d) if name in d else "not measured"
        out.append(f"| `zoo:{name}` | {WHAT.get(name, 'see its card')} | {measured} |")
    return "\n".join(out) + "\n"
