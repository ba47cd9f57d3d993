"""Privacy benchmarks: pullback estimator accuracy/speed, and the membership audit of zoo:t2i-members.

    PYTHONPATH=src python benchmarks/bench_privacy.py estimators [--out benchmarks/results/privacy_pullback.json]
    PYTHONPATH=src python benchmarks/bench_privacy.py logvol-rank --n 8
    PYTHONPATH=src python benchmarks/bench_privacy.py audit --n 200 --timesteps 10,50,100,200,300,500 \
        [--workdir /tmp/latentguard_bench_privacy] [--out benchmarks/results/privacy_mia.json] [--reevaluate]

* ``estimators``: on zoo:vae-a at 16x16 (latent 4x4x4, d=64, the explicit Jacobian is cheap) and 32x32
  (8x8x4, d=256) Fashion-MNIST images: relative error of the randomised top-k singular values and of the
  log-volume, mean |error| of the Hutchinson c_k, against the explicit Jacobian, for several settings; seconds
  per sample on 1 CPU thread.
* ``logvol-rank``: on 2n zoo:t2i-members split images, Spearman correlation and bias of cheap log-volume
  settings against a well-converged one (k=10, 20 oversampling, 5 power iterations).
* ``audit``: ``latentguard audit membership`` on zoo:t2i-members with n members + n non-members drawn from the
  declared splits (seed 0); the audit folder goes to ``--workdir``, the summary (with the command, timings,
  and host) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def estimators(args) -> dict:
    from latentguard.models import load_vae
    from latentguard.privacy import pullback as pb
    from latentguard.io import datasets

    vae = load_vae(args.vae)
    imgs, _ = datasets.fashion_mnist("test")
    x32 = torch.from_numpy(datasets.fashion_to_rgb32(imgs[: args.n]))
    x16 = torch.nn.functional.interpolate(x32, size=(16, 16), mode="bilinear", antialias=True)
    out = {"vae": args.vae, "n_samples": args.n, "threads": torch.get_num_threads(), "cases": []}
    for size, x in ((16, x16), (32, x32)):
        with torch.no_grad():
            z, _ = vae.encode(x)
        t0 = time.time()
        jac = pb.decoder_jacobian(vae, z)
        t_exp = (time.time() - t0) / len(z)
        s_all = pb.explicit_singular_values(jac)
        c_true = pb.per_dim_contribution(pb.explicit_diag(jac))
        for k, os_, pi in ((10, 5, 1), (20, 10, 2), (20, 10, 4)):
            if k > z[0].numel():
                continue
            g = torch.Generator().manual_seed(0)
            t0 = time.time()
            s = pb.topk_singular_values(vae, z, k, oversample=os_, power_iters=pi, generator=g)
            dt = (time.time() - t0) / len(z)
            st = s_all[:, :k]
            out["cases"].append({
                "image": size, "d": int(z[0].numel()), "estimator": "topk", "k": k, "oversample": os_,
                "power_iters": pi, "sec_per_sample": round(dt, 3), "explicit_sec_per_sample": round(t_exp, 3),
                "max_rel_sigma_err": float(((s - st) / st).abs().max()),
                "max_abs_logvol_err": float((pb.log_volume(s) - pb.log_volume(st)).abs().max()),
                "logvol_mean": float(pb.log_volume(st).mean()),
            })
        for m in (16, 64, 256):
            g = torch.Generator().manual_seed(0)
            t0 = time.time()
            c = pb.per_dim_contribution(pb.hutchinson_diag(vae, z, m, generator=g))
            dt = (time.time() - t0) / len(z)
            err = (c - c_true).abs()
            ranks = [np.corrcoef(np.argsort(np.argsort(c[i].numpy())), np.argsort(np.argsort(c_true[i].numpy())))[0, 1]
                     for i in range(len(z))]
            km = pb.keep_mask(c, 0.4)
            kt = pb.keep_mask(c_true, 0.4)
            out["cases"].append({
                "image": size, "d": int(z[0].numel()), "estimator": "hutchinson", "probes": m,
                "sec_per_sample": round(dt, 3), "mean_abs_c_err": float(err.mean()), "max_abs_c_err": float(err.max()),
                "spearman_mean": float(np.mean(ranks)), "mask_agreement": float((km == kt).mean()),
            })
        print(json.dumps(out["cases"][-6:], indent=1), flush=True)
    return out


def logvol_rank(args) -> dict:
    """Does a cheap log-volume estimate order samples like an accurate one? (the distortion split is rank-based)"""
    from scipy.stats import spearmanr

    from latentguard.models import load_vae
    from latentguard.privacy import pullback as pb
    from latentguard.privacy.audit import zoo_split_sets

    vae = load_vae(args.vae)
    mem, non, _ = zoo_split_sets("zoo:t2i-members", args.n, args.n, seed=1)
    with torch.no_grad():
        z, _ = vae.encode(torch.cat([mem.images, non.images]))
    settings = {"crude": (10, 5, 1), "medium": (10, 10, 2), "reference": (10, 20, 5)}
    lv, secs = {}, {}
    for name, (k, os_, pi) in settings.items():
        t0 = time.time()
        s = pb.topk_singular_values(vae, z, k, oversample=os_, power_iters=pi, generator=torch.Generator().manual_seed(0))
        secs[name] = round((time.time() - t0) / len(z), 2)
        lv[name] = pb.log_volume(s).numpy()
    out = {"vae": args.vae, "n_samples": int(len(z)), "samples": "zoo:t2i-members split subset, seed 1",
           "settings": {n: {"k": k, "oversample": o, "power_iters": p, "sec_per_sample": secs[n]}
                        for n, (k, o, p) in settings.items()}}
    for name in ("crude", "medium"):
        diff = lv[name] - lv["reference"]
        out[name] = {"spearman_vs_reference": float(spearmanr(lv[name], lv["reference"])[0]),
                     "mean_bias": float(diff.mean()), "max_abs_diff": float(np.abs(diff).max())}
    print(json.dumps(out, indent=1))
    return out


def audit(args) -> dict:
    from latentguard.cli import main

    work = Path(args.workdir)
    if args.reevaluate:  # recompute the summary from a finished run's items.jsonl (same scores, newer report)
        from latentguard.privacy import mia

        prev = json.loads(Path(args.out or ROOT / "benchmarks/results/privacy_mia.json").read_text())
        summ = mia.evaluate(mia.ScoreTable.from_items(work / "items.jsonl"), calib_fraction=prev.get("calib_fraction", 0.5))
        keep = {k: prev[k] for k in ("command", "wall_s", "timing_s", "config") if k in prev}
        return {**keep, **summ, "reevaluated_from": str(work / "items.jsonl")}
    cmd = ["audit", "membership", "--model", args.model, "--n-members", str(args.n), "--n-nonmembers",
           str(args.n), "--attacks", args.attacks, "--timesteps", args.timesteps, "--mask", "pullback",
           "--threads", str(args.threads), "--device", "cpu", "--seed", str(args.seed), "--out", str(work)]
    t0 = time.time()
    rc = main(cmd)
    if rc:
        raise SystemExit(rc)
    summ = json.loads((work / "summary.json").read_text())
    return {"command": "latentguard " + " ".join(cmd), "wall_s": round(time.time() - t0, 1), **summ}


def main_() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["estimators", "logvol-rank", "audit"])
    ap.add_argument("--out", default=None)
    ap.add_argument("--vae", default="zoo:vae-a")
    ap.add_argument("--n", type=int, default=None, help="estimators: samples (4); audit: members = non-members (200)")
    ap.add_argument("--attacks", default="loss,pia,secmi,sima")
    ap.add_argument("--timesteps", default="10,50,100,200,300")
    ap.add_argument("--workdir", default="/tmp/latentguard_bench_privacy")
    ap.add_argument("--model", default="zoo:t2i-members", help="audit: the target (default zoo:t2i-members)")
    ap.add_argument("--threads", type=int, default=1, help="audit: torch threads (default 1)")
    ap.add_argument("--seed", type=int, default=0, help="audit: the subset draw and the loss attack's noise (0)")
    ap.add_argument("--reevaluate", action="store_true", help="audit: re-evaluate --workdir/items.jsonl, no new run")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.part == "estimators":
        args.n = args.n or 4
        res = estimators(args)
        out = Path(args.out or ROOT / "benchmarks/results/privacy_pullback.json")
    elif args.part == "logvol-rank":
        args.n = args.n or 8
        res = logvol_rank(args)
        out = Path(args.out or ROOT / "benchmarks/results/privacy_logvol_rank.json")
    else:
        args.n = args.n or 200
        res = audit(args)
        out = Path(args.out or ROOT / "benchmarks/results/privacy_mia.json")
    res["host"] = {"platform": platform.platform(), "torch": torch.__version__, "threads": args.threads}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main_()
