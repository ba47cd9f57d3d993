"""Implosion experiment: config parsing/validation, fine-tuning step, curves; a tiny end-to-end run (slow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from latentguard.core.errors import ConfigError
from latentguard.poison.config import ImplosionConfig
from latentguard.poison.implosion import finetune_unet, summarize, write_curves

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_parses():
    cfg = ImplosionConfig.from_toml(ROOT / "examples" / "implosion.toml")
    assert cfg.ks == (0, 1, 2, 4) and cfg.kind == "dirty-label" and cfg.n_images == 2000
    assert ImplosionConfig.from_toml(ROOT / "examples" / "implosion.toml", {"seed": 7}).seeds == (7,)


@pytest.mark.parametrize("kw,name", [
    (dict(ks=(0, 11)), "ks"), (dict(ks=(1, 1)), "ks"), (dict(fraction=0.0), "fraction"), (dict(kind="x"), "kind"),
    (dict(guidance_scale=0.5), "guidance_scale"), (dict(seeds=()), "seeds"), (dict(grid_images=99), "grid_images"),
    (dict(eps=2.0), "eps"), (dict(n_images=5), "n_images"),
])
def test_config_validation(kw, name):
    with pytest.raises(ValueError, match=name):
        ImplosionConfig(**kw)


def test_toml_errors(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[finetune]\nsteps = 10\nfoo = 1\n")
    with pytest.raises(ValueError, match="unknown key 'foo' in \\[finetune\\]"):
        ImplosionConfig.from_toml(p)
    p.write_text("[finetune\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        ImplosionConfig.from_toml(p)
    with pytest.raises(FileNotFoundError):
        ImplosionConfig.from_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize("text, where", [
    ("[finetune]\nsteps = \"200\"\n", "finetune.steps"),
    ("[poison]\nks = [1, 2.5]\n", "poison.ks.1"),
    ("[run]\nseeds = 3\n", "run.seeds"),
    ("[evaluation]\nembedder = \"zoo:embed\"\n", "unknown section [evaluation]"),
    ("[poison]\nkind = \"nightshadee\"\n", "kind must be dirty-label|nightshade"),
])
def test_toml_types_and_values_fail_at_load_time_naming_the_key(tmp_path, text, where):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        ImplosionConfig.from_toml(p)
    assert where in str(exc.value) and str(p) in str(exc.value) and "\n" not in str(exc.value)


def test_cli_bad_config_is_one_line_exit_2(tmp_path, capsys):
    from latentguard.cli import main

    p = tmp_path / "c.toml"
    p.write_text("[finetune]\nstpes = 10\n")
    assert main(["implosion", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'stpes' in [finetune]" in err[0]
    assert not (tmp_path / "o").exists()


def test_finetune_reduces_loss_on_fixed_batch():
    from diffusers import DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=4, norm_num_groups=8)
    lat = torch.randn(8, 4, 8, 8)
    cond = torch.randn(3, 5, 16)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    cfg = ImplosionConfig(steps=60, batch_size=8, lr=1e-3)
    losses = finetune_unet(unet, lat, cond, torch.tensor([1, 2] * 4), 0, sched, cfg, seed=0, progress=False)
    assert len(losses) == 60 and not unet.training
    # measured: first-10 mean 0.79 -> last-10 mean 0.38 (ratio 0.49) on this seed
    assert sum(losses[-10:]) < 0.75 * sum(losses[:10]), (losses[:10], losses[-10:])


def test_summarize_and_curves(tmp_path):
    cfg = ImplosionConfig(ks=(0, 2), seeds=(0, 1))
    rows = [
        {"k": None, "seed": 0, "acc_all": 1.0}, {"k": None, "seed": 1, "acc_all": 0.9},
        {"k": 0, "seed": 0, "ad": 0.1, "acc_clean": 1.0, "acc_poisoned": math.nan},
        {"k": 0, "seed": 1, "ad": 0.2, "acc_clean": 0.8, "acc_poisoned": math.nan},
        {"k": 2, "seed": 0, "ad": 0.3, "acc_clean": 0.7, "acc_poisoned": 0.5, "asr": 0.5},
    ]
    s = summarize(rows, cfg)
    c0, c2 = s["curves"]
    assert c0["k"] == 0 and abs(c0["ad"]["mean"] - 0.15) < 1e-12 and abs(c0["ad"]["std"] - math.sqrt(0.005)) < 1e-12
    assert c0["acc_poisoned"]["n"] == 0 and c2["n_seeds"] == 1 and c2["asr"]["mean"] == 0.5
    assert abs(s["base"]["acc_all"]["mean"] - 0.95) < 1e-12
    write_curves(tmp_path, s)
    lines = (tmp_path / "curves.csv").read_text().splitlines()
    assert lines[0].startswith("k,n_seeds,ad_mean,ad_std") and len(lines) == 3
    assert (tmp_path / "ad_vs_k.png").exists() and (tmp_path / "alignment_vs_k.png").exists()


@pytest.mark.slow
def test_tiny_end_to_end(tmp_path):
    """Whole pipeline on 100 pairs, 5 steps (minutes on a loaded core): files, AD rises with k, resume."""
    from latentguard.poison.implosion import run_implosion
    from latentguard.testing import require_data, require_zoo
    from latentguard.io.datasets import fashion_mnist

    require_zoo("t2i", "vae-a", "embed")
    require_data(fashion_mnist, "train")
    cfg = ImplosionConfig(n_images=100, ks=(0, 2), steps=5, batch_size=8, images_per_class=2, inference_steps=4,
                          seeds=(0,), grid_images=2)
    s = run_implosion(cfg, tmp_path, device="cpu", progress=False)
    c0, c2 = s["curves"]
    assert c2["ad"]["mean"] > c0["ad"]["mean"] + 0.05  # measured 0.047 -> 0.223
    rows = [json.loads(x) for x in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert {r["key"] for r in rows} == {"base_s0", "k0_s0", "k2_s0"}
    for f in ("curves.csv", "ad_vs_k.png", "alignment_vs_k.png", "summary.json", "run.json", "grids/k2_s0.png"):
        assert (tmp_path / f).exists(), f
    run_implosion(cfg, tmp_path, device="cpu", progress=False)  # resume: nothing recomputed
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 3
