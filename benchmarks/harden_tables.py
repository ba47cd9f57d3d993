"""Markdown tables of docs/harden.md, rendered from the committed raw outputs by ``benchmarks/render_docs.py``.

* ``sweep_table``: ``benchmarks/bench_harden_sweep.py`` -> ``results/bench_harden_sweep.json``;
* ``fidelity_table``, ``whitebox_table``, ``gain_table``, ``full_table``: ``benchmarks/bench_harden.py`` ->
  ``results/bench_harden.json`` (``full_table`` is also what ``bench_harden.py`` prints and writes to ``.md``).
"""

from __future__ import annotations

ATTACKS = ("pca+", "pca-", "photoguard-enc", "mist")
SETTINGS = (("original (original)", "transfer", "original"), ("hardened (original)", "transfer", "hardened"),
            ("hardened (hardened, adaptive)", "adaptive", "hardened"))
EDITS = ("recon", "img2img")


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _d(v: float) -> str:
    return f"{v:+.2f}"


def _num(v: float) -> str:
    if v and abs(v) < 1e-3:
        m, e = f"{v:e}".split("e")
        return f"{float(m):g}e{int(e)}"
    return f"{v:g}"


def sweep_table(d: dict) -> str:
    b = d["base_preset"]
    base = (f"base ({b['perceptual']} {b['attack_perceptual_weight']:g}/{b['recon_perceptual_weight']:g}, orig "
            f"{b['orig_weight']:g}, clean {b['clean_ratio']:g}, {b['attack_steps']} steps, {b['eps'] * 255:.0f}/255, "
            f"lr {_num(b['lr'])}, {b['steps']} steps)")
    cols = ("clean_psnr", "adv_psnr_8", "adv_psnr_15", "pca+_16_recon_psnr", "photoguard-enc_16_recon_psnr")
    out = [_row(["variant (change from the sweep's base)", "clean PSNR", "white-box 8/255", "white-box 15/255",
                 "PCA+ 16/255 recon", "PhotoGuard-enc 16/255 recon", "train min"]), "|---|---|---|---|---|---|---|"]
    o = d["original"]
    out.append(_row([o["variant"]] + [f"{o[c]:.2f}" for c in cols] + ["-"]))
    for v in d["variants"]:
        name = base if v["variant"] == "preset" else v["variant"]
        out.append(_row([name] + [f"{v[c]:.2f}" for c in cols] + [f"{v['train_minutes']:.1f}"]))
    out += ["", f"Validation: {d['validation']}. {d['note']}"]
    return "\n".join(out) + "\n"


def fidelity_table(d: dict) -> str:
    out = [_row(["held-out photos", f"original {d['original'].removeprefix('zoo:')} PSNR / SSIM",
                 f"{d['hardened'].removeprefix('zoo:')} PSNR / SSIM", "change"]), "|---|---|---|---|"]
    for size, f in d["fidelity"].items():
        o, h = f["original"], f["hardened"]
        out.append(_row([f"{size} px", f"{o['psnr']:.2f} / {o['ssim']:.3f}", f"{h['psnr']:.2f} / {h['ssim']:.3f}",
                         f"{f['delta_psnr_db']:+.2f} dB"]))
    return "\n".join(out) + "\n"


def whitebox_table(d: dict) -> str:
    out = [_row(["white-box reconstruction attack (20 PGD steps, MSE objective), 64 px", "original",
                 d["hardened"].removeprefix("zoo:"), "change"]), "|---|---|---|---|"]
    for eps, r in d["whitebox_reconstruction_attack_psnr"].items():
        out.append(_row([f"eps {eps}: PSNR of D(E(x_adv)) vs x", f"{r['original']:.2f}", f"{r['hardened']:.2f}",
                         f"{r['hardened'] - r['original']:+.2f} dB"]))
    return "\n".join(out) + "\n"


def _cols(rows: list[dict]) -> list[tuple[str, str]]:
    return sorted({(r["attack"], r["eps"]) for r in rows},
                  key=lambda c: (ATTACKS.index(c[0]) if c[0] in ATTACKS else 9, int(c[1].split("/")[0])))


def _cell(rows: list[dict], attack: str, eps: str, setting: str, ev: str, edit: str) -> dict | None:
    hit = [r for r in rows if r["attack"] == attack and r["eps"] == eps and r["setting"] == setting
           and r["evaluated_with"] == ev and r["edit"] == edit]
    return hit[0] if hit else None


def gain_table(d: dict) -> str:
    rows = d["protections"]
    out = [_row(["protection", "eps"] + [f"{e}: {s}" for e in EDITS for s in ("transfer", "adaptive")]),
           "|---|---|---|---|---|---|"]
    for attack, eps in _cols(rows):
        cells = [attack, eps]
        for edit in EDITS:
            base = _cell(rows, attack, eps, "transfer", "original", edit)
            for setting in ("transfer", "adaptive"):
                r = _cell(rows, attack, eps, setting, "hardened", edit)
                cells.append(_d(r["psnr"] - base["psnr"]) if r and base else "-")
        out.append(_row(cells))
    return "\n".join(out) + "\n"


def table_of_rows(rows: list[dict]) -> str:
    """Paper-style table: rows (VAE, setting), columns attack@eps; cells PSNR / SSIM of the edit vs the clean edit."""
    cols = _cols(rows)
    out = []
    for edit in EDITS:
        out.append(f"\n**{edit}**: PSNR (dB) / SSIM of the edit of the protected photo vs the edit of the clean photo\n")
        out.append("| VAE (protection crafted on) | " + " | ".join(f"{a} {e}" for a, e in cols) + " |")
        out.append("|---|" + "---|" * len(cols))
        for label, setting, ev in SETTINGS:
            cells = []
            for a_, e_ in cols:
                r = _cell(rows, a_, e_, setting, ev, edit)
                cells.append(f"{r['psnr']:.2f} / {r['ssim']:.3f}" if r else "-")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def full_table(d: dict) -> str:
    return table_of_rows(d["protections"]).lstrip("\n")
