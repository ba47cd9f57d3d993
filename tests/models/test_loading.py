"""Model loading: zoo, local folders, hub ids offline, pickle refusal, the posterior interface."""

from __future__ import annotations

import time

import pytest
import torch

from latentguard.models import (
    LatentVAE,
    ModelLoadError,
    UnsafeWeightsError,
    crop_back,
    load_vae,
    pad_to_multiple,
    resolve_spec,
)


@pytest.fixture()
def tiny_folder(tmp_path, tiny_vae_factory):
    m = tiny_vae_factory(0).model  # a fresh bare AutoencoderKL (tests/conftest.py)
    m.save_pretrained(tmp_path / "vae", safe_serialization=True)
    return tmp_path / "vae", m


def test_local_folder_posterior_matches_diffusers(tiny_folder):
    folder, ref = tiny_folder
    vae = load_vae(str(folder))
    assert isinstance(vae, LatentVAE) and vae.info.downsample_factor == 2
    x = torch.rand(2, 3, 16, 16)
    mean, logvar = vae.encode(x)
    post = ref.eval().encode(x * 2 - 1).latent_dist
    assert torch.allclose(mean, post.mean, atol=1e-5) and torch.allclose(logvar, post.logvar, atol=1e-5)
    y = vae.decode(mean)
    assert torch.allclose(y, (ref.decode(post.mean).sample + 1) / 2, atol=1e-5)
    assert not any(p.requires_grad for p in vae.parameters())


def test_posterior_is_diffusers_latent_dist(tiny_folder):
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    vae = load_vae(str(tiny_folder[0]))
    x = torch.rand(2, 3, 16, 16)
    post = vae.posterior(x)
    assert isinstance(post, DiagonalGaussianDistribution)
    ref = vae.model.encode(x * 2 - 1).latent_dist
    mean, logvar = vae.encode(x)
    assert torch.equal(mean, ref.mean) and torch.equal(logvar, ref.logvar)
    # sampling: the same numbers as diffusers' sample() for the same generator
    z = vae.sample(mean, logvar, torch.Generator().manual_seed(3))
    assert torch.equal(z, ref.sample(torch.Generator().manual_seed(3)))
    assert torch.equal(vae.decode(mean), (vae.model.decode(mean).sample + 1) / 2)


def test_pipeline_folder_uses_vae_subfolder(tiny_folder, tmp_path):
    folder, _ = tiny_folder
    pipe_dir = tmp_path / "pipe"
    pipe_dir.mkdir()
    folder.rename(pipe_dir / "vae")
    assert load_vae(str(pipe_dir)).info.latent_channels == 4


def test_pickle_refused_by_default(tiny_folder, tmp_path):
    folder, ref = tiny_folder
    pk = tmp_path / "pk"
    pk.mkdir()
    (pk / "config.json").write_text((folder / "config.json").read_text())
    torch.save(ref.state_dict(), pk / "diffusion_pytorch_model.bin")
    with pytest.raises(UnsafeWeightsError, match="allow-pickle"):
        load_vae(str(pk))
    vae = load_vae(str(pk), allow_pickle=True)  # explicit opt-in, read with weights_only=True
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(vae.encode(x)[0], ref.eval().encode(x * 2 - 1).latent_dist.mean, atol=1e-5)


def test_pickle_with_code_is_rejected_even_when_allowed(tiny_folder, tmp_path):
    folder, _ = tiny_folder
    pk = tmp_path / "evil"
    pk.mkdir()
    (pk / "config.json").write_text((folder / "config.json").read_text())

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    torch.save({"x": Evil()}, pk / "diffusion_pytorch_model.bin")
    with pytest.raises(Exception):  # weights_only=True refuses arbitrary objects
        load_vae(str(pk), allow_pickle=True)


def test_hub_offline_fails_fast_with_help(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    t = time.time()
    with pytest.raises(ModelLoadError) as ei:
        load_vae("stabilityai/sd-vae-ft-mse")
    assert time.time() - t < 20
    msg = str(ei.value)
    assert "huggingface-cli download stabilityai/sd-vae-ft-mse" in msg and "zoo:" in msg


def test_spec_errors():
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_spec("./no/such/folder")
    with pytest.raises(ValueError, match="unknown zoo model"):
        resolve_spec("zoo:nope")
    with pytest.raises(ModelLoadError):
        resolve_spec("")
    assert resolve_spec("stable-diffusion-v1-5/stable-diffusion-v1-5") == ("hub", "stable-diffusion-v1-5/stable-diffusion-v1-5")


def test_bad_image_shapes(tiny_folder):
    vae = load_vae(str(tiny_folder[0]))
    with pytest.raises(ValueError, match="multiple"):
        vae.encode(torch.rand(1, 3, 9, 8))
    with pytest.raises(ValueError, match=r"\[N,3,H,W\]"):
        vae.encode(torch.rand(3, 8, 8))


def test_pad_and_crop_back():
    x = torch.rand(1, 3, 13, 22)
    y, size = pad_to_multiple(x, 8)
    assert y.shape[-2:] == (16, 24) and torch.equal(crop_back(y, size), x)


def test_clip_embedder_spec_fails_clearly_without_local_weights(tmp_path):
    from latentguard.models import load_embedder

    with pytest.raises(ModelLoadError, match="could not load a CLIP model from .*weights must be local"):
        load_embedder(f"clip:{tmp_path / 'no-such-clip'}")
