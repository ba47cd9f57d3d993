"""Markdown tables of a ``protect_effect.py`` result, as quoted in docs/protect.md.

    PYTHONPATH=src python benchmarks/protect_tables.py [benchmarks/results/protect_effect.json] [--out tables.md]

Per VAE and setting: the ratios protected/clean of KL(q||N(0,I)), of the sum of squared means and of the mean
variance (encoder-level diagnostics, not the paper's edit-level claims), the reconstruction PSNR drop (the JSON's
``sampled_recon_psnr_drop_db``: a sampled latent is decoded, which on these narrow posteriors equals decoding the
mean to < 0.04 dB, ``benchmarks/pca_mean_vs_sample.py``) and the PSNR of the protected image to its input
(min-max and mean over the images); then the baselines' own objectives before and after.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _tables import table_cli  # noqa: E402

DEFAULT = Path(__file__).parent / "results" / "protect_effect.json"


def _span(s: dict, pre: str = "x") -> str:
    return f"{pre}{s['min']:.2f}-{s['max']:.2f} (mean {s['mean']:.2f})"


def _g(v: float) -> str:
    return f"{v:.3g}"


def effect_tables(d: dict) -> list[str]:
    out: list[str] = []
    for vae, per in d["vaes"].items():
        for key, res in per.items():
            size, eps = key.split("px_eps")
            setting = ", T=40, alpha 2/255" if eps == "16" else ", T=80, alpha eps/8"
            c = res["clean"]
            out += [f"**{vae}, {size} px, eps {eps}/255**{setting} (clean: mean ln sigma^2 {c['mean_logvar']['mean']:.1f}, "
                    f"mu^2 per element {c['mu2_per_element']['mean']:.2f}):", "",
                    "| | KL(q‖N(0,I)) | Σμ² | mean σ² | reconstruction PSNR drop | PSNR to input |",
                    "|---|---|---|---|---|---|"]
            for m, r in res.items():
                if m == "clean":
                    continue
                name = "random ±eps sign noise" if m == "noise" else f"`{m}`"
                out.append(f"| {name} | {_span(r['kl_ratio'])} | {_span(r['mu2_ratio'])} | {_span(r['sigma2_ratio'])} | "
                           f"{_span(r['sampled_recon_psnr_drop_db'], pre='')} dB | {r['psnr_to_input_db']['mean']:.1f} dB |")
            out.append("")
    return out


def baseline_table(d: dict) -> list[str]:
    b = d.get("baselines")
    if not b:
        return []
    out = ["| method | direction | setting | objective before → after (per image) | relative improvement |",
           "|---|---|---|---|---|"]
    for m, r in b["results"].items():
        pairs = ", ".join(f"{_g(x)}→{_g(y)}" for x, y in zip(r["loss_before"], r["loss_after"]))
        rel = [v for v in r["relative_improvement"] if v is not None]
        rel_s = f"{min(rel):.2f}-{max(rel):.2f}" if rel else "n/a (0 before)"
        setting = f"{r['size']} px, {r['images']} img, {r['steps']} steps"
        out.append(f"| `{m}` | {'max' if r['maximize'] else 'min'} | {setting} | {pairs} | {rel_s} |")
    return out


def render(d: dict) -> str:
    lines = effect_tables(d)
    base = baseline_table(d)
    if base:
        lines += [f"**Baselines** (VAE {d['baselines']['vae']}, pipeline {d['baselines']['pipeline']}), relative "
                  "improvement of their own objective:", ""] + base
    return "\n".join(lines).rstrip() + "\n"


def speed_table(d: dict) -> str:
    """``bench_protect.py``'s timings (``results/protect_cpu.json``): per image, per step, extrapolated to T."""
    T = d["T"]
    out = [f"| VAE | size | bare enc fwd+bwd (s) | T={T} bare (s) | method | per step (s) | s/image at T={T} "
           f"(extrapolated) | step / bare |", "|---|---|---|---|---|---|---|---|"]
    for r in d["results"]:
        lead = [r["vae"], str(r["size"]), f"{r['bare_fwd_bwd_s']:.3f}", f"{r['bare_T_fwd_bwd_s']:.1f}"]
        for i, (m, v) in enumerate(sorted(r["methods"].items())):
            cells = (lead if i == 0 else [""] * 4) + [f"`{m}`", f"{v['per_step_s']:.3f}",
                                                       f"{v['seconds_per_image_T40']:.1f}", f"{v['ratio_step_vs_bare']:.2f}"]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    table_cli(render, __doc__.splitlines()[0], DEFAULT, argv=argv)


if __name__ == "__main__":
    main()
