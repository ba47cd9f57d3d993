"""Issue 22 item 13: the preview grid's layout, and its figures against a direct computation."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from latentguard.io import load_image, save_image
from latentguard.ops.metrics import psnr
from latentguard.testing import require_zoo


@pytest.fixture(scope="module")
def editor():
    require_zoo("ldm-photo", "vae-a")
    from latentguard.evaluate.preview import load_editor

    return load_editor("zoo:ldm-photo", device="cpu", strength=0.5, steps=4)


def _pair(tmp_path, samples64):
    from latentguard.ops.grid import quantize_8bit

    clean = samples64[1:2, :, :40, :56].contiguous()  # 40 x 56: not square, enlarged in the grid
    g = torch.Generator().manual_seed(3)
    delta = (torch.randint(0, 3, clean.shape, generator=g).float() - 1) * (6 / 255)
    prot = quantize_8bit(clean + delta)
    save_image(clean[0], tmp_path / "clean" / "cat.png")
    save_image(prot[0], tmp_path / "prot" / "cat.png", metadata={"method": "pca+", "eps": 8 / 255})
    return load_image(tmp_path / "clean" / "cat.png"), load_image(tmp_path / "prot" / "cat.png")


def test_preview_grid_layout_and_figures_match_a_direct_computation(tmp_path, samples64, editor):
    from latentguard.evaluate.edits import image_seed
    from latentguard.evaluate.preview import COLUMNS, grid_size, panel_box, run_preview, zoom_for
    from latentguard.ops.grid import quantize_8bit

    x, y = _pair(tmp_path, samples64)
    res = run_preview([(tmp_path / "prot" / "cat.png", tmp_path / "clean" / "cat.png")], tmp_path / "out",
                      editor=editor, seed=0, progress=False, echo=lambda s: None)
    assert res["ok"] == 1 and res["error"] == 0
    fig = res["figures"][0]
    assert fig["method"] == "pca+" and fig["objective"] == 1 and fig["eps_255"] == pytest.approx(8)  # provenance
    # layout: 3 rows (image, VAE reconstruction, img2img) x 4 columns, panels enlarged by an integer factor
    grid = load_image(tmp_path / "out" / "cat.png")[0]
    k = zoom_for(40, 56)
    assert k == fig["zoom"] and k > 1 and len(COLUMNS) == 4
    assert tuple(grid.shape[-2:]) == grid_size(3, 40 * k, 56 * k)

    def panel(r, c):
        t, le, b, ri = panel_box(r, c, 40 * k, 56 * k)
        return grid[:, t:b, le:ri][:, ::k, ::k]  # undo the nearest-neighbour enlargement

    assert torch.allclose(panel(0, 0), x[0], atol=1e-6) and torch.allclose(panel(0, 1), y[0], atol=1e-6)
    noise = panel(0, 3)[None]
    assert float((noise - x).abs().max()) == pytest.approx(8 / 255, abs=0.6 / 255)  # the same budget
    # the figures, recomputed directly: the editor's VAE (posterior mean) and diffusers' img2img with the seed
    vae, pipe = editor.vae, editor.edits[1].pipe
    with torch.no_grad():
        rec = [quantize_8bit(vae.decode(vae.encode(t)[0]).clamp(0, 1)) for t in (x, y, noise)]
        s = image_seed(0, "cat")
        i2i = [quantize_8bit(pipe(prompt=[""], image=t, strength=0.5, num_inference_steps=4, guidance_scale=1.0,
                                  generator=[torch.Generator().manual_seed(s)], output_type="pt").images.clamp(0, 1))
               for t in (x, y, noise)]
    for name, (fx, fy, fz), row in (("recon-mean", rec, 1), ("img2img[empty]", i2i, 2)):
        f = fig["edits"][name]
        assert f["clean_vs_input"]["psnr"] == pytest.approx(float(psnr(fx, x)), abs=1e-4)
        assert f["protected_vs_input"]["psnr"] == pytest.approx(float(psnr(fy, x)), abs=1e-4)
        assert f["noise_vs_input"]["psnr"] == pytest.approx(float(psnr(fz, x)), abs=1e-4)
        assert f["protected_vs_clean_edit"]["psnr"] == pytest.approx(float(psnr(fy, fx)), abs=1e-4)
        assert f["margin_db"] == pytest.approx(float(psnr(fy, x) - psnr(fz, x)), abs=1e-3)  # Objective 1 for pca+
        assert f["beats_noise"] == (f["margin_db"] > 0)
        assert torch.allclose(panel(row, 0), fx[0], atol=1e-6) and torch.allclose(panel(row, 1), fy[0], atol=1e-6)
        assert torch.allclose(panel(row, 3), fz[0], atol=1e-6)
    rows = list(csv.DictReader(open(tmp_path / "out" / "preview.csv")))
    assert [r["edit"] for r in rows] == ["recon-mean", "img2img[empty]"]
    assert float(rows[1]["edit_protected_vs_input_psnr"]) == pytest.approx(fig["edits"]["img2img[empty]"]
                                                                          ["protected_vs_input"]["psnr"], abs=1e-4)
    assert json.loads((tmp_path / "out" / "preview.json").read_text())["images"][0]["grid"] == "cat.png"


def test_pairing_by_name_then_by_position(tmp_path):
    from pathlib import Path

    from latentguard.evaluate.preview import pair_inputs

    P = [Path("o/a.png"), Path("o/photos_b.png")]
    assert pair_inputs(P, [Path("c/b.jpg"), Path("c/a.jpg")]) == [(P[0], Path("c/a.jpg")), (P[1], Path("c/b.jpg"))]
    assert pair_inputs(P, [Path("x.png"), Path("y.png")]) == [(P[0], Path("x.png")), (P[1], Path("y.png"))]
    with pytest.raises(ValueError, match="cannot pair 2 protected image"):
        pair_inputs(P, [Path("x.png")])


def test_protect_preview_flag_writes_a_grid_per_image(tmp_path, samples64):
    """`protect --preview` (wired in the cli package) previews every protected image; a bare VAE as --editor
    gives the reconstruction row only."""
    require_zoo("vae-a", "vae-b")
    from latentguard.cli import main
    from latentguard.evaluate.preview import grid_size, zoom_for

    for i in range(2):
        save_image(samples64[i, :, :32, :32], tmp_path / "in" / f"im{i}.png")
    rc = main(["protect", str(tmp_path / "in"), "--steps", "1", "--out", str(tmp_path / "out"), "--no-progress",
               "--preview", "--editor", "zoo:vae-b", "--device", "cpu"])
    assert rc == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "preview" / "preview.csv")))
    assert sorted(r["image"] for r in rows) == ["im0", "im1"] and {r["edit"] for r in rows} == {"recon-mean"}
    assert {r["method"] for r in rows} == {"pca+"} and {float(r["eps_255"]) for r in rows} == {16.0}
    k = zoom_for(32, 32)
    for i in range(2):
        g = load_image(tmp_path / "out" / "preview" / f"im{i}.png")
        assert tuple(g.shape[-2:]) == grid_size(2, 32 * k, 32 * k)  # image + reconstruction rows
