"""Is the pullback mask's AUROC change real? A paired bootstrap over samples of a finished membership audit.

    PYTHONPATH=src python benchmarks/mia_mask_bootstrap.py AUDIT_DIR [--draws 2000] \
        [--out benchmarks/results/privacy_mia_ft_bootstrap.json]

AUDIT_DIR holds ``items.jsonl`` (``latentguard audit membership --out AUDIT_DIR``; bench_privacy.py audit's
``--workdir``). Per attack, at the timestep where the unmasked statistic has its best AUROC on all samples, the
AUROC of each mask and its difference to no mask, with 95% intervals from ``--draws`` resamples of the samples
(members and non-members resampled separately; the same resample for every mask, so differences are paired).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("audit_dir", type=Path)
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/privacy_mia_ft_bootstrap.json")
    a = ap.parse_args()
    from sklearn.metrics import roc_auc_score

    from latentguard.privacy import mia

    items = a.audit_dir / "items.jsonl"
    if not items.is_file():
        raise SystemExit(f"{items} not found: pass the --out folder of a finished membership audit")
    st = mia.ScoreTable.from_items(items)
    y = st.labels
    rng = np.random.default_rng(a.seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    draws = [np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))] for _ in range(a.draws)]
    out = {"audit": str(items), "draws": a.draws, "seed": a.seed, "n_members": int(len(pos)),
           "n_nonmembers": int(len(neg)), "attacks": {}}
    for attack in st.attacks:
        s0 = st.scores(attack, "none")
        j = int(np.argmax([roc_auc_score(y, s0[:, k]) for k in range(s0.shape[1])]))
        res = {"timestep": int(st.timesteps[j])}
        base = np.array([roc_auc_score(y[d], s0[d, j]) for d in draws])
        for mk in st.mask_names:
            s = st.scores(attack, mk)[:, j]
            au = np.array([roc_auc_score(y[d], s[d]) for d in draws])
            diff = au - base
            res[mk] = {"auroc": round(float(roc_auc_score(y, s)), 4),
                       "auroc_ci95": [round(float(q), 4) for q in np.quantile(au, [0.025, 0.975])],
                       "minus_none": round(float(roc_auc_score(y, s) - roc_auc_score(y, s0[:, j])), 4),
                       "minus_none_ci95": [round(float(q), 4) for q in np.quantile(diff, [0.025, 0.975])]}
        out["attacks"][attack] = res
        print(attack, json.dumps(res), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
