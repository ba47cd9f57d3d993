"""SRL-VAE training: frozen decoder, resumability, reload, config validation, attack budget."""

from __future__ import annotations

import json

import pytest
import torch

from latentguard.harden import (
    ImageCrops,
    SRLConfig,
    harden,
    is_clean_step,
    latest_checkpoint,
    reconstruction_attack,
    reconstruction_objective,
)

TINY = dict(steps=4, batch_size=2, crop=16, attack_steps=2, warmup_steps=1, checkpoint_every=2, log_every=1,
            probe_size=2, probe_attack_steps=1, scales=(1.0, 0.5))


@pytest.mark.parametrize("field,value", [
    ("eps", 0.0), ("eps", 1.5), ("eps", float("nan")), ("attack_steps", 0), ("attack_steps", 2.5),
    ("attack_alpha", -0.1), ("perceptual", "lpips"), ("kl_weight", -1.0), ("orig_weight", -0.1),
    ("clean_ratio", 1.0), ("clean_ratio", -0.1), ("lr", 0.0), ("grad_clip", 0.0), ("steps", 0),
    ("batch_size", 0), ("crop", 4), ("scales", (1.0, 2.0)), ("scales", ()), ("seed", -1),
    ("save_dtype", "int8"), ("sample_latent", 1), ("checkpoint_every", 0), ("min_lr_ratio", 2.0),
])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SRLConfig(**{field: value})


def test_config_roundtrip_and_alpha():
    cfg = SRLConfig(eps=8 / 255, attack_steps=4)
    assert SRLConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.alpha == pytest.approx(2.5 * 8 / 255 / 4)
    with pytest.raises(ValueError, match="unknown SRLConfig fields: bogus"):
        SRLConfig.from_dict({"bogus": 1})


def test_clean_step_interleaving_density():
    for r in (0.0, 0.25, 0.5, 0.3):
        n = sum(is_clean_step(s, r) for s in range(1, 1001))
        assert abs(n - 1000 * r) <= 1


def test_attack_respects_budget_raises_loss_and_does_not_mutate(tiny_vae_frozen):
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    x0 = x.clone()
    req = [p.requires_grad for p in tiny_vae_frozen.parameters()]
    eps = 8 / 255
    adv = reconstruction_attack(tiny_vae_frozen, x, eps=eps, steps=5, perceptual="grad-ssim", perceptual_weight=0.1,
                                generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x0)
    assert (adv - x).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        clean = reconstruction_objective(tiny_vae_frozen, x, x, "grad-ssim", 0.1)
        attacked = reconstruction_objective(tiny_vae_frozen, adv, x, "grad-ssim", 0.1)
    assert (attacked > clean).all()
    assert [p.requires_grad for p in tiny_vae_frozen.parameters()] == req
    with pytest.raises(ValueError, match="eps"):
        reconstruction_attack(tiny_vae_frozen, x, eps=0.0)


def test_decoder_bit_identical_encoder_changed_input_untouched(tiny_vae_frozen, make_crops):
    before = {k: v.clone() for k, v in tiny_vae_frozen.model.state_dict().items()}
    res = harden(tiny_vae_frozen, make_crops(), SRLConfig(**TINY, perceptual="grad-ssim"), progress=False)
    after = res.vae.model.state_dict()
    dec_keys = [k for k in after if k.startswith(("decoder.", "post_quant_conv."))]
    enc_keys = [k for k in after if k.startswith(("encoder.", "quant_conv."))]
    assert dec_keys and enc_keys
    assert all(torch.equal(after[k], before[k]) for k in dec_keys)
    assert any(not torch.equal(after[k], before[k]) for k in enc_keys)
    # the input VAE is not modified and stays frozen
    assert all(torch.equal(v, before[k]) for k, v in tiny_vae_frozen.model.state_dict().items())
    assert not any(p.requires_grad for p in tiny_vae_frozen.parameters())
    assert not any(p.requires_grad for p in res.vae.parameters()) and not res.vae.model.training


def test_saved_folder_reloads_and_encodes_identically(tiny_vae_frozen, make_crops, tmp_path):
    from latentguard.models import load_vae

    res = harden(tiny_vae_frozen, make_crops(), SRLConfig(**TINY), out_dir=tmp_path / "run", progress=False)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    for spec in (tmp_path / "run", tmp_path / "run" / "vae"):
        v = load_vae(str(spec))
        m1, l1 = v.encode(x)
        m2, l2 = res.vae.encode(x)
        assert torch.equal(m1, m2) and torch.equal(l1, l2)
        assert torch.equal(v.decode(m1), tiny_vae_frozen.decode(m1))
    for name in ("run.json", "train_log.jsonl", "loss.png", "summary.csv", "vae/srl.json", "vae/config.json"):
        assert (tmp_path / "run" / name).is_file(), name
    rows = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "run" / "vae" / "srl.json").read_text())["complete"] is True


def test_interrupted_run_resumes_to_the_uninterrupted_result(tiny_vae_frozen, make_crops, tmp_path):
    cfg = SRLConfig(**{**TINY, "steps": 6})
    ref = harden(tiny_vae_frozen, make_crops(), cfg, progress=False)

    def crash(step, row):
        if step == 5:
            raise KeyboardInterrupt  # killed between checkpoints

    with pytest.raises(KeyboardInterrupt):
        harden(tiny_vae_frozen, make_crops(), cfg, out_dir=tmp_path / "run", progress=False, callback=crash)
    assert latest_checkpoint(tmp_path / "run").name == "step-0000004.pt"
    with pytest.raises(ValueError, match="already holds an SRL-VAE run"):
        harden(tiny_vae_frozen, make_crops(), cfg, out_dir=tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="'lr'"):
        harden(tiny_vae_frozen, make_crops(), cfg.replace(lr=1e-3), out_dir=tmp_path / "run", resume=True, progress=False)
    res = harden(tiny_vae_frozen, make_crops(), cfg, out_dir=tmp_path / "run", resume=True, progress=False)
    assert res.steps_done == 6 and res.complete
    a, b = ref.vae.model.state_dict(), res.vae.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_resume_errors(tiny_vae_frozen, make_crops, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        harden(tiny_vae_frozen, make_crops(), SRLConfig(**TINY), out_dir=tmp_path / "empty", resume=True, progress=False)
    with pytest.raises(ValueError, match="resume=True needs out_dir"):
        harden(tiny_vae_frozen, make_crops(), SRLConfig(**TINY), resume=True, progress=False)
    with pytest.raises(ValueError, match="multiple of the VAE's downsample factor"):
        harden(tiny_vae_frozen, make_crops(crop=15), SRLConfig(**{**TINY, "crop": 15}), progress=False)


def test_max_minutes_stops_and_checkpoints(tiny_vae_frozen, make_crops, tmp_path):
    cfg = SRLConfig(**{**TINY, "steps": 50, "checkpoint_every": 100})
    res = harden(tiny_vae_frozen, make_crops(), cfg, out_dir=tmp_path / "run", progress=False, max_minutes=1e-6)
    assert res.steps_done == 1 and not res.complete
    assert latest_checkpoint(tmp_path / "run").name == "step-0000001.pt"
    assert json.loads((tmp_path / "run" / "vae" / "srl.json").read_text())["complete"] is False


def test_image_crops_are_seeded_and_restorable(image_folder):
    a, b = ImageCrops(image_folder, 16, seed=5), ImageCrops(image_folder, 16, seed=5)
    assert a.sources == 3
    assert torch.equal(a.batch(3), b.batch(3))
    st = a.state_dict()
    x1 = a.batch(2)
    a.load_state_dict(st)
    assert torch.equal(a.batch(2), x1)
    assert not torch.equal(ImageCrops(image_folder, 16, seed=6).batch(3), ImageCrops(image_folder, 16, seed=5).batch(3))


def test_image_crops_can_share_their_resized_images(image_folder):
    """Samplers of several crop sizes on the same images hold each resized image once; crops are unchanged."""
    levels: dict = {}
    shared = [ImageCrops(image_folder, c, seed=5, scales=(1.0, 0.5), levels=levels) for c in (16, 32)]
    alone = [ImageCrops(image_folder, c, seed=5, scales=(1.0, 0.5)) for c in (16, 32)]
    for a, b in zip(shared, alone):
        assert torch.equal(a.batch(4), b.batch(4))
    assert 0 < len(levels) < sum(len(a.pyramid) for a in shared)  # some levels are reused, not recomputed
    assert any(x is y for x in shared[0].pyramid for y in shared[1].pyramid)


def test_image_crops_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageCrops(tmp_path / "nope", 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        ImageCrops(tmp_path / "empty", 16)
    with pytest.raises(ValueError, match="crop"):
        ImageCrops([torch.rand(3, 20, 20)], 4)
