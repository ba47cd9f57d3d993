"""SRL-VAE through HuggingFace accelerate, one CPU process: same result as the plain loop, frozen decoder, outputs."""

from __future__ import annotations

import json

import pytest
import torch

from latentguard.harden import SRLConfig, harden

pytest.importorskip("accelerate")

TINY = dict(steps=3, batch_size=2, crop=16, attack_steps=2, warmup_steps=1, checkpoint_every=2, log_every=1,
            probe_size=2, probe_attack_steps=1, scales=(1.0, 0.5), clean_ratio=0.34)


def test_accelerate_one_cpu_process_matches_plain_loop(tiny_vae_frozen, make_crops, tmp_path, monkeypatch):
    from latentguard.harden import latest_checkpoint
    from latentguard.models import load_vae

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg = SRLConfig(**TINY)
    before = {k: v.clone() for k, v in tiny_vae_frozen.model.state_dict().items()}
    plain = harden(tiny_vae_frozen, make_crops(), cfg, progress=False)
    acc = harden(tiny_vae_frozen, make_crops(), cfg, out_dir=tmp_path / "run", progress=False, accelerate=True)
    assert acc.complete and acc.steps_done == 3
    a, p = acc.vae.model.state_dict(), plain.vae.model.state_dict()
    enc = [k for k in a if k.startswith(("encoder.", "quant_conv."))]
    dec = [k for k in a if k.startswith(("decoder.", "post_quant_conv."))]
    # one process: accelerate does not wrap the module (no DDP), the sampler/noise streams are the plain ones
    assert all(torch.equal(a[k], p[k]) for k in enc)
    assert any(not torch.equal(a[k], before[k]) for k in enc)  # it did train
    assert all(torch.equal(a[k], before[k]) for k in dec)  # decoder bit-identical
    assert [r["loss"] for r in acc.history] == [r["loss"] for r in plain.history]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in acc.history)
    assert any(r["clean"] for r in acc.history) and any(not r["clean"] for r in acc.history)
    # outputs: the folder loads and encodes like the returned VAE; run.json records the accelerate run
    v = load_vae(str(tmp_path / "run"))
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(v.encode(x)[0], acc.vae.encode(x)[0])
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert "accelerate" in json.dumps(run)
    assert latest_checkpoint(tmp_path / "run").name == "step-0000003.pt"
    ck = torch.load(latest_checkpoint(tmp_path / "run"), weights_only=True)
    assert len(ck["noise_ranks"]) == 1 and torch.equal(ck["noise_ranks"][0], ck["noise"])
    # the input VAE is not modified
    assert all(torch.equal(val, before[k]) for k, val in tiny_vae_frozen.model.state_dict().items())


def test_accelerate_resume_and_batch_split(tiny_vae_frozen, make_crops, tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg = SRLConfig(**{**TINY, "steps": 4})
    ref = harden(tiny_vae_frozen, make_crops(), cfg, progress=False)

    def crash(step, row):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        harden(tiny_vae_frozen, make_crops(), cfg, out_dir=tmp_path / "run", progress=False, callback=crash, accelerate=True)
    res = harden(tiny_vae_frozen, make_crops(), cfg, out_dir=tmp_path / "run", resume=True, progress=False, accelerate=True)
    a, b = ref.vae.model.state_dict(), res.vae.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_accelerate_flag_and_launcher_guard(tiny_vae_frozen, image_folder, tmp_path, monkeypatch, capsys):
    from latentguard.cli import main

    vae_dir = tmp_path / "vae"
    tiny_vae_frozen.model.save_pretrained(str(vae_dir))
    base = ["harden", "--vae", str(vae_dir), "--data", str(image_folder), "--device", "cpu", "--no-progress",
            "--steps", "2", "--batch-size", "2", "--crop", "16", "--attack-steps", "1", "--probe-size", "0",
            "--scales", "1,0.5"]
    monkeypatch.setenv("WORLD_SIZE", "2")  # as if started by `accelerate launch --num_processes 2`
    assert main(base + ["--out", str(tmp_path / "guard")]) == 2
    assert "--accelerate" in capsys.readouterr().err
    monkeypatch.delenv("WORLD_SIZE")
    assert main(base + ["--out", str(tmp_path / "run"), "--accelerate"]) == 0
    assert (tmp_path / "run" / "vae" / "config.json").is_file()
