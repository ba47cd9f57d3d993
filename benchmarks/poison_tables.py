"""Markdown tables of docs/poison.md, rendered from the committed raw outputs by ``benchmarks/render_docs.py``.

* ``calibration_table``: ``benchmarks/calibrate_ad_embed.py`` -> ``results/ad_calibration.json`` (held-out draw);
* ``scale_table``: ``benchmarks/bench_poison_ad.py`` -> ``results/poison_ad_cpu.json``;
* ``implosion_ad_table``: ``benchmarks/implosion_ad.py`` -> ``results/implosion_ad.json``;
* ``ranking_table``, ``shift_table``: ``benchmarks/poison_ranking.py`` -> ``results/poison_ranking.json``.
"""

from __future__ import annotations


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _pct(v: float) -> str:
    s = f"{100 * v:.1f}".rstrip("0").rstrip(".")
    return f"{s}%"


def calibration_table(d: dict) -> str:
    clip = d["clipping"]["held_out"]
    p, c = d["paper"], {"offset": d["offset"], "scale": d["scale"]}
    out = [_row(["pairs", f"paper {p['offset']:g} / {p['scale']:g}: clipped at 0 / at 1, mean s",
                 f"calibrated {c['offset']:g} / {c['scale']:g}: clipped at 0 / at 1, mean s"]), "|---|---|---|"]
    for pairs in ("clean", "mismatched"):
        cells = [pairs]
        for cal in ("paper", "calibrated"):
            r = clip[cal][pairs]
            cells.append(f"{_pct(r['clipped_at_0'])} / {_pct(r['clipped_at_1'])}, {r['mean_s']:.3f}")
        out.append(_row(cells))
    q = d["cosines"]["held_out"]
    out += ["", f"Held-out cosines (5th / 50th / 95th percentile): clean {q['clean']['q05']:.3f} / {q['clean']['q50']:.3f} / "
            f"{q['clean']['q95']:.3f}, mismatched {q['mismatched']['q05']:.3f} / {q['mismatched']['q50']:.3f} / "
            f"{q['mismatched']['q95']:.3f}; {d['n_pairs']:,} pairs per draw; {d['seconds']:.0f} s on the shared CPU."]
    return "\n".join(out) + "\n"


def _samples(n: int) -> str:
    return f"{n / 1e6:g}M"


def scale_table(d: dict) -> str:
    out = [_row(["method", "n", "seconds", "extra peak memory", "embeddings", "structure term"]),
           "|---|---|---|---|---|---|"]
    for r in d["results"]:
        if r["method"] == "exact":
            name, term = f"exact (blocks of {r['block_size']})", f"{r['structure']:.6f}"
        else:
            name = f"sampled ({_samples(r['num_samples'])} samples, {r['samples_per_row']} per row)"
            lo, hi = r["structure_ci"]
            term = f"{r['structure']:.6f}, 95% CI [{lo:.6f}, {hi:.6f}]"
        out.append(_row([name, f"{r['n']:,}", f"{r['seconds']:.1f}", f"{r['extra_peak_mb']:.0f} MB",
                         f"{r['embeddings_mb']:,.0f} MB", term]))
    exact = [r for r in d["results"] if r["method"] == "exact"]
    if exact and d.get("exact_full_n_extrapolated_seconds"):
        big = max(r["n"] for r in d["results"])
        rate = exact[-1]["pairs_per_s"]
        s = d["exact_full_n_extrapolated_seconds"]
        out += ["", f"Exact throughput {rate:.3g} pairs/s (n = {exact[-1]['n']:,}, {d['host']['threads']} thread). "
                f"Extrapolated from that rate, the exact term at n = {big:,} would take about {s:,.0f} s "
                f"({s / 3600:.0f} h): an extrapolation, not a measurement."]
    return "\n".join(out) + "\n"


def _ms(s: dict, digits: int = 4) -> str:
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def implosion_ad_table(d: dict) -> str:
    cal, pap = d["calibrations"]["calibrated"], d["calibrations"]["paper"]
    n = d["curves"][0]["n_seeds"] if d["curves"] else 0
    out = [_row(["k", "poisoned pairs", "AD (calibrated)", "D_fea (calibrated)", "D_stru",
                 f"AD (paper {pap['offset']:g} / {pap['scale']:g})", "D_fea (paper)"]), "|---|---|---|---|---|---|---|"]
    npois = {r["k"]: r["n_poisoned"] for r in d["rows"]}
    for c in d["curves"]:
        k = c["k"]
        out.append(_row([k, npois.get(k, "-"), _ms(c["calibrated"]["ad"]), _ms(c["calibrated"]["feature"], 3),
                         _ms(c["structure"] if "structure" in c else c["calibrated"]["structure"], 3),
                         _ms(c["paper"]["ad"]), _ms(c["paper"]["feature"], 3)]))
    out += ["", f"Mean ± std over {n} seeds; calibrated: offset {cal['offset']:g}, scale {cal['scale']:g} "
            f"(zoo:embed's `ad_calibration.json`); D_stru does not depend on the calibration. "
            f"{d['seconds']:.0f} s on the shared CPU."]
    return "\n".join(out) + "\n"


RANKING_LABELS = {"dirty-label": "dirty-label", "concept-swap": "concept-swap",
                  "nightshade": "nightshade (eps 8/255, 50 steps, vae-a)"}


def ranking_table(d: dict) -> str:
    out = [_row(["poison", "poisoned pairs", "AD", "D_fea", "D_stru", "precision@P (contribution)", "AUROC",
                 "precision@P (structure only)", "chance"]), "|---|---|---|---|---|---|---|---|---|"]
    for kind, row in d["ranking"].items():
        s = row["summary"]
        det = s["detection"]
        out.append(_row([RANKING_LABELS.get(kind, kind), det["n_poisoned"], f"{s['ad']:.4f}", f"{s['feature']:.4f}",
                         f"{s['structure']:.4f}", f"**{det['precision_at_p_contribution']:.3f}**",
                         f"{det['auroc_contribution']:.3f}", f"{det['precision_at_p_structure']:.3f}",
                         f"{det['chance_precision']:.2f}"]))
    paper = {k: r["paper_constants"] for k, r in d["ranking"].items() if "paper_constants" in r}
    if paper:
        out += ["", "The same audits with the paper's CLIP constants (offset 0.2, scale 4):", "",
                _row(["poison", "AD", "D_fea", "precision@P (contribution)", "AUROC"]), "|---|---|---|---|---|"]
        for kind, s in paper.items():
            det = s["detection"]
            out.append(_row([RANKING_LABELS.get(kind, kind), f"{s['ad']:.4f}", f"{s['feature']:.4f}",
                             f"{det['precision_at_p_contribution']:.3f}", f"{det['auroc_contribution']:.3f}"]))
    cos = [(k, r["summary"]) for k, r in d["ranking"].items() if r["summary"].get("mean_cosine_poisoned") is not None]
    if cos:
        out += ["", "Mean image-text cosine (zoo:embed), poisoned vs clean pairs: " + "; ".join(
            f"{k} {s['mean_cosine_poisoned']:.3f} vs {s['mean_cosine_clean']:.3f}" for k, s in cos) + "."]
    ns = d["ranking"].get("nightshade", {}).get("latent_shift")
    if ns:
        out += ["", f"Nightshade's latent distance to the anchor fell by {100 * ns['mean_reduction']:.1f}% on average over "
                f"its {ns['n']} poisons (`poison.jsonl`: `dist_before`, `dist_after`)."]
    return "\n".join(out) + "\n"


def shift_table(d: dict) -> str:
    out = [_row(["budget and steps", "images", "mean reduction of the latent distance"]), "|---|---|---|"]
    for r in d["shift"]:
        out.append(_row([f"{r['eps']}, {r['steps']} steps", r["n"], f"{100 * r['mean_reduction']:.1f}%"]))
    return "\n".join(out) + "\n"


def implosion_table(d: dict) -> str:
    """docs/poison.md's fine-tuned-model outcomes from ``latentguard implosion``'s ``summary.json`` (mean ± std
    over seeds per k; the ``base`` row is the model before any fine-tuning)."""
    cols = (("acc_clean", 3), ("acc_poisoned", 2), ("asr", 2), ("acc_all", 3), ("sim_clean", 3))

    def cell(s: dict | None, digits: int) -> str:
        if not s or not s.get("n") or s["mean"] != s["mean"]:  # absent, or NaN (no poisoned prompt at k = 0)
            return "-"
        return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"

    out = [_row(["k", "acc, clean prompts", "acc, poisoned prompts", "attack success", "acc, all prompts",
                 "cosine, clean"]), "|---|---|---|---|---|---|"]
    if d.get("base"):
        out.append(_row(["pretrained (no fine-tune)"] + [cell(d["base"].get(m), n) for m, n in cols]))
    for c in d["curves"]:
        out.append(_row([c["k"]] + [cell(c.get(m), n) for m, n in cols]))
    seeds = d["config"]["seeds"]  # summary.json always records its config
    out += ["", f"Mean ± std over seeds {', '.join(str(s) for s in seeds)}; "
            f"{d.get('seconds_total_this_call', float('nan')):.0f} s for the run on the shared CPU."]
    return "\n".join(out) + "\n"
