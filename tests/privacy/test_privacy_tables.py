"""benchmarks/privacy_tables.py renders the docs' tables from an audit JSON, values taken from the JSON."""

from __future__ import annotations

import json

import pytest


def _audit() -> dict:
    ts = [10, 500]
    prot = lambda a: {"auroc": a, "asr": 0.5, "tpr_at_1pct_fpr": 0.25, "tpr_at_0.1pct_fpr": 0.125, "timestep": 10}
    attacks = {a: {m: {"paper": {**prot(0.9), "auroc_per_timestep": [0.9, 0.6]}, "honest": prot(0.875)}
                   for m in ("none", "pullback")} for a in ("loss", "sima")}
    group = lambda lo, hi, v: {"n": 4, "n_members": 2, "log_volume_range": [lo, hi],
                               "per_timestep": {f"{a}/{m}": [v, v / 2] for a in ("loss", "sima") for m in ("none", "pullback")},
                               **{f"{a}/{m}": v for a in ("loss", "sima") for m in ("none", "pullback")}}
    dist = {"log_volume": {"members_mean": -4.5, "nonmembers_mean": -4.25, "auroc_of_log_volume": 0.5},
            "median": {"low": group(-7, -4.5, 0.75), "high": group(-4.5, -2, 0.625)},
            "quartiles": {"Q1": group(-7, -5, 0.5)}}
    return {"attacks": attacks, "timesteps": ts, "distortion": dist}


def test_tables_carry_the_json_values(tmp_path, load_benchmark):
    mod = load_benchmark("privacy_tables")
    text = mod.render(_audit())
    assert "| loss | none | 0.900 | 0.500 | 0.250 | 0.125 | 10 | 0.875 |" in text
    assert "| sima | pullback | 0.900 | 0.600 |" in text  # AUROC per timestep
    assert "| low | [-7.00, -4.50] | 4 (2) | 0.750 | 0.750 | 0.375 | 0.375 |" in text
    assert text.count("| Q1 |") == 2  # unmasked and pullback-masked
    p = tmp_path / "a.json"
    p.write_text(json.dumps(_audit()))
    mod.main([str(p), "--out", str(tmp_path / "t.md")])
    assert (tmp_path / "t.md").read_text() == text
    with pytest.raises(SystemExit, match="no such file"):
        mod.main([str(tmp_path / "missing.json")])
