"""Survival: the retained formula (1 for the identity, 0 when the purifier gives back the clean image), the
purifiers it adds (shape, range, dtype, determinism), the outputs, the one-line errors and the robust preset."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field

import pytest
import torch

from latentguard.cli.app import main
from latentguard.evaluate import purify as P
from latentguard.ops.grid import quantize_8bit
from latentguard.evaluate import survival as S
from latentguard.evaluate.edits import ModelCache
from latentguard.io import save_image


@dataclass(frozen=True)
class Halve:
    """A deterministic stand-in edit: f(x) = x / 2 + 0.25 (pulls every image towards grey)."""

    name: str = "halve"

    def __call__(self, images, *, captions=None, seeds=None):
        return images.float() / 2 + 0.25


@dataclass(frozen=True)
class Identity:
    name: str = "identity"

    def __call__(self, images, *, generator=None):
        return images.clone()


@dataclass(frozen=True)
class ToClean:
    """A purifier that gives back the clean image, whatever it is given."""

    clean: torch.Tensor = field(repr=False)
    name: str = "to-clean"

    def __call__(self, images, *, generator=None):
        return self.clean.clone()


def _pair(seed=0, size=16):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, size, size, generator=g) * 0.5 + 0.25
    xp = (x + (torch.rand(x.shape, generator=g) * 2 - 1) * 16 / 255).clamp(0, 1)
    return quantize_8bit(x), quantize_8bit(xp)


def _model():
    return S.SurvivalModel({"halve": Halve()}, None, {})


@pytest.mark.parametrize("objective", [1, 2])
def test_retained_is_one_for_identity_and_zero_when_purifier_returns_clean(objective):
    x, _ = _pair()
    # a protection that moves the image away from grey: on Objective 1 (edit vs input) its edit stays closer
    xp = quantize_8bit((x + 16 / 255 * torch.sign(x - 0.5)).clamp(0, 1))
    item = S.SurvivalItem("a", xp, x, "pca+" if objective == 1 else "pca-", objective)
    rows = S.score_item(item, [Identity(), ToClean(x)], _model())
    by = {r["purification"]: r for r in rows}
    assert by["none"]["effect_obj1"] > 0 and by["none"]["effect_obj2"] > 0
    assert by["identity"]["retained"] == pytest.approx(1.0, abs=1e-9)
    assert by["identity"]["retained_obj1"] == pytest.approx(1.0, abs=1e-9)
    assert by["identity"]["retained_obj2"] == pytest.approx(1.0, abs=1e-9)
    assert abs(by["to-clean"]["retained"]) < 1e-9 and abs(by["to-clean"]["retained_obj2"]) < 1e-9
    assert by["to-clean"]["objective"] == objective


def test_retained_undefined_without_effect_and_partial_purifier_in_between():
    x, xp = _pair(1)
    item = S.SurvivalItem("b", x.clone(), x, "none", None)  # nothing protected: nothing to retain
    r = {r["purification"]: r for r in S.score_item(item, [Identity()], _model())}["identity"]
    assert math.isnan(r["retained"]) and "no effect" in r["reason"]
    # a purifier that removes half of the perturbation keeps a quarter of the squared effect (Objective 2)
    half = lambda images, generator=None: (x + (images - x) / 2)  # noqa: E731
    half.name = "half"  # type: ignore[attr-defined]
    item = S.SurvivalItem("c", xp, x, "pca-", 2)
    rr = {r["purification"]: r for r in S.score_item(item, [half], S.SurvivalModel({"id": lambda i, **k: i}, None, {}))}
    assert 0.1 < rr["half"]["retained"] < 0.45


def test_same_noise_for_clean_and_protected():
    """A random purifier draws the same noise for both images: on identical inputs, the effect is exactly 0."""
    x, _ = _pair(2)
    item = S.SurvivalItem("d", x.clone(), x, "pca-", 2)
    rows = S.score_item(item, [P.GaussianNoise(0.05)], S.SurvivalModel({"id": lambda i, **k: i}, None, {}))
    assert {r["purification"]: r for r in rows}["noise-0.05"]["effect_obj2"] == 0.0


def _check_purifier(pur, x):
    before = x.clone()
    a = pur(x, generator=torch.Generator().manual_seed(3))
    b = pur(x, generator=torch.Generator().manual_seed(3))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b) and torch.equal(x, before)
    assert float(a.min()) >= 0 and float(a.max()) <= 1 and not torch.equal(a, x)
    return a


def test_webp_keeps_shape_range_dtype_and_is_deterministic(samples64):
    a = _check_purifier(P.WebP(75), samples64[:2].float())
    assert _check_purifier(P.WebP(30), samples64[:2].float()).sub(samples64[:2]).abs().mean() > \
        a.sub(samples64[:2]).abs().mean()  # lower quality, larger change


@pytest.mark.slow
def test_diffusion_purifiers_keep_shape_range_dtype_and_are_deterministic(t2i_pipe, samples64):
    x = samples64[:1].float()
    _check_purifier(P.GrIDPure(t2i_pipe, iterations=1), x)
    _check_purifier(P.NoisyUpscaleStandIn(t2i_pipe, t_star=0.1), x)


def test_gridpure_grids_follow_the_paper_geometry():
    assert P.grid_origins(512, 256, 128) == [0, 128, 256]  # 3 x 3 = 9 grids of 256 on 512 px
    assert P.grid_origins(100, 50, 25) == [0, 25, 50]
    assert P.grid_origins(70, 32, 16) == [0, 16, 32, 38]  # the last grid flush with the edge
    assert P.GrIDPure.__dataclass_fields__["t_star"].default == 0.1
    assert P.GrIDPure.__dataclass_fields__["iterations"].default == 20
    assert P.GrIDPure.__dataclass_fields__["gamma"].default == 0.1


def test_parse_purification_names():
    models = ModelCache("cpu")
    assert S.parse_purification("jpeg-q75", models, "x").name == "jpeg-q75"
    assert S.parse_purification("webp-q75", models, "x").name == "webp-q75"
    assert S.parse_purification("resize-0.5", models, "x").name == "resize-0.5"
    assert S.parse_purification("noise-0.05", models, "x").name == "noise-0.05"
    for bad in ("jpeg-75", "resize-q5", "sharpen", "resize-2"):
        with pytest.raises(S.UserError):
            S.parse_purification(bad, models, "x")


def _write_set(tmp_path, n=2, size=32, method="pca-"):
    from latentguard.samples import sample_images

    x = sample_images(size, n)
    clean, prot = tmp_path / "clean", tmp_path / "prot"
    for k in range(n):
        save_image(x[k], clean / f"im{k}.png")
        xp = (x[k] + 16 / 255 * torch.sign(torch.randn(x[k].shape, generator=torch.Generator().manual_seed(k))))
        save_image(xp.clamp(0, 1), prot / f"im{k}.png", metadata={"method": method, "source": f"im{k}.png"} if method
                   else None)
    return clean, prot


def test_survival_cli_writes_every_output(tmp_path, capsys, vae_a):
    clean, prot = _write_set(tmp_path)
    out = tmp_path / "out"
    rc = main(["survival", str(prot), "--clean", str(clean), "--model", "zoo:vae-a", "--purify",
               "jpeg-q75,resize-0.5", "--embedder", "none", "--out", str(out), "--no-progress", "--device", "cpu"])
    assert rc == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("im")]
    assert len(lines) == 2 and "jpeg-q75" in lines[0] and "% retained" in lines[0]
    with open(out / "survival.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {"image", "purification", "retained", "mse_edit_vs_clean_edit", "psnr_edit_vs_input"} <= set(rows[0])
    assert {r["purification"] for r in rows} == {"none", "jpeg-q75", "resize-0.5"}
    assert all(float(r["retained"]) == pytest.approx(1.0) for r in rows if r["purification"] == "none")
    doc = json.loads((out / "survival.json").read_text())
    assert doc["formula"].startswith("retained(P)") and doc["images"][0]["method"] == "pca-"
    assert set(doc["summary"]["recon"]) == {"jpeg-q75", "resize-0.5"}
    assert "img2img" in doc["edits_unavailable"]  # a bare VAE has no img2img: said, not hidden
    html = (out / "report.html").read_text()
    assert "id='survival'" in html and "data:image/png;base64," in html
    assert (out / "heatmap.png").stat().st_size > 1000 and "| jpeg-q75 |" in (out / "summary.md").read_text()


def test_survival_cli_one_line_errors(tmp_path, capsys):
    clean, prot = _write_set(tmp_path, n=2, size=16)
    (clean / "im1.png").unlink()
    rc = main(["survival", str(prot), "--clean", str(clean), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("latentguard: error:") and "2 protected image(s) but 1 clean" in err
    assert "\n" not in err
    from latentguard.samples import sample_images

    save_image(sample_images(32, 2)[1], clean / "im1.png")  # the wrong size
    rc = main(["survival", str(prot), "--clean", str(clean), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "must have the same size" in err and "\n" not in err
    clean2, prot2 = _write_set(tmp_path / "b", n=1, size=16, method=None)
    rc = main(["survival", str(prot2), "--clean", str(clean2), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--method" in err and "\n" not in err
    rc = main(["survival", str(prot2), "--clean", str(clean2), "--method", "nope", "--out", str(tmp_path / "o")])
    assert rc == 2 and "unknown protection method" in capsys.readouterr().err


def test_robust_preset(vae_a):
    from latentguard import protect
    from latentguard.ops.transforms import ROBUST_EOT, parse_transforms

    p = protect.get("pca+", vae=vae_a, preset="robust")
    assert p.transforms == parse_transforms(ROBUST_EOT) and p.eot_samples >= 1
    assert {t.kind for t in p.transforms} == {"jpeg", "resize"}
    assert protect.get("pca+", vae=vae_a, preset="robust", eot_samples=1).eot_samples == 1  # params override
    with pytest.raises(ValueError, match="encoder-only"):
        protect.get("mist", vae=vae_a, preset="robust")


@pytest.mark.slow
def test_protect_survival_flag_scores_what_protect_wrote(tmp_path, capsys, vae_a):
    from latentguard.samples import sample_images

    save_image(sample_images(32, 1)[0], tmp_path / "in" / "photo.png")
    out = tmp_path / "prot"
    rc = main(["protect", str(tmp_path / "in"), "--method", "pca-", "--steps", "2", "--out", str(out), "--no-progress",
               "--device", "cpu", "--survival", "--survival-model", "zoo:vae-a", "--survival-purify", "jpeg-q75"])
    assert rc == 0
    doc = json.loads((out / "survival" / "survival.json").read_text())
    assert [im["id"] for im in doc["images"]] == ["photo"] and doc["images"][0]["method"] == "pca-"
    assert "jpeg-q75" in doc["summary"]["recon"] and "photo (pca-" in capsys.readouterr().out
