"""Bench config validation (strict, at load time), budgets, runner and report helpers (no models needed)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from latentguard.core.units import parse_budget
from latentguard.evaluate import config as C
from latentguard.evaluate import edits as E
from latentguard.evaluate import purify as P
from latentguard.evaluate import runner as B
from latentguard.evaluate import tables as R

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
    assert parse_budget("16/255") == (16 / 255, "16/255")
    assert parse_budget(0.03) == (0.03, "0.03")
    assert parse_budget("0.05")[0] == 0.05
    for bad in ("16", 16, -0.1, "abc", True, "1/0"):
        with pytest.raises(ValueError):
            parse_budget(bad)


def test_config_from_dict_and_errors():
    cfg = C.BenchConfig.from_dict(MIN)
    assert cfg.methods == ("none", "random-noise") and cfg.targets == ("zoo:t2i",)
    assert cfg.purifications == ({"kind": "none"},) and cfg.metrics == C.DEFAULT_METRICS
    assert cfg.to_dict()["budgets"] == [{"eps": 8 / 255, "label": "8/255"}]
    with pytest.raises(ValueError, match="unknown metric"):
        C.BenchConfig.from_dict(_cfg(run__metrics=["psnr", "lpipz"]))
    with pytest.raises(ValueError, match="duplicates"):
        C.BenchConfig.from_dict(_cfg(protect__methods=["none", "none"]))
    with pytest.raises(ValueError, match="image_size"):
        C.BenchConfig.from_dict(_cfg(run__image_size=4))
    with pytest.raises(ValueError, match="unknown \\[run\\] keys"):
        C.BenchConfig.from_dict(_cfg(run__sedd=1))
    bad = json.loads(json.dumps(MIN))
    bad["protect"]["targets"] = ["x"]
    with pytest.raises(ValueError, match="TOML puts a key"):
        C.BenchConfig.from_dict(bad)
    with pytest.raises(ValueError, match="params"):
        C.BenchConfig.from_dict(_cfg(protect__params={"pca+": {"alpha": 0.01}}))


def test_config_from_toml(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[run]\ntargets = ["zoo:t2i"]\n[protect]\nmethods = ["none"]\nsurrogates = ["zoo:vae-a"]\n'
                 '[[edits]]\nkind = "recon"\n')
    assert C.BenchConfig.from_toml(p).methods == ("none",)
    p.write_text("[run\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        C.BenchConfig.from_toml(p)
    with pytest.raises(FileNotFoundError):
        C.BenchConfig.from_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize("change, path, what", [
    (lambda d: d["edits"].append({"kind": "img2imgg"}), "edits[1].kind", "unknown edit kind 'img2imgg'"),
    (lambda d: d["edits"].append({"kind": "img2img", "strenght": 0.5}), "edits[1].strenght", "unknown edits[1]"),
    (lambda d: d.update(purifications=[{"kind": "jpg"}]), "purifications[0].kind", "unknown purification kind"),
    (lambda d: d.update(purifications=[{"kind": "jpeg", "qualty": [50]}]), "purifications[0].qualty", "unknown"),
    (lambda d: d.update(purifications=[{"kind": "jpeg", "quality": [50, "x"]}]), "purifications[0].quality[1]",
     "valid integer"),
    (lambda d: d["run"].update(metrics=["psnr", "lpipz"]), "run.metrics[1]", "unknown metric 'lpipz'"),
    (lambda d: d["protect"].update(methods=["none", "pca++"]), "protect.methods[1]",
     "unknown protection method 'pca++'"),
    (lambda d: d["protect"].update(methods=["pca+"], params={"pca+": {"stpes": 3}}), "protect.params.pca+.stpes",
     "takes no parameter"),
    (lambda d: d["run"].update(targets=[{"model": "zoo:t2i", "vea": "x"}]), "run.targets[0].vea", "unknown"),
    (lambda d: d["protect"].update(steps=True), "protect.steps", "valid integer"),
    (lambda d: d.update(edit=[{"kind": "recon"}]), "edit", "unknown top-level config keys"),
])
def test_every_config_mistake_fails_at_load_time_naming_the_key(change, path, what):
    d = json.loads(json.dumps(MIN))
    change(d)
    with pytest.raises(C.ConfigError) as exc:
        C.BenchConfig.from_dict(d)
    msg = str(exc.value)
    assert path in msg and what in msg and "\n" not in msg


def test_schema_parameters_are_the_builders_parameters():
    """The typed tables take exactly the parameters (and defaults) of the edit and purification classes."""
    builders = {"recon": E.VAEReconstruction, "img2img": E.Img2Img, "inpaint": E.Inpaint}
    assert set(C.EDIT_SPECS) == set(E.EDIT_KINDS) == set(builders)
    renamed = {"prompt": "prompts"}  # one edit per prompt
    for kind, cls in builders.items():
        fields = {renamed.get(f.name, f.name): f.default for f in dataclasses.fields(cls) if f.name not in ("vae", "pipe")}
        spec = {k: v.default for k, v in C.EDIT_SPECS[kind].model_fields.items() if k != "kind"}
        assert set(spec) == set(fields), kind
        assert {k: v for k, v in spec.items() if k != "prompts"} == {k: v for k, v in fields.items() if k != "prompts"}
    purifiers = {"none": P.NoPurification, "jpeg": P.JPEG, "resize": P.Resize, "blur": P.GaussianBlur,
                 "noise": P.GaussianNoise, "diffpure": P.DiffPure, "impress": P.Impress, "noisy-upscale": P.NoisyUpscale,
                 "webp": P.WebP, "gridpure": P.GrIDPure, "noisy-upscale-standin": P.NoisyUpscaleStandIn}
    assert set(C.PURIFICATION_SPECS) == set(P.PURIFY_KINDS) == set(purifiers)
    for kind, cls in purifiers.items():
        fields = {f.name: f.default for f in dataclasses.fields(cls) if f.name not in ("vae", "pipe", "param", "name",
                                                                                        "strength")}
        spec = {k: v.default for k, v in C.PURIFICATION_SPECS[kind].model_fields.items() if k not in ("kind", "upscaler")}
        assert spec == fields, kind


def test_every_example_config_loads():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "examples"
    loaded = [p.name for p in sorted(root.glob("*.toml")) if p.name != "implosion.toml"]
    for name in loaded:
        C.BenchConfig.from_toml(root / name)
    assert {"pca_table.toml", "pca_purify.toml", "srl_table.toml"} <= set(loaded)


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
    assert t["columns"] == ["Method", "ε", "psnr vs clean edit ↓", "objective", "beats noise"]  # no vs_input rows
    assert [r["label"] for r in t["rows"]] == ["pca+", "no protection"]
    assert t["rows"][0]["values"]["psnr"] == pytest.approx(16.0)


def test_tables_score_each_method_on_its_own_objective():
    """PCA+ targets Objective 1 (its edit stays close to the input), PCA- Objective 2 (away from the clean edit):
    each is judged against the equal-budget noise row on its own objective, its own columns marked."""
    cfg = {"name": "t", "methods": ["pca+", "pca-", "random-noise", "none"], "budgets": [{"eps": 0.06, "label": "16/255"}],
           "surrogates": ["s"], "targets": ["t"], "metrics": ["psnr"], "grid_images": 0}

    def row(method, lab, obj2, obj1):
        return {**_row(method, lab, "a", obj2), "vs_input": {"psnr": obj1}}

    # pca+: its edit is closer to the input than noise's (30 > 25 dB) but not further from the clean edit (40 > 35);
    # pca-: further from the clean edit than noise (20 < 35) and further from the input too (15 < 25)
    rows = [row("pca+", "16/255", 40.0, 30.0), row("pca-", "16/255", 20.0, 15.0),
            row("random-noise", "16/255", 35.0, 25.0), row("none", "0", 100.0, 26.0)]
    t = R.build_tables(cfg, rows)[0]
    assert t["columns"] == ["Method", "ε", "psnr vs clean edit ↓", "psnr vs input ↑", "objective", "beats noise"]
    by = {r["method"]: r for r in t["rows"]}
    assert (by["pca+"]["objective"], by["pca-"]["objective"], by["random-noise"]["objective"]) == (1, 2, None)
    assert by["pca+"]["beats_noise"] == {"psnr": True} and by["pca-"]["beats_noise"] == {"psnr": True}
    assert by["none"]["beats_noise"] == {} and by["pca+"]["values_input"] == {"psnr": 30.0}
    md = R.tables_markdown([t], cfg, {})
    assert "| pca+ | 16/255 | 40.00 | **30.00** | 1 | yes |" in md
    assert "| pca- | 16/255 | **20.00** | 15.00 | 2 | yes |" in md
    assert "| random noise | 16/255 | 35.00 | 25.00 | – | – |" in md
    # a pca+ whose edit is further from the input than noise's misses its objective
    t2 = R.build_tables(cfg, [row("pca+", "16/255", 10.0, 20.0), rows[2]])[0]
    assert t2["rows"][0]["beats_noise"] == {"psnr": False}


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    from latentguard.cli import main

    assert main(["bench", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.toml" in err[0]


def test_cli_misspelt_method_exits_2_before_any_model_loads(tmp_path, capsys, monkeypatch):
    """A misspelt method used to run every other cell for minutes and fail its own; now the file is refused."""
    from latentguard.cli import main

    def no_model(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(E.ModelCache, "vae", no_model)
    monkeypatch.setattr(E.ModelCache, "pipeline", no_model)
    p = tmp_path / "c.toml"
    p.write_text('[run]\ntargets = ["zoo:t2i"]\n[protect]\nmethods = ["pca+", "pca-pluss"]\nsurrogates = ["zoo:vae-a"]\n'
                 '[[edits]]\nkind = "recon"\n')
    assert main(["bench", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "protect.methods[1]" in err[0] and "pca-pluss" in err[0] and str(p) in err[0]
    assert not (tmp_path / "o").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text('[run]\ntargets = ["zoo:t2i"]\n[protect]\nmethods = ["none"]\nbudgets = ["16"]\n'
                   'surrogates = ["zoo:vae-a"]\n[[edits]]\nkind = "recon"\n')
    assert main(["bench", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "16/255, not 16" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "results.jsonl" in capsys.readouterr().err
