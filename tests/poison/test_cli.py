"""CLI: latentguard poison / audit alignment / implosion (tiny datasets; zoo-dependent parts skip without weights)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from latentguard.cli import main
from latentguard.poison.dataset import read_dataset, write_dataset


@pytest.fixture()
def tiny_ds(tmp_path):
    g = torch.Generator().manual_seed(0)
    concepts = [c for c in ("cat", "dog", "bird") for _ in range(6)]
    x = (torch.rand(len(concepts), 3, 16, 16, generator=g) * 255).round() / 255
    write_dataset(tmp_path / "ds", x, [f"a photo of a {c}" for c in concepts], concepts=concepts)
    return tmp_path / "ds"


def test_poison_dirty_label(tiny_ds, tmp_path, capsys):
    out = tmp_path / "p"
    rc = main(["poison", str(tiny_ds), "--kind", "dirty-label", "--concepts", "cat:dog", "--n-poison", "3",
               "--out", str(out)])
    assert rc == 0
    ds = read_dataset(out)
    mask = ds.poisoned_mask()
    assert mask.sum() == 3
    src = ds.column("source_concept")
    assert all(ds.concepts[i] == "cat" and src[i] == "dog" and ds.captions[i] == "a photo of a cat"
               for i in np.flatnonzero(mask))
    for f in ("run.json", "poison.jsonl", "summary.csv", "poison_grid.png"):
        assert (out / f).exists(), f
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert rows == [{"target": "cat", "source": "dog", "n_poison": "3", "kind": "dirty-label"}]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n_poisoned"] == 3


def test_poison_concept_swap_and_none(tiny_ds, tmp_path):
    assert main(["poison", str(tiny_ds), "--kind", "concept-swap", "--concepts", "cat", "dog", "bird",
                 "--fraction", "0.5", "--out", str(tmp_path / "cs")]) == 0
    assert read_dataset(tmp_path / "cs").poisoned_mask().sum() == 9
    assert main(["poison", str(tiny_ds), "--kind", "none", "--out", str(tmp_path / "copy")]) == 0
    assert read_dataset(tmp_path / "copy").poisoned_mask().sum() == 0


@pytest.mark.parametrize("argv,msg", [
    (["--kind", "dirty-label", "--concepts", "cat:zebra", "--n-poison", "1"], "unknown concept 'zebra'"),
    (["--kind", "dirty-label", "--concepts", "cat:dog"], "exactly one of --fraction and --n-poison"),
    (["--kind", "dirty-label", "--concepts", "catdog", "--n-poison", "1"], "TARGET:SOURCE"),
    (["--kind", "concept-swap", "--n-poison", "1"], "needs --concepts"),
    (["--kind", "dirty-label", "--concepts", "cat:dog", "--n-poison", "99"], "only 6 candidate"),
])
def test_poison_bad_input_one_line(tiny_ds, tmp_path, capsys, argv, msg):
    rc = main(["poison", str(tiny_ds), *argv, "--out", str(tmp_path / "x")])
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]  # after any progress bar
    assert rc == 2 and last.startswith("latentguard: error:") and msg in last


def test_poison_refuses_nonempty_out(tiny_ds, tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("keep")
    assert main(["poison", str(tiny_ds), "--kind", "none", "--out", str(tmp_path / "x")]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_audit_missing_dataset(tmp_path, capsys):
    assert main(["audit", "alignment", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_audit_alignment_finds_dirty_label(tmp_path, capsys):
    """Real zoo:embed: dirty-label pairs rank first (measured precision@P = 1.0 on 100 pairs, 10 poisoned)."""
    from latentguard.testing import require_data, require_zoo
    from latentguard.io.datasets import fashion_mnist

    require_zoo("embed")
    require_data(fashion_mnist, "test")
    p = tmp_path / "p"
    assert main(["poison", "fashion-mnist:100:test", "--kind", "dirty-label", "--k", "2", "--fraction", "0.5",
                 "--out", str(p)]) == 0
    a = tmp_path / "a"
    assert main(["audit", "alignment", str(p), "--out", str(a), "--device", "cpu"]) == 0
    s = json.loads((a / "summary.json").read_text())
    assert s["detection"]["n_poisoned"] == 10
    assert s["detection"]["precision_at_p_contribution"] >= 0.9
    assert 0 <= s["feature"] <= 1 and s["method"] == "exact"
    cal = s["similarity_calibration"]  # zoo:embed's own calibration, used without being asked for
    assert "ad_calibration.json" in cal["source"] and (cal["offset"], cal["scale"]) != (0.2, 4.0)
    for f in ("pairs.jsonl", "pairs.csv", "concepts.csv", "ranking.csv", "scores.png", "concepts.png", "run.json"):
        assert (a / f).exists(), f
    concepts = list(csv.DictReader(open(a / "concepts.csv")))
    targets = {r["target"] for r in csv.DictReader(open(p / "summary.csv"))}
    assert {concepts[0]["concept"], concepts[1]["concept"]} == targets  # poisoned concepts rank first
    # sampled method runs and reports an interval
    assert main(["audit", "alignment", str(p), "--out", str(tmp_path / "b"), "--method", "sampled",
                 "--num-samples", "2000"]) == 0
    sb = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert sb["structure_ci"][0] <= s["structure"] <= sb["structure_ci"][1]


@pytest.mark.slow  # ~40 s on a loaded core (model loading); latent_shift itself is tested in test_poisons.py
def test_poison_nightshade_cli(tiny_ds, tmp_path):
    from latentguard.testing import require_zoo

    require_zoo("vae-a")
    out = tmp_path / "ns"
    assert main(["poison", str(tiny_ds), "--kind", "nightshade", "--concepts", "cat:dog", "--n-poison", "2",
                 "--steps", "3", "--eps", "4/255", "--out", str(out), "--device", "cpu"]) == 0
    ds = read_dataset(out)
    orig = read_dataset(tiny_ds)
    x, x0 = ds.load_images(), orig.load_images()
    assert (x - x0).abs().max() <= 4 / 255 + 1e-6
    assert ds.captions == orig.captions
    rows = [json.loads(line) for line in open(out / "poison.jsonl")]
    assert len(rows) == 2 and all(r["latent_target"] == "dog" and r["dist_after"] < r["dist_before"] for r in rows)


def test_implosion_bad_config(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[poison]\nks = [0, 1]\nfraction = 2.0\n")
    assert main(["implosion", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "fraction" in capsys.readouterr().err
    cfg.write_text("[poisson]\nks = [0]\n")
    assert main(["implosion", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "unknown section [poisson]" in capsys.readouterr().err
