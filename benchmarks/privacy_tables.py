"""Markdown tables of a membership-audit result (``bench_privacy.py audit`` JSON), as quoted in docs/privacy.md.

    PYTHONPATH=src python benchmarks/privacy_tables.py benchmarks/results/privacy_mia.json [--out tables.md]

Three tables: per attack and mask, both protocols (paper: best timestep on all samples; honest: threshold and
timestep chosen on a calibration half); AUROC per timestep; the distortion split (AUROC per log-volume group at
each attack's whole-set best timestep and at the largest timestep), unmasked and pullback-masked.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _tables import table_cli  # noqa: E402

PROTOCOL_KEYS = ("auroc", "asr", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "timestep")


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _f(v: float) -> str:
    return f"{v:.3f}"


def main_table(d: dict) -> list[str]:
    head = ["attack", "mask"] + [f"paper: {k}" if i == 0 else k for i, k in enumerate(("AUROC", "ASR", "TPR@1%FPR", "TPR@0.1%FPR", "t"))]
    head += [f"honest: {k}" if i == 0 else k for i, k in enumerate(("AUROC", "ASR", "TPR@1%FPR", "TPR@0.1%FPR", "t"))]
    out = [_row(head), _row(["---"] * len(head))]
    for attack, per_mask in d["attacks"].items():
        for mask, prot in per_mask.items():
            cells = [attack, mask]
            for p in ("paper", "honest"):
                r = prot[p]
                cells += [_f(r[k]) for k in PROTOCOL_KEYS[:-1]] + [r["timestep"]]
            out.append(_row(cells))
    return out


def timestep_table(d: dict) -> list[str]:
    ts = d["timesteps"]
    out = [_row(["attack", "mask"] + [f"t={t}" for t in ts]), _row(["---"] * (2 + len(ts)))]
    for attack, per_mask in d["attacks"].items():
        for mask, prot in per_mask.items():
            out.append(_row([attack, mask] + [_f(v) for v in prot["paper"]["auroc_per_timestep"]]))
    return out


def distortion_tables(d: dict) -> list[str]:
    dist = d["distortion"]
    attacks = list(d["attacks"])
    t_last = d["timesteps"][-1]
    groups = [("median", g) for g in dist["median"]] + [("quartiles", g) for g in dist["quartiles"]]
    lv = dist["log_volume"]
    out = [f"log-volume: members mean {lv['members_mean']:.3f}, non-members {lv['nonmembers_mean']:.3f}, AUROC of "
           f"log-volume alone {lv['auroc_of_log_volume']:.3f}. AUROC per log-volume group at each attack's whole-set "
           f"best timestep and at t={t_last}:", ""]
    for mask in ("none", "pullback"):
        cols = [f"{a} best-t" for a in attacks] + [f"{a} t={t_last}" for a in attacks]
        lead = ["group", "log-volume range", "n (members)"] if mask == "none" else ["group"]
        out += [f"**mask: {mask}**", "", _row(lead + cols), _row(["---"] * (len(lead) + len(cols)))]
        for kind, name in groups:
            g = dist[kind][name]
            cells = [name]
            if mask == "none":
                lo, hi = g["log_volume_range"]
                cells += [f"[{lo:.2f}, {hi:.2f}]", f"{g['n']} ({g['n_members']})"]
            cells += [_f(g[f"{a}/{mask}"]) for a in attacks]
            cells += [_f(g["per_timestep"][f"{a}/{mask}"][-1]) for a in attacks]
            out.append(_row(cells))
        out.append("")
    return out


def render(d: dict) -> str:
    lines = ["Paper protocol and honest protocol per attack and mask:", ""] + main_table(d)
    lines += ["", "AUROC per timestep (all samples, paper protocol):", ""] + timestep_table(d)
    if "distortion" in d:
        lines += ["", "Distortion split:", ""] + distortion_tables(d)
    return "\n".join(lines).rstrip() + "\n"


def render_main(d: dict) -> str:
    return "\n".join(main_table(d)) + "\n"


def render_timesteps(d: dict) -> str:
    return "\n".join(timestep_table(d)) + "\n"


def render_distortion(d: dict) -> str:
    return "\n".join(distortion_tables(d)).rstrip() + "\n"


def topk_table(d: dict) -> str:
    """``bench_privacy.py estimators`` (``results/privacy_pullback.json``): randomised top-k vs the explicit Jacobian."""
    out = [_row(["image (d)", "estimator", "setting", "max rel. sigma error", "max log-vol error", "s/sample",
                 "explicit Jacobian s/sample"]), "|---|---|---|---|---|---|---|"]
    for c in d["cases"]:
        if c["estimator"] == "topk":
            out.append(_row([f"{c['image']}px ({c['d']})", "top-k",
                             f"k={c['k']}, oversample {c['oversample']}, {c['power_iters']} power iters",
                             f"{c['max_rel_sigma_err']:.4f}", f"{c['max_abs_logvol_err']:.3f}",
                             f"{c['sec_per_sample']:.3f}", f"{c['explicit_sec_per_sample']:.1f}"]))
    return "\n".join(out) + "\n"


def hutchinson_table(d: dict) -> str:
    """``bench_privacy.py estimators``: Hutchinson's diagonal (per-dimension contributions) vs the explicit one."""
    out = [_row(["image (d)", "Hutchinson probes", "mean abs c_k error", "max abs c_k error", "Spearman vs exact",
                 "40%-mask agreement", "s/sample"]), "|---|---|---|---|---|---|---|"]
    for c in d["cases"]:
        if c["estimator"] == "hutchinson":
            out.append(_row([f"{c['image']}px ({c['d']})", c["probes"], f"{c['mean_abs_c_err']:.3f}",
                             f"{c['max_abs_c_err']:.3f}", f"{c['spearman_mean']:.3f}", f"{c['mask_agreement']:.3f}",
                             f"{c['sec_per_sample']:.3f}"]))
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    table_cli(render, __doc__.splitlines()[0], argv=argv)


if __name__ == "__main__":
    main()
