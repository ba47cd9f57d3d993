"""Edits: determinism under seeds, batch independence, declared behaviour, unavailability reported."""

from __future__ import annotations

import pytest
import torch

from latentguard.evaluate import edits as E
from latentguard.ops.metrics import psnr
from latentguard.testing import require_zoo


@pytest.fixture(scope="module")
def imgs(samples64):
    return samples64[:2].float()


def test_captions_and_labels():
    assert E.caption_for("/x/chelsea.png") == "a photo of a tabby cat"
    assert E.caption_for("my_dog-2.jpg") == "a photo of my dog 2"
    labels = [E.prompt_label(p) for p in E.PCA_PROMPTS]
    assert labels[:2] == ["empty", "caption"] and len(set(labels)) == len(labels)
    assert E.image_seed(0, "a") == E.image_seed(0, "a") != E.image_seed(1, "a")


def test_validation():
    with pytest.raises(ValueError, match="strength"):
        E.Img2Img(None, strength=0.0)
    with pytest.raises(ValueError, match="steps"):
        E.Img2Img(None, steps=0)
    with pytest.raises(ValueError, match="mask fraction"):
        E.center_mask((1, 3, 8, 8), 0)
    m = E.center_mask((1, 3, 8, 8), 0.5)
    assert m.sum() == 16 and m[0, 0, 3, 3] == 1 and m[0, 0, 0, 0] == 0
    with pytest.raises(ValueError, match="edit kind"):
        E.build_edits({"kind": "warp"}, "zoo:t2i", E.ModelCache())


def test_recon_mean_and_sample(vae_a, imgs):
    mean = E.VAEReconstruction(vae_a, sample=False)
    samp = E.VAEReconstruction(vae_a, sample=True)
    a = mean(imgs)
    assert a.shape == imgs.shape and torch.equal(a, mean(imgs))
    s1, s2 = samp(imgs, seeds=[1, 2]), samp(imgs, seeds=[1, 2])
    assert torch.equal(s1, s2)
    s3 = samp(imgs, seeds=[3, 4])
    assert not torch.equal(s1, s3)
    # per-image seeds: image 0 alone with its seed gives the same sample as in the batch
    assert torch.allclose(samp(imgs[:1], seeds=[1]), s1[:1], atol=1e-5)
    before = imgs.clone()
    mean(imgs)
    assert torch.equal(before, imgs)


def test_img2img_seeded_paired_and_strength(t2i_pipe, imgs):
    weak = E.Img2Img(t2i_pipe, prompt="{caption}", strength=0.2, steps=10, guidance=3.0)
    strong = E.Img2Img(t2i_pipe, prompt="{caption}", strength=0.9, steps=10, guidance=3.0)
    caps = [E.caption_for("chelsea"), E.caption_for("coffee")]
    a = weak(imgs, captions=caps, seeds=[5, 6])
    b = weak(imgs, captions=caps, seeds=[5, 6])
    assert torch.equal(a, b) and a.shape == imgs.shape
    assert torch.allclose(weak(imgs[1:], captions=caps[1:], seeds=[6]), a[1:], atol=1e-4)
    c = strong(imgs, captions=caps, seeds=[5, 6])
    # a stronger edit moves the image further from the input
    assert torch.all(psnr(a, imgs) > psnr(c, imgs))
    with pytest.raises(ValueError, match="caption"):
        weak(imgs, seeds=[1, 2])


def test_inpaint_unavailable_on_zoo():
    require_zoo("t2i")
    edits = E.build_edits({"kind": "inpaint", "prompts": ["add some snow"]}, "zoo:t2i", E.ModelCache())
    assert len(edits) == 1 and isinstance(edits[0], E.Unavailable)
    assert "inpaint" in edits[0].reason
    with pytest.raises(E.EditUnavailable):
        edits[0](torch.zeros(1, 3, 8, 8))


def test_build_edits_expands_pca_prompts():
    require_zoo("t2i")
    cache = E.ModelCache()
    edits = E.build_edits({"kind": "img2img", "prompts": "pca", "strength": 0.5, "steps": 10}, "zoo:t2i", cache)
    assert [e.name for e in edits] == [f"img2img[{E.prompt_label(p)}]" for p in E.PCA_PROMPTS]
    rec = E.build_edits({"kind": "recon", "sample": [False, True]}, "zoo:t2i", cache)
    assert [e.name for e in rec] == ["recon-mean", "recon-sample"]
    with pytest.raises(ValueError, match="unknown img2img"):
        E.build_edits({"kind": "img2img", "strenght": 0.5}, "zoo:t2i", cache)


def test_target_specs():
    assert E.parse_target("zoo:t2i") == ("zoo:t2i", None)
    assert E.parse_target("zoo:t2i[vae=zoo:vae-a-srl]") == ("zoo:t2i", "zoo:vae-a-srl")
    assert E.target_spec({"model": "zoo:t2i", "vae": "zoo:vae-b"}) == "zoo:t2i[vae=zoo:vae-b]"
    assert E.target_spec({"model": "zoo:t2i"}) == "zoo:t2i"
    with pytest.raises(ValueError, match="target table"):
        E.target_spec({"vae": "zoo:vae-b"})
    with pytest.raises(ValueError, match="target"):
        E.parse_target("")


def test_swapped_vae_target_uses_that_vae():
    require_zoo("t2i", "vae-a", "vae-b")
    cache = E.ModelCache()
    v = cache.vae("zoo:t2i[vae=zoo:vae-b]")
    assert v.spec == "zoo:vae-b" and cache.vae("zoo:t2i").spec == "zoo:t2i"
