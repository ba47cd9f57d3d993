"""The KL is diffusers' own; ZooEmbedder saves / loads through diffusers and still reads the bundled
zoo:embed folder; the registry and errors import without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from safetensors.torch import save_file

from latentguard.models import ModelLoadError, kl_standard_normal, load_embedder
from latentguard.models.embedders import ZooEmbedder
from latentguard.testing import require_zoo


def test_kl_standard_normal_is_the_per_sample_sum():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(3, 4, 5, 5, generator=g), torch.randn(3, 4, 5, 5, generator=g) - 2
    by_hand = (0.5 * (mean**2 + logvar.exp() - 1 - logvar)).flatten(1).sum(1)
    assert torch.equal(kl_standard_normal(mean, logvar), by_hand)
    ref = DiagonalGaussianDistribution(torch.cat([mean, logvar], 1)).kl()
    assert torch.equal(kl_standard_normal(mean, logvar), ref)
    assert kl_standard_normal(mean.half(), logvar.half()).dtype == torch.float32
    with pytest.raises(ValueError, match=r"\[N,C,h,w\]"):
        kl_standard_normal(mean.flatten(1), logvar.flatten(1))


def test_zoo_embedder_round_trips_through_diffusers(tmp_path):
    torch.manual_seed(0)
    model = ZooEmbedder(dim=16, width=8, image_size=16).eval()
    model.save_pretrained(tmp_path / "emb")
    assert (tmp_path / "emb" / "diffusion_pytorch_model.safetensors").is_file()
    cfg = json.loads((tmp_path / "emb" / "config.json").read_text())
    assert cfg["_class_name"] == "ZooEmbedder" and (cfg["dim"], cfg["width"], cfg["image_size"]) == (16, 8, 16)
    again = load_embedder(str(tmp_path / "emb"))
    assert isinstance(again, ZooEmbedder) and not again.training
    x = torch.rand(2, 3, 24, 24)
    assert torch.equal(again.embed_images(x), model.embed_images(x))
    feats = torch.randn(2, 384)
    assert torch.equal(again.embed_text_features(feats), model.embed_text_features(feats))


def test_zoo_embedder_reads_the_legacy_folder_format(tmp_path):
    """The bundled zoo:embed folder: config.json with a "class" key + model.safetensors (not rewritten)."""
    torch.manual_seed(1)
    model = ZooEmbedder(dim=16, width=8, image_size=16).eval()
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"class": "ZooEmbedder", "dim": 16, "width": 8, "image_size": 16}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    again = ZooEmbedder.from_pretrained(folder)
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(again.embed_images(x), model.embed_images(x))
    (folder / "config.json").write_text(json.dumps({"class": "Other", "dim": 16, "width": 8, "image_size": 16}))
    with pytest.raises(ModelLoadError, match="does not hold a ZooEmbedder"):
        ZooEmbedder.from_pretrained(folder)


def test_bundled_zoo_embed_folder_is_the_legacy_format():
    require_zoo("embed")
    from latentguard.models.registry import model_dir

    folder = model_dir("embed")
    assert (folder / "model.safetensors").is_file() and not (folder / "diffusion_pytorch_model.safetensors").exists()
    emb = load_embedder("zoo:embed")
    assert isinstance(emb, ZooEmbedder) and emb.config.dim == 256 and emb.config["image_size"] == 32


def test_registry_and_errors_import_without_torch():
    code = ("import sys; import latentguard.models.registry, latentguard.models.errors, latentguard.zoo.cli; "
            "print('torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"
