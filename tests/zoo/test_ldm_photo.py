"""zoo:ldm-photo, the bundled photo editor: it loads offline through the public loader in all three pipelines,
its img2img keeps a held-out photo, and an edit tells a protected photo from a noisy one.

Bounds are the figures measured on the bundled weights (see the comments), with margin."""

from __future__ import annotations

import pytest
import torch

from latentguard.ops.metrics import psnr
from latentguard.testing import require_zoo

STRENGTH, STEPS, SIZE = 0.3, 10, 128  # 3 DDIM denoising steps: cheap enough for the default suite


@pytest.fixture(scope="module")
def photos():
    from latentguard.samples import sample_images

    return sample_images(SIZE)[[0, 2]]  # astronaut, coffee


@pytest.fixture(scope="module")
def i2i():
    require_zoo("ldm-photo", "vae-a")
    from latentguard.models import load_pipeline

    return load_pipeline("zoo:ldm-photo", kind="img2img")


def _edit(pipe, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return pipe([""] * len(x), image=x, strength=STRENGTH, num_inference_steps=STEPS, guidance_scale=1.0,
                    generator=torch.Generator().manual_seed(0), output_type="pt").images.clamp(0, 1)


def test_ldm_photo_loads_as_every_pipeline_offline():
    require_zoo("ldm-photo", "vae-a")
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline

    from latentguard.models import load_pipeline, load_vae
    from latentguard.models.errors import ModelLoadError

    for kind, cls in (("img2img", StableDiffusionImg2ImgPipeline), ("inpaint", StableDiffusionInpaintPipeline),
                      ("text2img", StableDiffusionPipeline)):
        pipe = load_pipeline("zoo:ldm-photo", kind=kind)
        assert isinstance(pipe, cls) and pipe.unet.config.in_channels == 4
    # its VAE is zoo:vae-a, and load_vae resolves the pipeline spec to it
    assert load_vae("zoo:ldm-photo").model.config.latent_channels == 4
    with pytest.raises(ModelLoadError, match="inpainting"):
        load_pipeline("zoo:t2i", kind="inpaint")  # the Fashion-MNIST model stays img2img / text2img only


def test_img2img_keeps_a_held_out_photo(i2i, photos):
    e = _edit(i2i, photos)
    p = psnr(e, photos)
    # measured on the bundled weights: 18.26 / 20.68 dB; zoo:t2i's edit of the same photos: 15.70 / 15.87 dB
    assert float(p.min()) > 17.0


def test_edit_of_a_pca_minus_photo_moves_away_from_the_clean_edit_more_than_noise(i2i, photos):
    """Objective 2 (PCA-'s own): d(f(x + delta), f(x)) must exceed the same for random noise of equal budget."""
    from latentguard.models import load_vae
    from latentguard.protect import get

    vae = load_vae("zoo:vae-a")
    prot = get("pca-", vae=vae, eps=16 / 255, steps=10, seed=0)(photos)
    noise = get("random-noise", vae=vae, eps=16 / 255, seed=0)(photos)
    clean_edit = _edit(i2i, photos)
    d_prot = psnr(_edit(i2i, prot), clean_edit)
    d_noise = psnr(_edit(i2i, noise), clean_edit)
    # measured: protected 27.14 / 25.12 dB from the clean edit, noise 39.52 / 41.04 dB (gaps 12.4 / 15.9 dB)
    assert float((d_noise - d_prot).min()) > 8.0


@pytest.mark.slow  # five tiny trainings: ~20-30 s on 2 cores (the other recipe smokes are slow too)
def test_recipe_resume_continues_exactly_and_stage2_starts_from_stage1(tmp_path):
    """A run stopped at a checkpoint and resumed from its state.pt ends with the weights of the run never
    stopped; stage 2 (--init) starts from the stage-1 UNet; the latent bank cache gives the same crops."""
    import dataclasses

    from safetensors.torch import load_file

    from latentguard.zoo.train import ldm_photo as L

    tiny = dataclasses.replace(L.RECIPE, photos="sklearn", bank_small=8, bank_big=2, batch_size=2, big_batch=1,
                               steps=4, warmup=1, checkpoint_every=2, stop_at=None, threads=1)
    cache = tmp_path / "bank.pt"
    L.train(tmp_path / "whole", tiny, bank_cache=cache)
    L.train(tmp_path / "cut", tiny, stop_at=2, bank_cache=cache)
    L.train(tmp_path / "cut", tiny, resume=True, bank_cache=cache)
    a = load_file(tmp_path / "whole" / "unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "cut" / "unet" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="state.pt"):
        L.train(tmp_path / "none", tiny, resume=True, bank_cache=cache)
    low = dataclasses.replace(tiny, t_low=10, t_low_frac=0.5, steps=2, seed=9)
    L.train(tmp_path / "s2", low, init=tmp_path / "whole", bank_cache=cache)
    c = load_file(tmp_path / "s2" / "unet" / "diffusion_pytorch_model.safetensors")
    # trained on from stage 1's weights: close to them, not equal
    k = next(iter(a))
    assert not torch.equal(a[k], c[k]) and float((a[k].float() - c[k].float()).abs().max()) < 0.05
    with pytest.raises(ValueError, match="not an ldm-photo folder"):
        L.train(tmp_path / "bad", tiny, init=tmp_path, bank_cache=cache)
