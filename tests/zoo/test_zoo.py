"""The bundled zoo: every model loads offline through the public loaders and does its job; recipes run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latentguard.io.datasets import member_split
from latentguard.models import registry
from latentguard.testing import require_data, require_zoo
from latentguard.zoo.train.recipes import RECIPES, train


@pytest.mark.parametrize("name", ["vae-a", "vae-b"])
def test_zoo_vae_loads_and_reconstructs_held_out_photos(name, samples64):
    require_zoo(name)
    from latentguard.models import load_vae

    vae = load_vae(f"zoo:{name}")
    assert vae.info.latent_channels == 4 and vae.info.downsample_factor == 4
    mean, logvar = vae.encode(samples64)
    assert mean.shape == (4, 4, 16, 16) and logvar.shape == mean.shape
    rec = vae.reconstruct(samples64)
    psnr = (10 * torch.log10(1 / ((rec - samples64) ** 2).flatten(1).mean(1))).mean().item()
    assert psnr > 20.0  # trained weights (cards report the full figure); random weights give < 12 dB


def test_zoo_vae_a_meets_the_quality_targets_on_held_out_photos(vae_a):
    """The issue's targets on the 8 held-out photos: >= 24 dB and SSIM >= 0.75 on full 256 px images and on
    64 px crops. Measured (card): 25.13 / 0.751 and 26.55 / 0.765; the 64-px-trained stage 1 alone gave 19.4 dB
    at 256 px. The SSIM bound leaves 0.003 for float differences between machines."""
    from latentguard.samples import sample_crops, sample_images
    from latentguard.ops.metrics import psnr, ssim

    x = sample_images(256)
    rec = torch.cat([vae_a.reconstruct(x[i : i + 4]) for i in range(0, len(x), 4)])
    assert float(psnr(rec, x).mean()) > 24.0 and float(ssim(rec, x).mean()) > 0.747
    c = sample_crops(64, per_image=4, seed=0)  # benchmarks/bench_zoo.py's crops
    rc = torch.cat([vae_a.reconstruct(c[i : i + 16]) for i in range(0, len(c), 16)])
    assert float(psnr(rc, c).mean()) > 24.0 and float(ssim(rc, c).mean()) > 0.75


def test_zoo_vae_runs_at_other_resolutions(vae_a):
    x = torch.rand(1, 3, 40, 72)
    assert vae_a.reconstruct(x).shape == x.shape


def test_zoo_img2img_on_bundled_photo(t2i_pipe, samples64):
    out = t2i_pipe("a photo of a dress", image=samples64[:1], strength=0.5, num_inference_steps=4,
                   guidance_scale=3.0, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()
    again = t2i_pipe("a photo of a dress", image=samples64[:1], strength=0.5, num_inference_steps=4,
                     guidance_scale=3.0, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert torch.allclose(out, again)


def test_zoo_members_has_declared_splits():
    require_zoo("t2i-members")
    split = json.loads((registry.model_dir("t2i-members") / "splits.json").read_text())
    assert len(split["members"]) == 500 and len(split["nonmembers"]) == 500
    assert not set(split["members"]) & set(split["nonmembers"])
    from latentguard.models import load_pipeline

    pipe = load_pipeline("zoo:t2i-members", kind="text2img")
    img = pipe("a photo of a bag", height=32, width=32, num_inference_steps=3,
               generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert img.shape == (1, 3, 32, 32)


def test_zoo_embedder_zero_shot_beats_chance():
    require_zoo("embed")
    from latentguard.models import load_embedder
    from latentguard.io import datasets

    imgs, labels = require_data(datasets.fashion_mnist, "test")
    emb = load_embedder("zoo:embed")
    x = torch.from_numpy(datasets.fashion_to_rgb32(imgs[:300]))
    t = emb.embed_texts([f"a photo of a {c}" for c in datasets.FASHION_CLASSES])
    acc = ((emb.embed_images(x) @ t.t()).argmax(1).numpy() == labels[:300]).mean()
    assert acc > 0.5  # chance is 0.1


def test_member_split_is_deterministic_and_balanced():
    from latentguard.io import datasets

    a, b = require_data(member_split), member_split()
    assert a == b
    _, labels = datasets.fashion_mnist("train")
    assert sorted(int((labels[a["members"]] == c).sum()) for c in range(10)) == [50] * 10


def test_zoo_cli_list(capsys):
    from latentguard.cli import main

    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("vae-a", "vae-b", "t2i", "t2i-members", "embed"):
        assert f"zoo:{name}" in out


# the two photo-VAE recipes take 35-45 s each on 2 cores: slow (CI runs them); embed and t2i-members stay default
@pytest.mark.parametrize("name", [pytest.param("vae-a", marks=pytest.mark.slow), pytest.param("vae-b", marks=pytest.mark.slow),
                                  "embed", "t2i-members", "t2i-members-ft"])
def test_recipe_smoke(name, tmp_path, monkeypatch):
    """Each recipe runs a few steps and writes a loadable folder."""
    from dataclasses import replace

    from latentguard.io import datasets

    if "finetune" in RECIPES[name].extra:  # a smaller anchor set and crops keep the smoke run short
        r = RECIPES[name]
        ft = {**r.extra["finetune"], "anchor_images": 64, "sizes": [[64, 2], [128, 1]], "photos": "nature:even"}
        monkeypatch.setitem(RECIPES, name, replace(r, extra={**r.extra, "finetune": ft}))

    try:
        if name.startswith("t2i-members"):
            require_zoo("vae-a", *([RECIPES[name].extra["init"]] if "init" in RECIPES[name].extra else []))
            datasets.fashion_mnist("train")
        elif name == "embed":
            datasets.fashion_mnist("train")
        else:
            datasets.nature_photos(RECIPES[name].extra["photos"].split("+")[0].split(":")[1])
            if "finetune" in RECIPES[name].extra:
                datasets.fashion_mnist("train")
    except datasets.DataUnavailableError as exc:
        pytest.skip(str(exc))
    out = train(name, tmp_path / name, "cpu", steps=2, zoo_dir=registry.weights_root(), finetune_steps=2)
    stage1 = out / "stage1" if "finetune" in RECIPES[name].extra else out
    log = [json.loads(line) for line in (stage1 / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in log)
    if stage1 != out:  # the multi-size fine-tune ran from stage 1 and logged its anchor terms
        ft = [json.loads(line) for line in (out / "finetune_log.jsonl").read_text().splitlines()]
        assert ft[-1]["step"] == 2 and ft[-1]["anchor_latent"] >= 0 and "psnr128" in ft[-1]
        assert json.loads((out / "recipe.json").read_text())["finetune_steps_done"] == 2
    if "init" in RECIPES[name].extra:  # a fine-tune: two steps from zoo:t2i's UNet stay close to it, not equal
        from safetensors.torch import load_file

        a = load_file(registry.weights_root() / RECIPES[name].extra["init"] / "unet" / "diffusion_pytorch_model.safetensors")
        b = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
        diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
        assert a.keys() == b.keys() and 0 < diff < 0.05
    if RECIPES[name].kind == "vae":
        from latentguard.models import load_vae

        assert load_vae(str(out)).encode(torch.rand(1, 3, 16, 16))[0].shape == (1, 4, 4, 4)


def test_zoo_export_t2i_is_a_standard_diffusers_pipeline(tmp_path):
    """`zoo export` writes a folder that diffusers' own from_pretrained loads and runs with a prompt."""
    require_zoo("t2i", "vae-a")
    from diffusers import StableDiffusionPipeline

    from latentguard.cli import main

    assert main(["zoo", "export", "t2i", str(tmp_path / "t2i")]) == 0
    assert (tmp_path / "t2i" / "run.json").exists()
    pipe = StableDiffusionPipeline.from_pretrained(str(tmp_path / "t2i"), safety_checker=None,
                                                   requires_safety_checker=False)
    img = pipe("a photo of a sneaker", height=32, width=32, num_inference_steps=3,
               generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert img.shape == (1, 3, 32, 32)


def test_zoo_train_init_is_checked_before_anything_is_written(tmp_path, capsys):
    """`--init` must name a stage-1 VAE folder of a recipe with a fine-tune stage: one-line error, no output."""
    from latentguard.cli import main

    out = tmp_path / "out"
    assert main(["zoo", "train", "vae-a", "--init", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "not a VAE folder" in capsys.readouterr().err and not out.exists()
    (tmp_path / "stage1").mkdir()
    (tmp_path / "stage1" / "config.json").write_text("{}")
    assert main(["zoo", "train", "vae-b", "--init", str(tmp_path / "stage1"), "--out", str(out)]) == 2
    assert "--init applies to recipes with a fine-tune stage; 'vae-b' has none" in capsys.readouterr().err
    assert not out.exists()


def test_stage2_photo_sources(tmp_path, monkeypatch):
    """vae-a's stage 2 trains on the 12 nature photos plus the 15 lomiri photos; a missing package is named."""
    from latentguard.io import datasets

    assert RECIPES["vae-a"].extra["finetune"]["photos"] == "nature:all+lomiri"
    photos = require_data(datasets.photos, "nature:all+lomiri")
    assert len(photos) == 27 and all(p.dtype == np.uint8 and p.ndim == 3 and min(p.shape[:2]) >= 1000 for p in photos)
    monkeypatch.setattr(datasets, "LOMIRI_DIR", tmp_path)
    with pytest.raises(datasets.DataUnavailableError, match="lomiri-wallpapers-16.04"):
        datasets.lomiri_photos()
    with pytest.raises(ValueError, match="unknown photo source"):
        datasets.photos("nature:all+nope")


def test_sample_crops_are_seeded_crops_of_the_held_out_photos():
    from latentguard.samples import sample_crops, sample_images

    a, b = sample_crops(64, per_image=2, seed=3), sample_crops(64, per_image=2, seed=3)
    assert a.shape == (2 * len(sample_images(256)), 3, 64, 64) and torch.equal(a, b)
    assert not torch.equal(a, sample_crops(64, per_image=2, seed=4))
    full = sample_images(256)[0]  # every crop is a window of its photo
    win = full.unfold(1, 64, 1).unfold(2, 64, 1)  # [3, 193, 193, 64, 64]
    assert any(torch.equal(win[:, y, x], a[0]) for y in range(193) for x in range(193))
    with pytest.raises(ValueError, match="size"):
        sample_crops(300)
