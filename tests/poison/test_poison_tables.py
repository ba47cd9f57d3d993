"""docs/poison.md's implosion outcome table renders ``latentguard implosion``'s summary.json as it is."""

from __future__ import annotations

import math


def _s(mean, std=0.0, n=3):
    return {"mean": mean, "std": std, "n": n}


def test_implosion_table_rows_follow_the_summary(load_benchmark):
    d = {"base": {"acc_clean": _s(0.9433, 0.0058), "acc_all": _s(0.9433, 0.0058), "sim_clean": _s(0.784, 0.01),
                  "acc_poisoned": _s(math.nan, math.nan, 0), "asr": _s(math.nan, math.nan, 0)},
         "curves": [{"k": 0, "n_seeds": 3, "acc_clean": _s(0.883, 0.05), "acc_poisoned": _s(math.nan, math.nan, 0),
                     "asr": _s(math.nan, math.nan, 0), "acc_all": _s(0.883, 0.05), "sim_clean": _s(0.753, 0.025)},
                    {"k": 4, "n_seeds": 3, "acc_clean": _s(0.844, 0.084), "acc_poisoned": _s(0.37, 0.1),
                     "asr": _s(0.37, 0.03), "acc_all": _s(0.653, 0.045), "sim_clean": _s(0.743, 0.029)}],
         "config": {"seeds": [0, 1, 2]}, "seconds_total_this_call": 1234.5}
    lines = load_benchmark("poison_tables").implosion_table(d).splitlines()
    assert lines[2] == "| pretrained (no fine-tune) | 0.943 ± 0.006 | - | - | 0.943 ± 0.006 | 0.784 ± 0.010 |"
    assert lines[3] == "| 0 | 0.883 ± 0.050 | - | - | 0.883 ± 0.050 | 0.753 ± 0.025 |"
    assert lines[4] == "| 4 | 0.844 ± 0.084 | 0.37 ± 0.10 | 0.37 ± 0.03 | 0.653 ± 0.045 | 0.743 ± 0.029 |"
    assert "seeds 0, 1, 2" in lines[-1] and "1234 s" in lines[-1]
