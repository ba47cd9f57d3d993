"""Whole CLI runs: `audit pullback` on a tiny local VAE folder; `audit membership` on the zoo target."""

from __future__ import annotations

import csv
import json

import numpy as np
import torch

from latentguard.cli import build_parser, main
from latentguard.testing import require_zoo


def test_audit_parser_shared_and_subcommands():
    parser = build_parser()
    args = parser.parse_args(["audit", "membership", "--model", "zoo:t2i-members", "--out", "x"])
    assert args.attacks == "loss,pia,secmi,sima" and args.mask == "pullback"
    args = parser.parse_args(["audit", "pullback", "--vae", "zoo:vae-a", "a.png", "--out", "x"])
    assert args.images == ["a.png"] and args.top_k == 20


def test_audit_pullback_cli(tmp_path, tiny_vae):
    from latentguard.io import save_image

    vae_dir = tmp_path / "vae"
    tiny_vae.save_pretrained(str(vae_dir))
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        save_image(torch.rand(3, 15, 16, generator=g), imgs / f"im{i}.png")  # 15 rows: padded to 16
    (imgs / "bad.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    rc = main(["audit", "pullback", "--vae", str(vae_dir), str(imgs / "im0.png"), str(imgs / "im1.png"),
               str(imgs / "bad.png"), "--out", str(out), "--top-k", "4", "--probes", "8", "--device", "cpu",
               "--quiet"])
    assert rc == 1  # bad.png failed, the others were measured
    for f in ("run.json", "pullback.jsonl", "pullback.csv", "contrib.npz", "pullback.png", "summary.json"):
        assert (out / f).exists(), f
    rows = list(csv.DictReader(open(out / "pullback.csv")))
    assert len(rows) == 2 and all(np.isfinite(float(r["log_volume"])) for r in rows)
    lines = [json.loads(x) for x in open(out / "pullback.jsonl")]
    assert sum(x["status"] == "error" for x in lines) == 1
    assert np.load(out / "contrib.npz")["im0"].shape == (4, 8, 8)  # f=2 latent of the padded 16x16


def test_audit_membership_bad_input(tmp_path, capsys):
    rc = main(["audit", "membership", "--model", "zoo:t2i-members", "--attacks", "loss,nope",
               "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "attacks" in capsys.readouterr().err


def test_audit_membership_zoo_cli(tmp_path):
    require_zoo("t2i-members", "vae-a")
    out = tmp_path / "out"
    rc = main(["audit", "membership", "--model", "zoo:t2i-members", "--n-members", "12", "--n-nonmembers", "12",
               "--attacks", "loss,sima", "--timesteps", "10,50", "--top-k", "2", "--oversample", "2",
               "--power-iters", "0", "--probes", "4", "--out", str(out), "--device", "cpu", "--quiet"])
    assert rc == 0
    summ = json.loads((out / "summary.json").read_text())
    for a in ("loss", "sima"):
        for mk in ("none", "pullback", "random"):
            for proto in ("paper", "honest"):
                r = summ["attacks"][a][mk][proto]
                assert 0 <= r["auroc"] <= 1 and r["timestep"] in (10, 50)
                assert "tpr_at_0.1pct_fpr" in r
    assert summ["n_members"] == 12 and "quartiles" in summ["distortion"]
    for f in ("run.json", "items.jsonl", "summary.csv", "roc.png", "auroc_vs_timestep.png", "distortion.png",
              "index.html"):
        assert (out / f).exists(), f
    assert len((out / "items.jsonl").read_text().splitlines()) == 24
