"""Upload sniffing, parameter parsing and helpers of latentguard.serve (no model is loaded)."""

from __future__ import annotations

import pytest
import torch

from latentguard.serve import ServeConfig
from latentguard.serve import config as serve_config_mod
from latentguard.serve.jobs import amplified_difference, center_crop, safe_stem, valid_id
from latentguard.serve.limits import RequestError, load_upload, needs_pipeline, parse_params, parse_wait, sniff_format

from .conftest import png_bytes, png_header_only


@pytest.fixture()
def cfg(tmp_path):
    return ServeConfig(data_dir=tmp_path, models=["zoo:vae-a", "zoo:vae-b"], editor="zoo:t2i", max_steps=50)


@pytest.mark.parametrize("data, fmt", [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "PNG"), (b"\xff\xd8\xff\xe0" + b"\0" * 8, "JPEG"),
    (b"RIFF\0\0\0\0WEBPVP8 ", "WEBP"), (b"II*\x00" + b"\0" * 8, "TIFF"), (b"MM\x00*" + b"\0" * 8, "TIFF"),
    (b"BM" + b"\0" * 10, "BMP"),
])
def test_sniff_reads_the_signature(data, fmt):
    assert sniff_format(data)[0] == fmt


@pytest.mark.parametrize("data, status", [(b"", 400), (b"GIF89a....", 415), (b"<svg xmlns=...>", 415),
                                          (b"%PDF-1.4", 415), (b"RIFF\0\0\0\0WAVE", 415)])
def test_sniff_refuses(data, status):
    with pytest.raises(RequestError) as e:
        sniff_format(data)
    assert e.value.status == status and "\n" not in e.value.reason


def test_load_upload_checks_pixels_before_decoding(tmp_path):
    with pytest.raises(RequestError) as e:
        load_upload(png_header_only(50000, 50000), tmp_path / "j", max_pixels=10**6)
    assert e.value.status == 413 and "decompression bomb" in e.value.reason and str(tmp_path) not in e.value.reason
    with pytest.raises(RequestError) as e:  # under Pillow's own bomb limit, over the server's
        load_upload(png_header_only(3000, 2000), tmp_path / "m", max_pixels=10**6)
    assert e.value.status == 413 and "3000x2000 = 6000000 pixels exceeds the limit of 1000000" in e.value.reason
    img, path = load_upload(png_bytes(20, 12), tmp_path / "k", max_pixels=10**6)
    assert img.shape == (1, 3, 12, 20) and path.parent == tmp_path / "k" and path.suffix == ".png"


def test_truncated_png_is_a_400(tmp_path):
    data = png_bytes(64, 64)
    with pytest.raises(RequestError) as e:
        load_upload(data[: len(data) // 2], tmp_path / "t", max_pixels=10**6)
    assert e.value.status == 400 and "truncated" in e.value.reason


def test_parse_params_defaults_and_budget(cfg):
    p = parse_params({}, config=cfg)
    assert (p.method, p.eps_label, p.steps, p.model, p.preview) == (cfg.default_method, "16/255", cfg.default_steps,
                                                                     "zoo:vae-a", False)
    p = parse_params({"eps": "8/255", "steps": "3", "model": "zoo:vae-b", "preview": "true", "method": "pca-"}, config=cfg)
    assert p.eps == pytest.approx(8 / 255) and (p.steps, p.model, p.preview, p.method) == (3, "zoo:vae-b", True, "pca-")


@pytest.mark.parametrize("form, words", [
    ({"method": "nope"}, "method: unknown"), ({"eps": "16"}, "pixel units"), ({"eps": "abc"}, "eps:"),
    ({"eps": "0"}, "outside"), ({"eps": "200/255"}, "outside"), ({"steps": "-1"}, "outside 0..50"),
    ({"steps": "51"}, "outside 0..50"), ({"steps": "2.5"}, "not an integer"),
    ({"model": "runwayml/stable-diffusion-v1-5"}, "not offered"), ({"model": "/etc"}, "not offered"),
    ({"preview": "maybe"}, "preview:"), ({"colour": "red"}, "unknown field"),
])
def test_parse_params_refuses_with_one_line(cfg, form, words):
    with pytest.raises(RequestError) as e:
        parse_params(form, config=cfg)
    assert e.value.status == 422 and words in e.value.reason and "\n" not in e.value.reason


def test_diffusion_baselines_attack_the_editor(cfg):
    assert needs_pipeline("advdm") and not needs_pipeline("pca+")
    assert parse_params({"method": "advdm"}, config=cfg).model == cfg.editor


def test_parse_wait(cfg):
    assert parse_wait(None, config=cfg) == cfg.sync_wait_s
    assert parse_wait("1e9", config=cfg) == cfg.sync_wait_s and parse_wait("0", config=cfg) == 0.0
    for bad in ("-1", "soon", "nan"):
        with pytest.raises(RequestError):
            parse_wait(bad, config=cfg)


def test_default_method_becomes_fast_when_registered(monkeypatch):
    assert serve_config_mod.default_method() == "fast"  # registered by latentguard.protect.fast
    monkeypatch.setattr(serve_config_mod, "available_methods", lambda: ["pca+"])
    assert serve_config_mod.default_method() == "pca+"


def test_default_editor_prefers_the_photo_model(monkeypatch):
    monkeypatch.setattr(serve_config_mod, "_zoo_available", lambda: ["vae-a", "t2i"])
    assert serve_config_mod.default_editor() == "zoo:t2i"
    monkeypatch.setattr(serve_config_mod, "_zoo_available", lambda: ["vae-a", "t2i", "ldm-photo"])
    assert serve_config_mod.default_editor() == "zoo:ldm-photo"


def test_config_validates(tmp_path):
    for bad in ({"workers": 0}, {"queue_size": 0}, {"models": []}, {"default_steps": 500}, {"port": 70000},
                {"default_method": "nope"}, {"preview_strength": 0.0}):
        with pytest.raises(ValueError):
            ServeConfig(data_dir=tmp_path, **bad)


def test_helpers():
    assert safe_stem("../../etc/passwd") == "passwd" and safe_stem("C:\\x\\my photo.final.JPG") == "my_photo.final"
    assert safe_stem("") == "image" and safe_stem("....") == "image" and len(safe_stem("a" * 500 + ".png")) == 60
    assert valid_id("0" * 32) and not valid_id("../x") and not valid_id("A" * 32)
    x = torch.rand(1, 3, 50, 70)
    c = center_crop(x, 32)
    assert c.shape[-2:] == (32, 32) and torch.equal(c, x[..., 9:41, 19:51])
    assert center_crop(x, 1000).shape[-2:] == (50, 70)
    d = amplified_difference(torch.tensor([-0.1, 0.0, 0.05, 0.1]), 0.1)
    assert torch.allclose(d, torch.tensor([0.0, 0.5, 0.75, 1.0]))
