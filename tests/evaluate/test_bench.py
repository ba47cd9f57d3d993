"""Bench config validation, budgets, built-in protections, report helpers (no models needed)."""

from __future__ import annotations

import json

import pytest
import torch

from latentguard.evaluate import bench as B
from latentguard.evaluate import report as R

MIN = {
    "run": {"targets": ["zoo:t2i"]},
    "protect": {"methods": ["none", "random-noise"], "budgets": ["8/255"], "surrogates": ["zoo:vae-a"]},
    "edits": [{"kind": "recon"}],
}


def _cfg(**over):
    d = json.loads(json.dumps(MIN))
    for k, v in over.items():
        sect, key = k.split("__")
        d[sect][key] = v
    return d


def test_parse_budget():
    assert B.parse_budget("16/255") == (16 / 255, "16/255")
    assert B.parse_budget(0.03) == (0.03, "0.03")
    assert B.parse_budget("0.05")[0] == 0.05
    for bad in ("16", 16, -0.1, "abc", True, "1/0"):
        with pytest.raises(ValueError):
            B.parse_budget(bad)


def test_config_from_dict_and_errors():
    cfg = B.BenchConfig.from_dict(MIN)
    assert cfg.methods == ("none", "random-noise") and cfg.targets == ("zoo:t2i",)
    assert cfg.purifications == ({"kind": "none"},) and cfg.metrics == B.DEFAULT_METRICS
    assert cfg.to_dict()["budgets"] == [{"eps": 8 / 255, "label": "8/255"}]
    with pytest.raises(ValueError, match="unknown metric"):
        B.BenchConfig.from_dict(_cfg(run__metrics=["psnr", "lpipz"]))
    with pytest.raises(ValueError, match="duplicates"):
        B.BenchConfig.from_dict(_cfg(protect__methods=["none", "none"]))
    with pytest.raises(ValueError, match="image_size"):
        B.BenchConfig.from_dict(_cfg(run__image_size=4))
    with pytest.raises(ValueError, match="unknown \\[run\\] keys"):
        B.BenchConfig.from_dict(_cfg(run__sedd=1))
    bad = json.loads(json.dumps(MIN))
    bad["protect"]["targets"] = ["x"]
    with pytest.raises(ValueError, match="TOML puts a key"):
        B.BenchConfig.from_dict(bad)
    with pytest.raises(ValueError, match="params"):
        B.BenchConfig.from_dict(_cfg(protect__params={"pca+": {"alpha": 0.01}}))


def test_config_from_toml(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[run]\ntargets = ["zoo:t2i"]\n[protect]\nmethods = ["none"]\nsurrogates = ["zoo:vae-a"]\n'
                 '[[edits]]\nkind = "recon"\n')
    assert B.BenchConfig.from_toml(p).methods == ("none",)
    p.write_text("[run\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        B.BenchConfig.from_toml(p)
    with pytest.raises(FileNotFoundError):
        B.BenchConfig.from_toml(tmp_path / "missing.toml")


def test_random_sign_noise_budget_and_determinism():
    x = torch.rand(2, 3, 16, 16)
    before = x.clone()
    f = B.RandomSignNoise(8 / 255)
    a = f(x, generator=torch.Generator().manual_seed(0))
    b = f(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.equal(x, before)
    d = (a - x).abs()
    assert float(d.max()) <= 8 / 255 + 1e-7
    interior = (x > 8 / 255) & (x < 1 - 8 / 255)
    assert torch.allclose(d[interior], torch.full_like(d[interior], 8 / 255), atol=1e-6)  # every pixel at the budget
    assert torch.equal(B.NoProtection()(x), x)
    with pytest.raises(ValueError, match="eps"):
        B.RandomSignNoise(2.0)


def test_make_protection_unknown_method_is_an_error():
    with pytest.raises(ValueError):
        B.make_protection("no-such-method", vae=None, eps=0.03, steps=1)


def test_purification_kind_and_slug():
    assert B.purification_kind("jpeg-q50") == "jpeg"
    assert B.purification_kind("noisy-upscale-0.05") == "noisy-upscale"
    assert B.purification_kind("none") == "none"
    assert B.slug("pca+_16/255_zoo:vae-a") == "pca+_16-255_zoo-vae-a" and B.slug("pca-") != B.slug("pca")


def _row(method, eps_label, image, psnr, fam="recon-mean", pur="none", status="ok"):
    return {"key": f"{method}|{eps_label}|s|t|{fam}|{pur}|{image}", "status": status, "method": method,
            "eps_label": eps_label, "surrogate": "s", "target": "t", "edit": fam, "edit_family": fam,
            "purification": pur, "image": image, "metrics": {"psnr": psnr}, "input": {"psnr": 30.0, "linf": 0.03}}


def test_tables_follow_config_order_and_dedupe(tmp_path):
    cfg = {"name": "t", "methods": ["pca+", "none"], "budgets": [{"eps": 0.03, "label": "8/255"}],
           "surrogates": ["s"], "targets": ["t"], "metrics": ["psnr"], "grid_images": 0}
    rows = [_row("none", "0", "a", 50.0), _row("pca+", "8/255", "a", 10.0), _row("pca+", "8/255", "b", 20.0)]
    rows.append({**_row("pca+", "8/255", "b", 0.0), "status": "error"})  # a failed retry replaces nothing ok
    (tmp_path / "run.json").write_text(json.dumps({"config": cfg}))
    with open(tmp_path / "results.jsonl", "w") as fh:
        for r in rows[:3]:
            fh.write(json.dumps(r) + "\n")
        fh.write(json.dumps({**rows[1], "metrics": {"psnr": 12.0}}) + "\n")  # resumed row wins
        fh.write("{cut by a kill\n")
    _, loaded = R.load_results(tmp_path)
    assert len(loaded) == 3
    tables = R.build_tables(cfg, loaded)
    assert len(tables) == 1
    t = tables[0]
    assert t["columns"] == ["Method", "ε", "psnr ↓"]
    assert [r["label"] for r in t["rows"]] == ["pca+", "no protection"]
    assert t["rows"][0]["values"]["psnr"] == pytest.approx(16.0)


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    from latentguard.cli import main

    assert main(["bench", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.toml" in err[0]
    bad = tmp_path / "bad.toml"
    bad.write_text('[run]\ntargets = ["zoo:t2i"]\n[protect]\nmethods = ["none"]\nbudgets = ["16"]\n'
                   'surrogates = ["zoo:vae-a"]\n[[edits]]\nkind = "recon"\n')
    assert main(["bench", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "16/255, not 16" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "results.jsonl" in capsys.readouterr().err
